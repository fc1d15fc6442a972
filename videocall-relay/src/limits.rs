//! Tunables of the relay, each with the reason for its value. Servers expose the ones an
//! operator may want to change as flags; these are the defaults.

use std::time::Duration;

/// Most packets waiting for one receiver. At 25 participants a receiver gets about
/// 2,000 packets/s; 1,024 is half a second of backlog, beyond which media is stale anyway.
pub const OUTBOX_MAX_PACKETS: usize = 1024;

/// Most bytes waiting for one receiver: about half a second of 25 senders at 1.5 Mbit/s, and
/// with the packet bound it caps a stalled receiver's memory at a few MiB.
pub const OUTBOX_MAX_BYTES: usize = 4 * 1024 * 1024;

/// A session that sends nothing (not even a pong) for this long is considered gone.
/// Three missed pings at the servers' default ping interval of 5 s.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a relay tells the other relays who it has in a room. Repairs presence a lost
/// bus message or a restarted relay left inconsistent.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(5);

/// A participant on another relay that has been neither refreshed nor heard from for this
/// long is reported as left: its relay is gone. Three missed refreshes.
pub const REMOTE_MEMBER_TIMEOUT: Duration = Duration::from_secs(15);

/// Participants per room across all relays. Full-mesh end-to-end encryption and fan-out cost
/// grow with the square of the room size; beyond 100 a conference needs a different design.
pub const MAX_PARTICIPANTS: usize = 100;

/// Longest a bus publish may wait before the packet is dropped and counted, so a NATS outage
/// turns into counted loss instead of a stalled sender.
pub const BUS_PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

/// Messages async-nats buffers per subscription before it drops them as a slow consumer.
/// One subscription carries a whole room: 8,192 is several seconds of a busy room.
pub const NATS_SUBSCRIPTION_CAPACITY: usize = 8192;

/// Packets a session's writer takes from its outbox per lock.
pub const DRAIN_BATCH: usize = 64;

/// A reader refreshes its session's liveness at most this often, so the room lock is not
/// taken for every packet just to record that the sender is alive.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(1);
