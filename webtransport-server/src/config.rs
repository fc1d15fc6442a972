//! Configuration of the standalone binary; [`CertArgs`] is shared with `actix-api`, which can
//! run the listener in its own process.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser};
use videocall_relay::cli::RelayArgs;

use crate::{IdentitySource, WebTransportOptions};

#[derive(Debug, Clone, Args)]
pub struct CertArgs {
    /// Certificate chain (PEM) for WebTransport (and for actix-api's HTTPS_LISTEN). Unset: a
    /// self-signed development certificate (ECDSA P-256, valid 13 days) whose hash browsers get
    /// from actix-api's /api/v1/webtransport (single node) or the standalone relay's
    /// /certificate. Reloaded when the file changes or on SIGHUP.
    #[arg(long, alias = "tls-cert", env = "TLS_CERT_FILE", requires = "tls_key_file", value_parser = path_or_empty)]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key (PEM) for TLS_CERT_FILE.
    #[arg(long, alias = "tls-key", env = "TLS_KEY_FILE", requires = "tls_cert_file", value_parser = path_or_empty)]
    pub tls_key_file: Option<PathBuf>,

    /// Names the self-signed certificate is issued for, comma-separated.
    #[arg(long, env = "SELF_SIGNED_NAMES", value_delimiter = ',', default_value = "localhost,127.0.0.1,::1")]
    pub self_signed_names: Vec<String>,
}

/// A path, where an empty one (docker compose passes unset variables so) means none.
fn path_or_empty(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

impl CertArgs {
    pub fn identity_source(&self) -> IdentitySource {
        // Empty paths (docker compose passes unset variables so) mean unset.
        let given = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        match (given(&self.tls_cert_file), given(&self.tls_key_file)) {
            (Some(cert), Some(key)) => IdentitySource::Files { cert, key },
            _ => IdentitySource::SelfSigned { names: self.self_signed_names.clone() },
        }
    }

    pub fn options(&self, listen: SocketAddr, relay: &RelayArgs) -> WebTransportOptions {
        WebTransportOptions {
            listen,
            identity: self.identity_source(),
            max_packet_bytes: relay.max_packet_bytes,
            keep_alive: relay.ping_interval(),
            idle_timeout: relay.heartbeat_timeout(),
        }
    }
}

/// The WebTransport relay of the video conferencing platform.
#[derive(Debug, Clone, Parser)]
#[command(name = "webtransport-server", version, about)]
pub struct Config {
    /// UDP address for WebTransport (HTTP/3). `[::]` also accepts IPv4.
    #[arg(long, env = "WEBTRANSPORT_LISTEN", default_value = "[::]:4433")]
    pub listen: SocketAddr,

    /// TCP address for /healthz, /readyz and /metrics.
    #[arg(long, env = "HEALTH_LISTEN_ADDR", default_value = "0.0.0.0:4434")]
    pub health_listen: SocketAddr,

    /// The database the API servers use (`postgres://…` when scaled), for refusing the tokens
    /// of participants the host removed and of meetings that ended. Unset: removals still
    /// disconnect (they travel on the bus), but a removed participant's token is not refused
    /// here on reconnection.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// How long to keep trying a PostgreSQL database that cannot be reached yet at start-up
    /// (started beside this server, it may take that long to answer), seconds.
    #[arg(long, env = "DATABASE_WAIT_SECS", default_value_t = 60)]
    pub database_wait_secs: u64,

    #[command(flatten)]
    pub cert: CertArgs,

    #[command(flatten)]
    pub relay: RelayArgs,
}
