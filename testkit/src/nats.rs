use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{find_program, free_port, wait_for_port};

/// A `nats-server` process on a free port, killed (by pid) when dropped.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    cluster_port: Option<u16>,
    routes: Vec<u16>,
    log: PathBuf,
    config: Option<PathBuf>,
    ca: Option<PathBuf>,
}

/// What a secured server demands: a user and password and, with `tls`, TLS with a certificate
/// that `internal-tls` (the workspace binary docker compose uses for NATS) issues for it, from a
/// CA of its own ([`NatsServer::tls_ca`]).
#[derive(Debug, Clone)]
pub struct NatsSecurity {
    pub user: String,
    pub password: String,
    pub tls: bool,
}

/// `NATS_SERVER_BIN`, else `nats-server` on `PATH` or in an `sbin` directory (where Debian's
/// package puts it, off a normal user's `PATH`).
fn binary() -> PathBuf {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| find_program("nats-server"))
        .unwrap_or_else(|| "nats-server".into())
}

impl NatsServer {
    /// A standalone server.
    pub fn start() -> Result<Self> {
        Self::spawn(free_port(), None, Vec::new())
    }

    /// A standalone server that admits only `security.user`, over TLS when asked.
    pub fn start_secured(security: &NatsSecurity) -> Result<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nats-{port}-secured"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        let mut config = format!(
            "authorization {{\n  users = [ {{ user: {}, password: {} }} ]\n}}\n",
            quote(&security.user),
            quote(&security.password)
        );
        let mut ca = None;
        if security.tls {
            // The certificate comes from the tool docker compose uses for NATS.
            let status = Command::new(crate::workspace_binary("internal-tls")?)
                .arg("--dir")
                .arg(&dir)
                .args(["--names", "127.0.0.1,localhost"])
                .env("RUST_LOG", "warn")
                .status()
                .context("running internal-tls")?;
            anyhow::ensure!(status.success(), "internal-tls failed: {status}");
            config.push_str(&format!(
                "tls {{\n  cert_file: {}\n  key_file: {}\n}}\n",
                quote(&dir.join("server.pem").to_string_lossy()),
                quote(&dir.join("server-key.pem").to_string_lossy())
            ));
            ca = Some(dir.join("ca.pem"));
        }
        let config_path = dir.join("nats.conf");
        std::fs::write(&config_path, config).with_context(|| format!("writing {}", config_path.display()))?;
        let log = dir.join("nats.log");
        let mut server =
            Self { child: None, port, cluster_port: None, routes: Vec::new(), log, config: Some(config_path), ca };
        server.launch()?;
        Ok(server)
    }

    fn spawn(port: u16, cluster_port: Option<u16>, routes: Vec<u16>) -> Result<Self> {
        let log = std::env::temp_dir().join(format!("nats-{port}.log"));
        let mut server = Self { child: None, port, cluster_port, routes, log, config: None, ca: None };
        server.launch()?;
        Ok(server)
    }

    /// The CA certificate (PEM) of a TLS server's certificate.
    pub fn tls_ca(&self) -> Option<&std::path::Path> {
        self.ca.as_deref()
    }

    fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(binary());
        if let Some(config) = &self.config {
            cmd.arg("-c").arg(config);
        }
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-l"])
            .arg(&self.log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(cluster_port) = self.cluster_port {
            cmd.args(["--cluster_name", "test", "--cluster", &format!("nats://127.0.0.1:{cluster_port}")]);
            let routes: Vec<String> = self.routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
            if !routes.is_empty() {
                cmd.args(["--routes", &routes.join(",")]);
            }
        }
        let child =
            cmd.spawn().with_context(|| format!("starting {} (apt-get install nats-server)", binary().display()))?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10)).context("nats-server")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port(s).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        // A secured server's directory (its configuration, certificates and log) is its own.
        if let Some(dir) = self.config.as_ref().and_then(|c| c.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Several `nats-server` processes joined by routes into one cluster.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub fn start(size: usize) -> Result<Self> {
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes = Vec::with_capacity(size);
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let routes = cluster_ports.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| *p).collect();
            nodes.push(NatsServer::spawn(free_port(), Some(*cluster_port), routes)?);
        }
        Ok(Self { nodes })
    }
}
