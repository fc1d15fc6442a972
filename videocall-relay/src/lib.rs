//! The relay core shared by the WebSocket server (`actix-api`) and the WebTransport server.
//!
//! - [`room`]: one room on one relay as a state machine with no I/O and no clock reads.
//! - [`outbox`]: a receiver's bounded queue and its drop policy; [`budget`]: what one session
//!   may send.
//! - [`wire`]: reading and stamping the `PacketWrapper` header without touching the payload.
//! - [`bus`]: the [`RoomBus`] trait that connects relays, with [`LocalBus`] (one process) and
//!   [`NatsBus`] (NATS subjects `room.{room}.{session}`).
//! - [`token`]: room tokens (JWT, HS256); [`auth`]: the checks before a session starts.
//! - [`relay`]: the async driver that runs rooms over a bus for any transport; a transport
//!   adapter only moves bytes between its sockets and a [`SessionHandle`].
//! - [`metrics`]: the Prometheus metrics both servers expose.
//!
//! This crate knows nothing of Actix or wtransport.

pub mod auth;
pub mod budget;
pub mod bus;
#[cfg(feature = "cli")]
pub mod cli;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod relay;
pub mod room;
pub mod token;
pub mod wire;

use std::fmt;
use std::num::NonZeroU64;

pub use bus::{BusError, LocalBus, NatsBus, RoomBus};
pub use metrics::RelayMetrics;
pub use relay::{Relay, RelayConfig, Revocations, SessionError, SessionHandle};
pub use room::{CloseReason, Member, Moderation, RoomConfig};
pub use token::{RoomToken, TokenError, TokenKey};

/// A session: one connection of one participant. Chosen at random by the relay that accepts
/// it, so sessions from different relays do not collide. 0 is reserved (the relay itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(NonZeroU64);

impl SessionId {
    pub fn new(value: u64) -> Option<Self> {
        NonZeroU64::new(value).map(Self)
    }

    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::new(rand::random()) {
                return id;
            }
        }
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
