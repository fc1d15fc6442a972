//! Test support: real servers for tests, started on free ports and stopped by process id.
//!
//! Nothing here is a mock: [`NatsServer`] runs the `nats-server` binary.

mod nats;

pub use nats::{NatsCluster, NatsServer};

use std::net::TcpListener;

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    // Binding port 0 on loopback only fails if the machine has no loopback.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback must be available to tests")
}
