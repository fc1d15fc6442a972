//! Test support: real servers for tests, started on free ports and stopped by process id.
//!
//! Nothing here is a mock: [`NatsServer`] runs the `nats-server` binary, [`PostgresServer`] a
//! throwaway PostgreSQL server of the test's own, [`Browser`] runs headless Chromium over the
//! DevTools protocol, [`LossyLink`] is a real UDP path with delay and loss, [`ThrottledTcp`] a
//! TCP path with a slow downlink, [`media`] asks Debian's ffmpeg about media files.

mod browser;
mod disk;
mod lossy;
pub mod media;
mod nats;
mod netns;
mod pebble;
mod postgres;
mod throttle;
mod tls;

pub use browser::{Browser, LaunchOptions};
pub use disk::SmallDisk;
pub use lossy::{LinkConfig, LinkCounters, LossyLink};
pub use nats::{NatsCluster, NatsSecurity, NatsServer};
pub use netns::{Host, TwoHosts};
pub use pebble::Pebble;
pub use postgres::{PostgresServer, ThrowawayDatabase, postgres_binaries};
pub use throttle::ThrottledTcp;
pub use tls::{Https, HttpsResponse, presented_certificate, spki_sha256_base64};

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// A child process killed (by pid) and reaped when dropped: servers, bots and VMs a test or
/// benchmark started must not outlive it.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    // Binding port 0 on loopback only fails if the machine has no loopback.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback must be available to tests")
}

/// A UDP port nothing is bound to right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("loopback must be available to tests")
}

/// Path of a binary of this workspace, for tests that run a server as a separate process.
/// `cargo xtask test` builds every binary first; a nested `cargo build` from inside a test would
/// wait on the outer `cargo test`'s lock, so a missing binary is an error with instructions.
pub fn workspace_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).context("unexpected test executable location")?;
    let binary = profile_dir.join(name);
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`, which `cargo xtask test` does)",
        binary.display()
    );
    Ok(binary)
}

/// Waits until something accepts TCP connections on the loopback `port`.
pub fn wait_for_port(port: u16, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("nothing listened on port {port} within {limit:?}")
}

/// Directories searched after `PATH`: Debian installs servers (`nats-server`) in `/usr/sbin`,
/// which is not on a normal user's `PATH`.
const SBIN: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Where the program `name` is: on `PATH`, else in an `sbin` directory.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What `/proc/{pid}/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    pub parent: u32,
    /// User and system CPU time so far.
    pub cpu_seconds: f64,
}

/// Reads `/proc/{pid}/stat`; `None` when the process is gone or the file unreadable.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces: the
    // parent is the 2nd; utime and stime the 12th and 13th, in USER_HZ ticks (100 a second).
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(ProcStat { parent: number(1)? as u32, cpu_seconds: (number(11)? + number(12)?) as f64 / 100.0 })
}
