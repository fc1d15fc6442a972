//! Configuration: every option is a flag and an environment variable (`actix-api --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use videocall_relay::cli::RelayArgs;
use webtransport_server::CertArgs;

/// The WebSocket relay and HTTP API of the video conferencing platform.
#[derive(Debug, Clone, Parser)]
#[command(name = "actix-api", version, about)]
pub struct Config {
    /// Address to listen on for HTTP and WebSocket.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address to listen on for HTTPS (the page, the API and WebSocket), so that browsers on
    /// other computers get a secure context. The certificate: from an ACME CA with DOMAIN, the
    /// operator's with TLS_CERT_FILE and TLS_KEY_FILE, else self-signed for this machine's names
    /// and addresses (kept in STATE_DIR). With it, plain HTTP from other computers is redirected
    /// here; on this machine (localhost) plain HTTP keeps working. `cargo xtask run` sets
    /// `0.0.0.0:8443`. Unset: plain HTTP only (behind a proxy that terminates TLS, say).
    #[arg(long, env = "HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,

    /// The site's domain (`meet.example.org`): a certificate for it from the ACME CA at
    /// ACME_DIRECTORY, obtained at start-up and renewed by this server, used for HTTPS and
    /// WebTransport. The CA checks the domain over plain HTTP (HTTP-01), so LISTEN_ADDR must be
    /// reachable on port 80 under that name. Sets PUBLIC_URL unless given.
    #[arg(long, env = "DOMAIN", conflicts_with = "tls_cert_file")]
    pub domain: Option<String>,

    /// The ACME CA's directory URL (default: Let's Encrypt).
    #[arg(long, env = "ACME_DIRECTORY", default_value = crate::tls::acme::LETS_ENCRYPT)]
    pub acme_directory: String,

    /// An e-mail address the CA may write to about the certificate.
    #[arg(long, env = "ACME_CONTACT")]
    pub acme_contact: Option<String>,

    /// A root certificate (PEM) to trust for the ACME directory, for a test CA such as Pebble.
    /// Unset: the system's roots.
    #[arg(long, env = "ACME_CA_FILE")]
    pub acme_ca_file: Option<PathBuf>,

    /// Where the server keeps its certificates (under `tls/`): default the directory of the
    /// SQLite database file, else the working directory.
    #[arg(long, env = "STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Address of the metrics listener (GET /metrics, Prometheus text format). It is separate
    /// from LISTEN_ADDR so that a reverse proxy or Ingress in front of the site never exposes
    /// it; the default answers on this machine only.
    #[arg(long, env = "METRICS_LISTEN_ADDR", default_value = "127.0.0.1:9090")]
    pub metrics_listen: SocketAddr,

    /// Issue guest tokens at POST /api/v1/guest-tokens, so browsers can join without an account.
    #[arg(long, env = "GUEST_TOKENS", default_value_t = true, action = clap::ArgAction::Set)]
    pub guest_tokens: bool,

    /// Lifetime of a room token (guests and meetings), in seconds. A token opens one session,
    /// and the web client, the bot and the load generator ask for a new one for every
    /// connection, so five minutes is plenty; a token that leaks (a proxy log of the WebSocket
    /// URL) is useless once used and soon expired.
    #[arg(long, env = "ROOM_TOKEN_TTL_SECS", default_value_t = 300)]
    pub room_token_ttl_secs: u64,

    /// The recorder the host starts (`bot`, run as `bot record` and `bot snapshot`): a path, or a
    /// name looked up beside this server's binary, then on PATH.
    #[arg(long, env = "RECORDER_BIN", default_value = "bot")]
    pub recorder_bin: PathBuf,

    /// Where recordings are kept, a directory per meeting (default: STATE_DIR/recordings).
    #[arg(long, env = "RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,

    /// Recordings older than this many days are deleted, checked hourly (0: kept for ever).
    #[arg(long, env = "RECORDINGS_RETENTION_DAYS", default_value_t = 0)]
    pub recordings_retention_days: u64,

    /// Free space (MiB) recording keeps where recordings go: below it recording does not start,
    /// and a recorder stops (its files ended properly) with a notice to the room.
    #[arg(long, env = "RECORDINGS_MIN_FREE_MB", default_value_t = 512)]
    pub recordings_min_free_mb: u64,

    /// How long a recording's download link works, seconds.
    #[arg(long, env = "RECORDING_LINK_TTL_SECS", default_value_t = 3600)]
    pub recording_link_ttl_secs: u64,

    /// Lifetime of a session cookie (guest or signed in), in seconds (default 7 days).
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_ttl_secs: u64,

    /// Requests per minute and client address to the endpoints that issue room tokens (join,
    /// token, guest tokens). The waiting room polls once a second.
    #[arg(long, env = "RATE_LIMIT_TOKENS_PER_MINUTE", default_value_t = 120)]
    pub rate_limit_tokens_per_minute: u32,

    /// Requests per minute and client address to sign-in, guest sessions and meeting
    /// passwords.
    #[arg(long, env = "RATE_LIMIT_LOGINS_PER_MINUTE", default_value_t = 30)]
    pub rate_limit_logins_per_minute: u32,

    /// Meetings one client address, and one session, may create a minute (each hashes its
    /// password with argon2, which costs 19 MiB and tens of milliseconds).
    #[arg(long, env = "RATE_LIMIT_MEETINGS_PER_MINUTE", default_value_t = 10)]
    pub rate_limit_meetings_per_minute: u32,

    /// Wrong passwords a minute for one meeting, from all addresses together (bursts of ten):
    /// beyond it the meeting answers 429 until the next attempt is due, so a password cannot be
    /// guessed from many addresses at once.
    #[arg(long, env = "RATE_LIMIT_PASSWORD_FAILURES_PER_MINUTE", default_value_t = 6)]
    pub rate_limit_password_failures_per_minute: u32,

    /// Proxies (addresses or CIDRs, comma-separated) in front of this server whose
    /// `X-Forwarded-For` or `Forwarded` header names the client. Rate limits are kept per client
    /// address; behind a proxy not listed here every client counts as the proxy, and a header
    /// from anyone not listed is ignored.
    #[arg(long, env = "TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// HTTP worker threads (default: one per CPU).
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,

    /// Also serve WebTransport from this process, on this UDP address (single node; `cargo
    /// xtask run` sets `[::]:4433`). Unset: WebSocket only.
    #[arg(long, env = "WEBTRANSPORT_LISTEN")]
    pub webtransport_listen: Option<SocketAddr>,

    /// The WebTransport URL browsers are told (GET /api/v1/webtransport). Unset: the request's
    /// host with the port of WEBTRANSPORT_LISTEN.
    #[arg(long, env = "WEBTRANSPORT_URL")]
    pub webtransport_url: Option<String>,

    /// Where a separate webtransport-server tells its development certificate's hash (its
    /// `http://host:4434/certificate`): passed on to browsers by GET /api/v1/webtransport, so the
    /// self-signed mode works when the relays run apart. Unset: only the in-process listener's.
    #[arg(long, env = "WEBTRANSPORT_CERTIFICATE_URL")]
    pub webtransport_certificate_url: Option<String>,

    /// Serve the built web client from this directory (`cargo xtask web` builds it into
    /// target/web; `cargo xtask run` sets this). Unset: API and relay only.
    #[arg(long, env = "WEB_ROOT")]
    pub web_root: Option<std::path::PathBuf>,

    /// The database: `sqlite:PATH` (a file, created if missing; the single-node default),
    /// `sqlite::memory:` (gone when the process ends) or `postgres://user:pass@host/db` (scaled:
    /// every relay shares it). The schema is applied at start-up.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:videocall.db")]
    pub database_url: String,

    /// How long to keep trying a PostgreSQL database that cannot be reached yet at start-up
    /// (started beside this server, it may take that long to answer), seconds.
    #[arg(long, env = "DATABASE_WAIT_SECS", default_value_t = 60)]
    pub database_wait_secs: u64,

    /// OpenID Connect issuer URL (its `/.well-known/openid-configuration` is read). Set: a
    /// "Sign in" button, and meetings may require signed-in users. Unset: guests only.
    #[arg(long, env = "OIDC_ISSUER_URL", requires = "oidc_client_id")]
    pub oidc_issuer_url: Option<String>,

    /// The client id this server is registered under at the provider.
    #[arg(long, env = "OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// The client secret (unset for a public client: PKCE alone).
    #[arg(long, env = "OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,

    /// This site's origin as browsers reach it (`https://meet.example.org`): the OIDC redirect
    /// URI is `{PUBLIC_URL}/api/v1/auth/callback`. Unset: the origin of each request.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Print a kiosk token for this room and exit: `/room/{ROOM}?kiosk={TOKEN}` joins by
    /// itself, camera and microphone on, for a meeting-room screen. Signed with TOKEN_SECRET,
    /// which must be set (the servers that check it use the same one).
    #[arg(long, value_name = "ROOM")]
    pub issue_kiosk_token: Option<String>,

    /// Days the token of --issue-kiosk-token is valid.
    #[arg(long, default_value_t = 30, requires = "issue_kiosk_token")]
    pub kiosk_token_days: u64,

    #[command(flatten)]
    pub cert: CertArgs,

    #[command(flatten)]
    pub relay: RelayArgs,
}

impl Config {
    /// Optional settings given as empty strings (as docker compose passes unset variables)
    /// count as unset.
    pub fn normalized(mut self) -> Self {
        for setting in [
            &mut self.webtransport_url,
            &mut self.webtransport_certificate_url,
            &mut self.oidc_issuer_url,
            &mut self.oidc_client_id,
            &mut self.oidc_client_secret,
            &mut self.public_url,
            &mut self.trusted_proxies,
            &mut self.domain,
            &mut self.acme_contact,
        ] {
            videocall_relay::cli::unset_if_empty(setting);
        }
        if let (Some(domain), None, Some(https)) = (&self.domain, &self.public_url, self.https_listen) {
            self.public_url = Some(match https.port() {
                443 => format!("https://{domain}"),
                port => format!("https://{domain}:{port}"),
            });
        }
        self.relay.normalize();
        self
    }

    /// Where certificates are kept: STATE_DIR, else the SQLite file's directory, else the
    /// working directory.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        let file = self.database_url.strip_prefix("sqlite:").map(|f| f.trim_start_matches("//"));
        match file.filter(|f| !f.starts_with(':') && !f.is_empty()).map(std::path::Path::new) {
            Some(file) => file.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| ".".into(), PathBuf::from),
            None => ".".into(),
        }
    }

    /// Where recordings go: RECORDINGS_DIR, else STATE_DIR/recordings.
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir.clone().unwrap_or_else(|| self.state_dir().join("recordings"))
    }

    /// Where the HTTPS certificate comes from; `None` without HTTPS_LISTEN.
    pub fn site_tls(&self) -> anyhow::Result<Option<crate::tls::Source>> {
        use crate::tls::{AcmeSettings, Source};
        if self.https_listen.is_none() {
            anyhow::ensure!(
                self.domain.is_none(),
                "DOMAIN needs HTTPS_LISTEN: the address its certificate is served on"
            );
            return Ok(None);
        }
        let dir = self.state_dir().join("tls");
        Ok(Some(match (&self.domain, self.cert.identity_source()) {
            (Some(domain), _) => Source::Acme(AcmeSettings {
                domain: domain.clone(),
                directory: self.acme_directory.clone(),
                contact: self.acme_contact.clone(),
                ca_file: self.acme_ca_file.clone(),
                dir,
            }),
            (None, webtransport_server::IdentitySource::Files { cert, key }) => Source::Files { cert, key },
            (None, webtransport_server::IdentitySource::SelfSigned { .. }) => Source::SelfSigned { dir },
        }))
    }

    /// The defaults, listening on a free loopback port: what tests start.
    pub fn for_tests() -> Self {
        let mut config = Self::parse_from([
            "actix-api",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--database-url",
            "sqlite::memory:",
        ]);
        config.relay.token_secret = Some("test secret that is long enough for HS256".into());
        config
    }
}
