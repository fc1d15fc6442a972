//! The HTTP server: WebSocket relay endpoint, guest tokens, health and metrics.
//!
//! [`start`] runs the whole server in-process (tests start it on port 0); `main.rs` only parses
//! the configuration and calls it.

pub mod config;
mod error;
mod http;
pub mod telemetry;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpServer, web};
use anyhow::{Context, Result, bail};
use prometheus_client::registry::Registry;
use videocall_relay::bus::NatsBusOptions;
use videocall_relay::{LocalBus, NatsBus, Relay, RelayMetrics, RoomBus, TokenKey};

pub use config::{Config, LogFormat};

/// What request handlers share.
pub(crate) struct AppState {
    pub relay: Relay,
    pub tokens: TokenKey,
    pub config: Config,
    pub registry: Registry,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A started server.
pub struct RunningServer {
    addr: SocketAddr,
    relay: Relay,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Stops accepting, closes connections, and waits for the workers to finish.
    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> Result<()> {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        }
        self.stop().await;
        Ok(())
    }
}

async fn connect_bus(config: &Config) -> Result<Arc<dyn RoomBus>> {
    Ok(match &config.nats_url {
        Some(url) => {
            let options = NatsBusOptions { client_name: format!("actix-api {}", config.listen), ..Default::default() };
            Arc::new(NatsBus::connect(url, options).await.with_context(|| format!("connecting to NATS at {url}"))?)
        }
        None => Arc::new(LocalBus::new()),
    })
}

fn token_key(config: &Config) -> Result<TokenKey> {
    let secret = match (&config.token_secret, &config.nats_url) {
        (Some(secret), _) => secret.clone().into_bytes(),
        (None, Some(_)) => bail!("TOKEN_SECRET is required with NATS_URL: every relay must verify the same tokens"),
        (None, None) => {
            tracing::warn!("TOKEN_SECRET not set: using a random secret; tokens will not survive a restart");
            (0..32).map(|_| rand::random::<u8>()).collect()
        }
    };
    TokenKey::from_secret(&secret).context("TOKEN_SECRET")
}

/// Binds, starts the relay and the HTTP workers, and returns once the server accepts connections.
pub async fn start(config: Config) -> Result<RunningServer> {
    config.validate()?;
    let tokens = token_key(&config)?;
    let bus = connect_bus(&config).await?;
    let metrics = Arc::new(RelayMetrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let relay = Relay::new(bus, config.relay(), metrics);
    let state = web::Data::new(AppState { relay: relay.clone(), tokens, config: config.clone(), registry });

    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::JsonConfig::default().limit(4096).error_handler(error::json_error))
            .configure(http::routes)
            .configure(ws::routes)
    })
    .on_connect(|connection, _| {
        // Small media packets must not wait for Nagle's algorithm.
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .shutdown_timeout(5);
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let server = server.bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let addr = server.addrs().first().copied().context("no bound address")?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, bus = relay.bus_kind(), "actix-api listening");
    Ok(RunningServer { addr, relay, handle, task })
}
