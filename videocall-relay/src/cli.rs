//! Configuration every relay binary shares (flags and environment variables), and what it
//! builds: the bus, the token key, the relay, logging.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;
use videocall_types::limits::MAX_PACKET_BYTES;

use crate::bus::{BusKey, NatsBusOptions};
use crate::outbox::OutboxLimits;
use crate::{LocalBus, NatsBus, Relay, RelayConfig, RelayMetrics, RoomBus, RoomConfig, TokenKey, limits};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// NATS server(s), comma-separated. Unset: a single node with the in-process bus.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// NATS user, when the NATS server requires authentication (it should: whatever reaches
    /// NATS can read the rooms' encrypted traffic and flood them).
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,

    /// Password of NATS_USER.
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,

    /// CA certificate (PEM) of the NATS server's TLS certificate. Set, the relay speaks TLS to
    /// NATS and refuses a server without it.
    #[arg(long, env = "NATS_TLS_CA")]
    pub nats_tls_ca: Option<std::path::PathBuf>,

    /// Secret that signs room tokens (at least 32 bytes). Every relay of a deployment needs the
    /// same one. Unset on a single node: a random secret is generated at start-up (tokens then
    /// do not survive a restart). Required with NATS_URL.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// Largest packet a client may send, in bytes.
    #[arg(long, env = "MAX_PACKET_BYTES", default_value_t = MAX_PACKET_BYTES)]
    pub max_packet_bytes: usize,

    /// Most packets queued for one receiver before old media is dropped.
    #[arg(long, env = "OUTBOX_MAX_PACKETS", default_value_t = limits::OUTBOX_MAX_PACKETS)]
    pub outbox_max_packets: usize,

    /// Most bytes queued for one receiver before old media is dropped.
    #[arg(long, env = "OUTBOX_MAX_BYTES", default_value_t = limits::OUTBOX_MAX_BYTES)]
    pub outbox_max_bytes: usize,

    /// Participants per room, across all relays.
    #[arg(long, env = "MAX_PARTICIPANTS", default_value_t = limits::MAX_PARTICIPANTS)]
    pub max_participants: usize,

    /// Sessions this relay holds at most; beyond it new ones are refused (503 `server_full`).
    #[arg(long, env = "MAX_SESSIONS", default_value_t = limits::MAX_SESSIONS)]
    pub max_sessions: usize,

    /// Rooms this relay serves at most (503 `too_many_rooms`).
    #[arg(long, env = "MAX_ROOMS", default_value_t = limits::MAX_ROOMS)]
    pub max_rooms: usize,

    /// Sessions from one client address at most (429 `too_many_connections`).
    #[arg(long, env = "MAX_SESSIONS_PER_ADDRESS", default_value_t = limits::MAX_SESSIONS_PER_ADDRESS)]
    pub max_sessions_per_address: usize,

    /// Seconds between keep-alive pings to each client (WebSocket ping, QUIC keep-alive).
    #[arg(long, env = "PING_INTERVAL_SECS", default_value_t = 5)]
    pub ping_interval_secs: u64,

    /// Seconds without anything from a client (pongs included) before its session ends.
    #[arg(long, env = "HEARTBEAT_TIMEOUT_SECS", default_value_t = limits::HEARTBEAT_TIMEOUT.as_secs())]
    pub heartbeat_timeout_secs: u64,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// An optional setting given as an empty string (as docker compose passes unset variables)
/// becomes unset.
pub fn unset_if_empty(setting: &mut Option<String>) {
    if setting.as_deref().is_some_and(|s| s.trim().is_empty()) {
        *setting = None;
    }
}

impl RelayArgs {
    /// Empty optional settings count as unset ([`unset_if_empty`]).
    pub fn normalize(&mut self) {
        unset_if_empty(&mut self.nats_url);
        unset_if_empty(&mut self.nats_user);
        unset_if_empty(&mut self.nats_password);
        unset_if_empty(&mut self.token_secret);
        if self.nats_tls_ca.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            self.nats_tls_ca = None;
        }
    }

    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> Result<()> {
        // A live client is heard from once per ping interval, and the relay records it at most
        // once per touch interval: the timeout must leave room for both.
        let minimum = self.ping_interval_secs + limits::TOUCH_INTERVAL.as_secs() + 1;
        if self.heartbeat_timeout_secs < minimum {
            bail!(
                "HEARTBEAT_TIMEOUT_SECS ({}) must be at least PING_INTERVAL_SECS + {} = {minimum}, or live clients time out",
                self.heartbeat_timeout_secs,
                limits::TOUCH_INTERVAL.as_secs() + 1
            );
        }
        if self.nats_user.is_some() != self.nats_password.is_some() {
            bail!("NATS_USER and NATS_PASSWORD go together");
        }
        if self.max_packet_bytes == 0 || self.outbox_max_bytes < self.max_packet_bytes {
            bail!("OUTBOX_MAX_BYTES must be at least MAX_PACKET_BYTES, and MAX_PACKET_BYTES above 0");
        }
        Ok(())
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_secs)
    }

    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig {
            room: RoomConfig {
                outbox: OutboxLimits { max_packets: self.outbox_max_packets, max_bytes: self.outbox_max_bytes },
                heartbeat_timeout: self.heartbeat_timeout(),
                max_participants: self.max_participants,
                ..RoomConfig::default()
            },
            max_packet_bytes: self.max_packet_bytes,
            max_sessions: self.max_sessions,
            max_rooms: self.max_rooms,
            max_sessions_per_address: self.max_sessions_per_address,
            ..RelayConfig::default()
        }
    }

    pub fn token_key(&self) -> Result<TokenKey> {
        let secret = match (&self.token_secret, &self.nats_url) {
            (Some(secret), _) => secret.clone().into_bytes(),
            (None, Some(_)) => bail!("TOKEN_SECRET is required with NATS_URL: every relay must verify the same tokens"),
            (None, None) => {
                tracing::warn!("TOKEN_SECRET not set: using a random secret; tokens will not survive a restart");
                (0..32).map(|_| rand::random::<u8>()).collect()
            }
        };
        TokenKey::from_secret(&secret).context("TOKEN_SECRET")
    }

    /// The bus: NATS when NATS_URL is set, its messages sealed with a key derived from the token
    /// secret; the in-process bus otherwise.
    pub async fn connect_bus(&self, client_name: &str, tokens: &TokenKey) -> Result<Arc<dyn RoomBus>> {
        Ok(match &self.nats_url {
            Some(url) => {
                if self.nats_user.is_none() {
                    tracing::warn!(
                        "NATS_USER not set: anything that reaches NATS can read and flood the rooms' traffic"
                    );
                }
                let options = NatsBusOptions {
                    client_name: client_name.to_owned(),
                    credentials: self.nats_user.clone().zip(self.nats_password.clone()),
                    tls_ca: self.nats_tls_ca.clone(),
                    ..Default::default()
                };
                let key = BusKey::derive(tokens);
                Arc::new(
                    NatsBus::connect(url, key, options)
                        .await
                        .with_context(|| format!("connecting to NATS at {url}"))?,
                )
            }
            None => Arc::new(LocalBus::new()),
        })
    }

    /// Validates, connects the bus and starts the relay; its metrics go into a new registry.
    pub async fn start_relay(&self, client_name: &str) -> Result<(Relay, TokenKey, Registry)> {
        self.validate()?;
        let tokens = self.token_key()?;
        let bus = self.connect_bus(client_name, &tokens).await?;
        let metrics = Arc::new(RelayMetrics::default());
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        Ok((Relay::new(bus, self.relay_config(), metrics), tokens, registry))
    }
}

/// Logging through `tracing`; `RUST_LOG` filters (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Waits for SIGINT or SIGTERM, the signals a server stops on.
pub async fn shutdown_signal() -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
    }
    Ok(())
}
