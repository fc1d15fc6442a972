//! Configuration: every option is a flag and an environment variable (`actix-api --help`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use videocall_relay::limits;
use videocall_relay::outbox::OutboxLimits;
use videocall_relay::{RelayConfig, RoomConfig};
use videocall_types::limits::MAX_PACKET_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The WebSocket relay and HTTP API of the video conferencing platform.
#[derive(Debug, Clone, Parser)]
#[command(name = "actix-api", version, about)]
pub struct Config {
    /// Address to listen on for HTTP and WebSocket.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// NATS server(s), comma-separated. Unset: a single node with the in-process bus.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// Secret that signs room tokens (at least 32 bytes). Every relay of a deployment needs the
    /// same one. Unset on a single node: a random secret is generated at start-up (tokens then
    /// do not survive a restart). Required with NATS_URL.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// Issue guest tokens at POST /api/v1/guest-tokens, so browsers can join without an account.
    #[arg(long, env = "GUEST_TOKENS", default_value_t = true, action = clap::ArgAction::Set)]
    pub guest_tokens: bool,

    /// Lifetime of a guest token, in seconds (default 12 h: a working day's meetings).
    #[arg(long, env = "GUEST_TOKEN_TTL_SECS", default_value_t = 12 * 3600)]
    pub guest_token_ttl_secs: u64,

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

    /// Seconds between WebSocket pings to each client.
    #[arg(long, env = "PING_INTERVAL_SECS", default_value_t = 5)]
    pub ping_interval_secs: u64,

    /// Seconds without any frame from a client (pongs included) before its session ends.
    #[arg(long, env = "HEARTBEAT_TIMEOUT_SECS", default_value_t = limits::HEARTBEAT_TIMEOUT.as_secs())]
    pub heartbeat_timeout_secs: u64,

    /// HTTP worker threads (default: one per CPU).
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// The defaults, listening on a free loopback port: what tests start.
    pub fn for_tests() -> Self {
        let mut config = Self::parse_from(["actix-api", "--listen", "127.0.0.1:0", "--workers", "2"]);
        config.token_secret = Some("test secret that is long enough for HS256".into());
        config
    }

    pub fn relay(&self) -> RelayConfig {
        RelayConfig {
            room: RoomConfig {
                outbox: OutboxLimits { max_packets: self.outbox_max_packets, max_bytes: self.outbox_max_bytes },
                heartbeat_timeout: Duration::from_secs(self.heartbeat_timeout_secs),
                max_participants: self.max_participants,
                ..RoomConfig::default()
            },
            max_packet_bytes: self.max_packet_bytes,
            ..RelayConfig::default()
        }
    }

    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> anyhow::Result<()> {
        // A live client is heard from once per ping interval, and the relay records it at most
        // once per touch interval: the timeout must leave room for both.
        let minimum = self.ping_interval_secs + limits::TOUCH_INTERVAL.as_secs() + 1;
        if self.heartbeat_timeout_secs < minimum {
            anyhow::bail!(
                "HEARTBEAT_TIMEOUT_SECS ({}) must be at least PING_INTERVAL_SECS + {} = {minimum}, or live clients time out",
                self.heartbeat_timeout_secs,
                limits::TOUCH_INTERVAL.as_secs() + 1
            );
        }
        if self.max_packet_bytes == 0 || self.outbox_max_bytes < self.max_packet_bytes {
            anyhow::bail!("OUTBOX_MAX_BYTES must be at least MAX_PACKET_BYTES, and MAX_PACKET_BYTES above 0");
        }
        Ok(())
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }
}
