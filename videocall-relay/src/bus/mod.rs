//! The room bus: how relays hand packets to each other.
//!
//! A sender's packets go to the subject `room.{room}.{session}` (`0` for the relay itself). A
//! relay holds one subscription `room.{room}.*` per room it serves, so each packet reaches each
//! relay once whatever the number of its local listeners. Both implementations pass the same
//! contract suite (`tests/bus_contract.rs`):
//! - [`LocalBus`]: one process. Still goes through the subject string and hands over bytes
//!   exactly as they would cross the wire, so single-node behaviour matches the cluster's.
//! - [`NatsBus`]: a NATS server or cluster. Its messages are sealed ([`seal`]): only relays,
//!   which hold the key, can publish what relays act on.

mod local;
mod nats;
pub mod seal;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use videocall_types::RoomId;

pub use local::LocalBus;
pub use nats::{NatsBus, NatsBusOptions};
pub use seal::{BusKey, SealError};

use crate::SessionId;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    #[error("bus is not connected")]
    NotConnected,
    #[error("bus publish timed out")]
    Timeout,
    #[error("could not connect to NATS: {0}")]
    Connect(String),
    #[error("NATS publish failed: {0}")]
    Publish(String),
    #[error("NATS subscribe failed: {0}")]
    Subscribe(String),
}

/// Receives a room's packets. Called for every packet on the room's subject, the relay's own
/// included; skipping the sender is the receiver's business.
pub trait BusSink: Send + Sync + 'static {
    /// `from`: the sender token of the subject (`None` for the relay itself).
    fn deliver(&self, from: Option<SessionId>, payload: Bytes);

    /// A message on the room's subject that was not delivered: not sealed by a relay, too old,
    /// or replayed. For counting; nothing of it is passed on.
    fn refuse(&self, why: SealError);
}

/// Ends the subscription when dropped.
pub struct BusSubscription {
    _guard: Box<dyn Send + Sync>,
}

impl BusSubscription {
    pub(crate) fn new(guard: impl Send + Sync + 'static) -> Self {
        Self { _guard: Box::new(guard) }
    }
}

pub trait RoomBus: Send + Sync + 'static {
    /// Publishes one packet of `from` (`None`: the relay itself) to the room.
    fn publish<'a>(
        &'a self,
        room: &'a RoomId,
        from: Option<SessionId>,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<(), BusError>>;

    /// Delivers one packet of `from` to this relay's own subscribers of the room only: media
    /// of a room no other relay serves, which nobody on the bus would take. In one process
    /// that is [`RoomBus::publish`].
    fn publish_here<'a>(
        &'a self,
        room: &'a RoomId,
        from: Option<SessionId>,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        self.publish(room, from, payload)
    }

    /// Subscribes to every packet of the room until the returned guard is dropped.
    fn subscribe<'a>(
        &'a self,
        room: &'a RoomId,
        sink: Arc<dyn BusSink>,
    ) -> BoxFuture<'a, Result<BusSubscription, BusError>>;

    /// True while packets can flow (always, for [`LocalBus`]).
    fn is_ready(&self) -> bool;

    /// "local" or "nats", for logs and metrics.
    fn kind(&self) -> &'static str;
}

/// `room.{room}.{session}`. Room ids are validated ([`RoomId`]), so no `.`, `*` or `>` gets in.
pub fn subject(room: &RoomId, from: Option<SessionId>) -> String {
    format!("room.{room}.{}", from.map_or(0, SessionId::get))
}

/// `room.{room}.*`
pub fn room_wildcard(room: &RoomId) -> String {
    format!("room.{room}.*")
}

/// The sender token of a subject of this room; `Err` when the subject is not of that form.
pub fn parse_subject(room: &RoomId, subject: &str) -> Result<Option<SessionId>, ()> {
    let rest = subject.strip_prefix("room.").and_then(|s| s.strip_prefix(room.as_str()));
    let token = rest.and_then(|s| s.strip_prefix('.')).ok_or(())?;
    let value: u64 = token.parse().map_err(|_| ())?;
    Ok(SessionId::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let room = RoomId::parse("r-1").unwrap();
        let s = SessionId::new(42);
        assert_eq!(subject(&room, s), "room.r-1.42");
        assert_eq!(parse_subject(&room, "room.r-1.42"), Ok(s));
        assert_eq!(parse_subject(&room, "room.r-1.0"), Ok(None));
        assert!(parse_subject(&room, "room.r-2.42").is_err());
        assert!(parse_subject(&room, "room.r-1.x").is_err());
        assert!(parse_subject(&room, "room.r-1x.4").is_err());
    }
}
