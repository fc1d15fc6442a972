//! The HTTP server: WebSocket relay endpoint, guest tokens, the store, health and metrics.
//!
//! [`start`] runs the whole server in-process (tests start it on port 0); `main.rs` only parses
//! the configuration and calls it.

mod api;
mod client_address;
pub mod config;
mod error;
mod http;
mod oidc;
mod outbound;
pub mod tls;
mod web_security;
mod webapp;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::{App, HttpServer, web};
use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use videocall_relay::{Relay, TokenKey};
use videocall_store::Store;
use webtransport_server::{SharedHash, WebTransportHandle};

pub use config::Config;

/// What request handlers share.
pub(crate) struct AppState {
    pub relay: Relay,
    pub tokens: TokenKey,
    pub config: Config,
    pub registry: Registry,
    pub store: Store,
    pub sessions: api::session::SessionKey,
    pub limits: api::ratelimit::RateLimits,
    /// Sign-in through OpenID Connect, when configured.
    pub oidc: Option<oidc::Oidc>,
    /// For the server's own HTTP calls (a separate WebTransport relay's certificate hash).
    pub outbound: outbound::HttpClient,
    /// The in-process WebTransport listener's port and certificate hash, when there is one (set
    /// once it listens, which is after the HTTP listeners when the certificate comes from ACME).
    pub webtransport: std::sync::OnceLock<(u16, SharedHash)>,
    /// The HTTPS listener's port, when there is one: plain HTTP from other computers goes there.
    pub https_port: Option<u16>,
    /// The plain HTTP listener's address (set once it listens): where the recorder joins.
    pub http_addr: std::sync::OnceLock<SocketAddr>,
    /// The recorders the hosts started.
    pub recorders: api::recording::Recorders,
    /// Hashes of the inline scripts of the pages served (the web client's index.html, the
    /// diagnostics page), for their Content-Security-Policy.
    pub page_scripts: Vec<String>,
}

/// A started server.
pub struct RunningServer {
    addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    site_certificate: Option<std::sync::Arc<tls::CurrentCertificate>>,
    /// Renewal (ACME) or reloading (files) of the site certificate.
    tls_task: Option<tokio::task::JoinHandle<()>>,
    metrics_addr: SocketAddr,
    metrics: actix_web::dev::ServerHandle,
    relay: Relay,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    webtransport: Option<WebTransportHandle>,
    purge: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where GET /metrics answers (METRICS_LISTEN_ADDR).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The HTTPS listener's address, when HTTPS_LISTEN is set.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// What a person needs to join from this computer and from others: the addresses to open
    /// and, for a self-signed certificate, its fingerprint to check the browser's warning against.
    pub fn welcome(&self, public_url: Option<&str>) -> String {
        let mut lines = Vec::new();
        let port_suffix = |port: u16, default: u16| if port == default { String::new() } else { format!(":{port}") };
        let local = match self.addr.ip() {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        lines.push(format!("open http://{}/ on this computer", SocketAddr::new(local, self.addr.port())));
        if let (Some(https), Some(certificate)) = (self.https_addr, &self.site_certificate) {
            let suffix = port_suffix(https.port(), 443);
            match public_url {
                Some(url) => lines.push(format!("open {url} anywhere")),
                None if https.ip().is_unspecified() => {
                    for address in tls::self_signed::network_addresses() {
                        let host = match address {
                            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                            v4 => v4.to_string(),
                        };
                        lines.push(format!("open https://{host}{suffix}/ on another computer of this network"));
                    }
                }
                None => lines.push(format!("open https://{https}/ on another computer")),
            }
            lines.push(format!("certificate SHA-256 fingerprint {}", certificate.fingerprint()));
        }
        lines.iter().map(|l| format!("videocall: {l}\n")).collect()
    }

    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The in-process WebTransport listener's UDP address, when it runs.
    pub fn webtransport_addr(&self) -> Option<SocketAddr> {
        self.webtransport.as_ref().map(WebTransportHandle::local_addr)
    }

    /// Stops accepting, closes connections, and waits for the workers to finish.
    pub async fn stop(self) {
        self.purge.abort();
        if let Some(task) = self.tls_task {
            task.abort();
        }
        if let Some(webtransport) = self.webtransport {
            webtransport.stop().await;
        }
        self.metrics.stop(false).await;
        self.handle.stop(false).await;
        let _ = self.task.await;
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> Result<()> {
        videocall_relay::cli::shutdown_signal().await?;
        self.stop().await;
        Ok(())
    }
}

/// A database URL fit for logs: the password, if any, hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A kiosk token for `room` (`--issue-kiosk-token`), valid `config.kiosk_token_days`, signed
/// with the configured TOKEN_SECRET: a random secret would make a token no server accepts.
pub fn kiosk_token(config: &Config, room: &str) -> Result<String> {
    let config = config.clone().normalized();
    let secret = config.relay.token_secret.as_deref().context("--issue-kiosk-token needs TOKEN_SECRET")?;
    let tokens = videocall_relay::TokenKey::from_secret(secret.as_bytes()).context("TOKEN_SECRET")?;
    let room = videocall_types::RoomId::parse(room).context("room")?;
    let now = videocall_relay::auth::unix_now();
    let expires_at = now.saturating_add(config.kiosk_token_days.saturating_mul(24 * 3600));
    api::kiosk::issue(&tokens, &room, expires_at, now).map_err(|e| anyhow::anyhow!("signing the kiosk token: {e}"))
}

/// Binds, starts the relay and the HTTP workers, and returns once the server accepts connections.
pub async fn start(config: Config) -> Result<RunningServer> {
    let config = config.normalized();
    let store = Store::connect_waiting(&config.database_url, std::time::Duration::from_secs(config.database_wait_secs))
        .await
        .with_context(|| format!("opening the database {}", redact(&config.database_url)))?;
    let (relay, tokens, mut registry) = config.relay.start_relay(&format!("actix-api {}", config.listen)).await?;
    relay.set_revocations(std::sync::Arc::new(webtransport_server::StoreRevocations(store.clone())));
    let trusted = client_address::TrustedProxies::parse(config.trusted_proxies.as_deref().unwrap_or_default())?;
    let limits = api::ratelimit::RateLimits::new(
        api::ratelimit::Rates {
            tokens: config.rate_limit_tokens_per_minute,
            logins: config.rate_limit_logins_per_minute,
            meetings: config.rate_limit_meetings_per_minute,
            password_failures: config.rate_limit_password_failures_per_minute,
        },
        trusted,
    );
    limits.register(&mut registry);
    let api_errors = prometheus_client::metrics::family::Family::<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >::default();
    registry.register("api_errors", "API requests answered with an error, by status", api_errors.clone());
    let mut site_tls = config.site_tls()?.map(tls::SiteTls::load).transpose()?;
    let https_listener = match config.https_listen {
        Some(listen) => Some(tcp_listener(listen).with_context(|| format!("binding the HTTPS listener {listen}"))?),
        None => None,
    };
    let https_addr = https_listener.as_ref().map(std::net::TcpListener::local_addr).transpose()?;
    let challenges = web::Data::new(tls::Challenges::default());
    let oidc = match (&config.oidc_issuer_url, &config.oidc_client_id) {
        (Some(issuer), Some(client_id)) => Some(oidc::Oidc::new(
            oidc::OidcConfig {
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                client_secret: config.oidc_client_secret.clone(),
                public_url: config.public_url.clone().context(
                    "PUBLIC_URL is required with OIDC_ISSUER_URL: it is where the provider sends people back",
                )?,
            },
            &tokens,
        )?),
        _ => None,
    };
    let purge_store = store.clone();
    let tokens_for_webtransport = tokens.clone();
    let mut page_scripts = web_security::inline_script_hashes(http::DIAGNOSTICS_PAGE);
    if let Some(root) = &config.web_root {
        webapp::check(root)?;
        let index = root.join("index.html");
        let html = std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
        page_scripts.extend(web_security::inline_script_hashes(&html));
    }
    let state = web::Data::new(AppState {
        relay: relay.clone(),
        sessions: api::session::SessionKey::new(&tokens, config.session_ttl_secs),
        tokens: tokens.clone(),
        config: config.clone(),
        registry,
        store,
        limits,
        oidc,
        outbound: outbound::HttpClient::new()?,
        webtransport: std::sync::OnceLock::new(),
        https_port: https_addr.map(|a| a.port()),
        http_addr: std::sync::OnceLock::new(),
        recorders: api::recording::Recorders::default(),
        page_scripts,
    });

    let web_root = config.web_root.clone();
    let app_state = state.clone();
    let app_challenges = challenges.clone();
    let metrics_state = state.clone();
    // Built in blocks: a server under construction is not `Send`, and must not live across the
    // awaits below.
    let (metrics_addr, metrics) = {
        let metrics =
            HttpServer::new(move || App::new().app_data(metrics_state.clone()).configure(http::metrics_routes))
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(config.metrics_listen)
                .with_context(|| format!("binding the metrics listener {}", config.metrics_listen))?;
        let metrics_addr = metrics.addrs().first().copied().context("no bound metrics address")?;
        (metrics_addr, metrics.run())
    };
    let metrics_handle = metrics.handle();
    tokio::spawn(metrics);
    let (addr, server) = {
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(app_challenges.clone())
                .app_data(web::JsonConfig::default().limit(4096).error_handler(error::json_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .wrap(actix_web::middleware::from_fn(web_security::same_site_writes))
                .wrap(actix_web::middleware::from_fn(error::count_errors(api_errors.clone())))
                .wrap(actix_web::middleware::from_fn(web_security::page_security))
                .wrap(web_security::headers())
                .wrap(actix_web::middleware::from_fn(tls::plain_http_redirect))
                .configure(tls::acme::routes)
                .configure(api::routes)
                .configure(oidc::routes)
                .configure(http::routes)
                .configure(ws::routes)
                .configure(|cfg| {
                    if let Some(root) = &web_root {
                        webapp::routes(cfg, root);
                    }
                })
        })
        // Small media packets must not wait for Nagle's algorithm (on the HTTPS listener too).
        .tcp_nodelay(true)
        .shutdown_timeout(5);
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        let listener = tcp_listener(config.listen).with_context(|| format!("binding {}", config.listen))?;
        let mut server = server.listen(listener).with_context(|| format!("listening on {}", config.listen))?;
        let addr = server.addrs().first().copied().context("no bound address")?;
        let _ = state.http_addr.set(addr);
        if let (Some(listener), Some(site)) = (https_listener, &site_tls) {
            server = server
                .listen_rustls_0_23(listener, tls::server_config(site.current.clone()))
                .context("serving HTTPS")?;
        }
        (addr, server.run())
    };
    let handle = server.handle();
    let task = tokio::spawn(server);
    // With the listeners up: the ACME CA can fetch its challenge, and WebTransport can use the
    // certificate it issued.
    let started = async {
        let tls_task = match site_tls.as_mut() {
            Some(site) => site.keep_current(&challenges).await?,
            None => None,
        };
        let webtransport = match config.webtransport_listen {
            Some(listen) => {
                let mut cert = config.cert.clone();
                if let Some((trusted_cert, trusted_key)) = site_tls.as_ref().and_then(tls::SiteTls::trusted_files) {
                    cert.tls_cert_file = Some(trusted_cert);
                    cert.tls_key_file = Some(trusted_key);
                }
                let options = cert.options(listen, &config.relay);
                Some(webtransport_server::serve(relay.clone(), tokens_for_webtransport, options).await?)
            }
            None => None,
        };
        anyhow::Ok((tls_task, webtransport))
    };
    let (tls_task, webtransport) = match started.await {
        Ok(started) => started,
        Err(e) => {
            metrics_handle.stop(false).await;
            handle.stop(false).await;
            return Err(e);
        }
    };
    if let Some(w) = &webtransport {
        let _ = state.webtransport.set((w.local_addr().port(), w.shared_hash()));
    }
    let retention = (config.recordings_retention_days > 0)
        .then(|| (config.recordings_dir(), std::time::Duration::from_secs(config.recordings_retention_days * 86_400)));
    let purge = tokio::spawn(hourly(purge_store, retention));
    tracing::info!(%addr, ?https_addr, %metrics_addr, bus = relay.bus_kind(), "actix-api listening");
    Ok(RunningServer {
        addr,
        https_addr,
        site_certificate: site_tls.map(|s| s.current),
        tls_task,
        metrics_addr,
        metrics: metrics_handle,
        relay,
        handle,
        task,
        webtransport,
        purge,
    })
}

/// Every hour: forgets revocations of tokens that have expired anyway, and deletes recordings
/// older than the retention period (when there is one: `(directory, period)`).
async fn hourly(store: Store, retention: Option<(PathBuf, std::time::Duration)>) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match store.purge_revocations(api::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired revocations forgotten"),
            Err(e) => tracing::warn!(error = %e, "purging expired revocations failed"),
        }
        if let Some((dir, period)) = &retention {
            let (dir, period) = (dir.clone(), *period);
            match tokio::task::spawn_blocking(move || api::recording::apply_retention(&dir, period)).await {
                Ok(0) | Err(_) => {}
                Ok(n) => tracing::info!(deleted = n, "recordings past their retention deleted"),
            }
        }
    }
}

/// What a connection's kernel send buffer may hold not yet sent (`TCP_NOTSENT_LOWAT`; the
/// congestion window, not this, bounds what is in flight). Beyond it a write waits, so what a
/// slow receiver cannot take stays in its relay queue, where the relay sees it (the receiver's
/// layers step down) and drops by priority. Without it the kernel's buffer grows to megabytes
/// on a fast path: seconds of video behind a slow downlink that the relay never sees. 32 KiB is
/// a few video frames.
const UNSENT_BYTES: u32 = 32 * 1024;

/// A listening socket whose connections keep at most [`UNSENT_BYTES`] unsent in the kernel
/// (accepted sockets inherit the option).
fn tcp_listener(addr: SocketAddr) -> Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_notsent_lowat(UNSENT_BYTES)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
