//! The WebTransport relay: sessions at `https://host:port/lobby/{user}/{room}?token=…` over
//! HTTP/3 (`wtransport`), on the same relay core and room bus as the WebSocket relay.
//!
//! [`serve`] runs the listener on an existing [`Relay`], so `actix-api` can serve both
//! transports from one process (sharing its `LocalBus`); the `webtransport-server` binary runs
//! it on its own, meeting the WebSocket relays through NATS.

mod cert;
pub mod config;
mod health;
mod inbound;
mod limits;
mod outbound;
mod revocations;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use parking_lot::RwLock;
use videocall_relay::{Relay, TokenKey};
use wtransport::config::Ipv6DualStackConfig;
use wtransport::{Endpoint, Identity, ServerConfig, VarInt};

pub use cert::{IdentitySource, IdentityWatch, SharedHash, certificate_hashes_json};
pub use config::{CertArgs, Config};
pub use revocations::StoreRevocations;

/// How the listener runs.
#[derive(Debug, Clone)]
pub struct WebTransportOptions {
    pub listen: SocketAddr,
    pub identity: IdentitySource,
    pub max_packet_bytes: usize,
    /// QUIC keep-alive interval: the WebSocket relay's ping interval.
    pub keep_alive: Duration,
    /// QUIC idle timeout: the relay's heartbeat timeout. A peer that vanished is gone after it.
    pub idle_timeout: Duration,
}

/// A running listener.
pub struct WebTransportHandle {
    addr: SocketAddr,
    hash: SharedHash,
    endpoint: Arc<Endpoint<wtransport::endpoint::endpoint_side::Server>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WebTransportHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 of the current certificate, for `serverCertificateHashes`.
    pub fn certificate_hash(&self) -> Option<[u8; 32]> {
        *self.hash.read()
    }

    pub fn shared_hash(&self) -> SharedHash {
        self.hash.clone()
    }

    /// Closes every session and stops accepting.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.endpoint.close(VarInt::from_u32(1001), b"server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

impl Drop for WebTransportHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn server_config(options: &WebTransportOptions, identity: Identity) -> Result<ServerConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(limits::MAX_CONCURRENT_UNI_STREAMS))
        .receive_window(quinn::VarInt::from_u32(limits::CONNECTION_RECEIVE_WINDOW))
        .send_window(limits::CONNECTION_SEND_WINDOW)
        .stream_receive_window(quinn::VarInt::from_u32(
            u32::try_from(options.max_packet_bytes + 4096).unwrap_or(u32::MAX),
        ))
        .keep_alive_interval(Some(options.keep_alive))
        .max_idle_timeout(Some(options.idle_timeout.try_into().context("idle timeout too large")?))
        .datagram_receive_buffer_size(Some(64 * 1024));
    let builder = match options.listen {
        // `[::]:port` accepts IPv4 too, so browsers reach it by `localhost` and by 127.0.0.1.
        SocketAddr::V6(v6) => ServerConfig::builder().with_bind_address_v6(v6, Ipv6DualStackConfig::Allow),
        SocketAddr::V4(_) => ServerConfig::builder().with_bind_address(options.listen),
    };
    Ok(builder.with_custom_tls_and_transport(tls_config(identity)?, transport).build())
}

/// TLS 1.3 with the WebTransport ALPN, as wtransport's default, but a certificate that does not
/// match its key is an error rather than a panic (files caught mid-rotation, say).
fn tls_config(identity: Identity) -> Result<wtransport::tls::rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use wtransport::tls::rustls;
    let chain =
        identity.certificate_chain().as_slice().iter().map(|c| CertificateDer::from(c.der().to_vec())).collect();
    let key = PrivateKeyDer::try_from(identity.private_key().secret_der())
        .map_err(|e| anyhow::anyhow!("reading the private key: {e}"))?
        .clone_key();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate does not fit the private key")?;
    config.alpn_protocols = vec![wtransport::tls::WEBTRANSPORT_ALPN.to_vec()];
    Ok(config)
}

/// Binds the listener and serves sessions on `relay` until the handle is stopped.
pub async fn serve(relay: Relay, tokens: TokenKey, options: WebTransportOptions) -> Result<WebTransportHandle> {
    // Stamped before loading, so files changed while loading are loaded again.
    let watch = options.identity.watch();
    let identity = options.identity.load().await?;
    let hash: SharedHash = Arc::new(RwLock::new(cert::certificate_hash(&options.identity, &identity)));
    let endpoint = Endpoint::server(server_config(&options, identity)?)
        .with_context(|| format!("binding WebTransport on udp {}", options.listen))?;
    let addr = endpoint.local_addr().context("reading the bound address")?;
    let endpoint = Arc::new(endpoint);
    let shared = Arc::new(session::Shared { relay, tokens, max_packet_bytes: options.max_packet_bytes });

    let accept = {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            loop {
                let incoming = endpoint.accept().await;
                tokio::spawn(session::handle_incoming(incoming, shared.clone()));
            }
        })
    };
    // Registered here, so a SIGHUP sent once `serve` returns is never missed.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "no certificate reload on SIGHUP"))
        .ok();
    let reload = tokio::spawn(reload_identity(endpoint.clone(), options.clone(), hash.clone(), watch, hangup));
    tracing::info!(%addr, "webtransport listening");
    Ok(WebTransportHandle { addr, hash, endpoint, tasks: vec![accept, reload] })
}

/// Reloads the certificate when its files change, on SIGHUP, or when the self-signed one is
/// due for rotation; sessions already open keep going.
async fn reload_identity(
    endpoint: Arc<Endpoint<wtransport::endpoint::endpoint_side::Server>>,
    options: WebTransportOptions,
    hash: SharedHash,
    mut watch: IdentityWatch,
    mut hangup: Option<tokio::signal::unix::Signal>,
) {
    let mut poll = tokio::time::interval(watch.poll_interval());
    loop {
        let forced = tokio::select! {
            _ = poll.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        if !(watch.due() || forced) {
            continue;
        }
        let reloaded = async {
            let identity = options.identity.load().await?;
            let new_hash = cert::certificate_hash(&options.identity, &identity);
            endpoint.reload_config(server_config(&options, identity)?, false).context("applying the certificate")?;
            *hash.write() = new_hash;
            anyhow::Ok(())
        };
        match reloaded.await {
            Ok(()) => tracing::info!("webtransport certificate reloaded"),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "certificate reload failed; keeping the current one"),
        }
    }
}

/// The standalone relay: the listener plus its health server.
pub struct RunningServer {
    pub webtransport: WebTransportHandle,
    pub health_addr: SocketAddr,
    health: actix_web::dev::ServerHandle,
    pub relay: Relay,
}

impl RunningServer {
    pub async fn stop(self) {
        self.webtransport.stop().await;
        self.health.stop(true).await;
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_signal(self) -> Result<()> {
        videocall_relay::cli::shutdown_signal().await?;
        self.stop().await;
        Ok(())
    }
}

/// Starts the standalone relay described by `config`.
pub async fn run(mut config: Config) -> Result<RunningServer> {
    videocall_relay::cli::unset_if_empty(&mut config.database_url);
    config.relay.normalize();
    let (relay, tokens, registry) = config.relay.start_relay(&format!("webtransport-server {}", config.listen)).await?;
    match config.database_url.as_deref() {
        Some(url) => {
            let wait = std::time::Duration::from_secs(config.database_wait_secs);
            let store = videocall_store::Store::connect_waiting(url, wait)
                .await
                .context("opening the database (DATABASE_URL)")?;
            relay.set_revocations(Arc::new(StoreRevocations(store)));
        }
        None => tracing::warn!(
            "no DATABASE_URL: a participant the host removes is disconnected, but their token is not checked on reconnection"
        ),
    }
    let webtransport = serve(relay.clone(), tokens, config.cert.options(config.listen, &config.relay)).await?;
    let (health_addr, health) =
        health::start(config.health_listen, relay.clone(), registry, webtransport.shared_hash()).await?;
    tracing::info!(webtransport = %webtransport.local_addr(), health = %health_addr, bus = relay.bus_kind(), "webtransport-server running");
    Ok(RunningServer { webtransport, health_addr, health, relay })
}
