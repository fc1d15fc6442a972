//! Separate hosts on this machine: two network namespaces joined by a veth pair, with private
//! addresses that exist only inside them. A server runs in one and browsers in the other, so a
//! test reaches the server by its network address as another computer would, never by
//! `localhost`. The namespaces (and with them the veth pair) are deleted when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// One namespace: a host.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: Ipv4Addr,
}

impl Host {
    /// `program` run inside this host's namespace (`ip netns exec`, which then execs the
    /// program, so the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(ip_program());
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// A TCP connection made from inside this host (for the test, which runs outside both):
    /// a thread joins the namespace, connects and ends; the socket stays in the namespace.
    pub fn connect(&self, to: SocketAddr) -> Result<TcpStream> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let namespace = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
                    nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("entering {}", self.name))?;
                    TcpStream::connect(to).with_context(|| format!("connecting to {to} from {}", self.name))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the connecting thread panicked"))?
        })
    }
}

/// Two hosts on one link: `server` (`.1`) and `client` (`.2`) of a /24 that is chosen per
/// process, so tests running at once do not meet.
pub struct TwoHosts {
    pub server: Host,
    pub client: Host,
}

impl TwoHosts {
    /// Makes the namespaces and the link, or says why it cannot (not root, no `ip`).
    pub fn create(label: &str) -> Result<Self> {
        let id = std::process::id();
        let subnet = [10, 213, u8::try_from(id % 250).unwrap_or(0) + 1];
        let server =
            Host { name: format!("vc-{label}-{id}-s"), address: Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 1) };
        let client =
            Host { name: format!("vc-{label}-{id}-c"), address: Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 2) };
        let hosts = Self { server, client };
        // Left over from a killed run with this pid: gone first.
        hosts.delete();
        let (server_end, client_end) = (format!("vs{id}"), format!("vc{id}"));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), hosts.server.name.clone()],
            vec!["netns".into(), "add".into(), hosts.client.name.clone()],
            [
                "link",
                "add",
                &server_end,
                "netns",
                &hosts.server.name,
                "type",
                "veth",
                "peer",
                "name",
                &client_end,
                "netns",
                &hosts.client.name,
            ]
            .map(String::from)
            .to_vec(),
        ];
        for step in &steps {
            run_ip(step)?;
        }
        for (host, end) in [(&hosts.server, &server_end), (&hosts.client, &client_end)] {
            let ns = host.name.as_str();
            run_ip(&["-n", ns, "addr", "add", &format!("{}/24", host.address), "dev", end].map(String::from))?;
            run_ip(&["-n", ns, "link", "set", end, "up"].map(String::from))?;
            // Loopback too: Chromium's DevTools and the server's metrics listen there.
            run_ip(&["-n", ns, "link", "set", "lo", "up"].map(String::from))?;
        }
        Ok(hosts)
    }

    fn delete(&self) {
        for host in [&self.server, &self.client] {
            let _ = Command::new(ip_program())
                .args(["netns", "delete", &host.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        self.delete();
    }
}

fn ip_program() -> std::path::PathBuf {
    crate::find_program("ip").unwrap_or_else(|| "ip".into())
}

fn run_ip(args: &[String]) -> Result<()> {
    let output = Command::new(ip_program()).args(args).output().context("running ip (apt-get install iproute2)")?;
    if !output.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}
