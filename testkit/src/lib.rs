//! Test support: real servers for tests, started on free ports and stopped by process id.
//!
//! Nothing here is a mock: [`NatsServer`] runs the `nats-server` binary, [`Browser`] runs
//! headless Chromium over the DevTools protocol, [`LossyLink`] is a real UDP path with delay
//! and loss.

mod browser;
mod lossy;
mod nats;
mod postgres;

pub use browser::Browser;
pub use lossy::{LinkConfig, LinkCounters, LossyLink};
pub use nats::{NatsCluster, NatsServer};
pub use postgres::ThrowawayDatabase;

use std::net::TcpListener;
use std::process::Child;

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
