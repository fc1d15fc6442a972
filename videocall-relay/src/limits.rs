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

/// Packets a session may send a second, and at once. A participant sends about 30 video frames,
/// 50 audio packets, a heartbeat and its answers a second, and a screen share adds up to 30
/// frames: 300 is twice the most an honest client sends, and a flood of small packets ends there.
pub const SEND_PACKETS_PER_SEC: f64 = 300.0;
pub const SEND_PACKET_BURST: f64 = 600.0;

/// Bytes a session may send a second (16 Mbit/s: 720p camera at 1.5 Mbit/s plus a 1080p screen
/// with its keyframes several times over), and at once: eight packets of the largest size.
pub const SEND_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;
pub const SEND_BYTE_BURST: f64 = 4.0 * 1024.0 * 1024.0;

/// Key packets (`RSA_PUB_KEY`, `AES_KEY`) a session may send a second, and at once. Joining, or
/// anyone joining or leaving, makes each sender wrap a new key to each other member: up to
/// `MAX_PARTICIPANTS - 1` at once, twice when two changes come together. Each costs its
/// receiver an RSA decryption, so a flood of them is stopped here.
pub const SEND_CONTROL_PER_SEC: f64 = 100.0;
pub const SEND_CONTROL_BURST: f64 = 4.0 * MAX_PARTICIPANTS as f64;

/// Largest key packet: an RSA-4096 public key or wrapped key with its identity and a signature
/// is under 2 KiB; anything larger is padding meant to fill someone's queue.
pub const MAX_KEY_PACKET_BYTES: usize = 4 * 1024;

/// Share of one receiver's queue that control packets from any one sender may hold (packets,
/// and bytes, as a fraction of the outbox bounds). An honest sender has a few keys queued for a
/// receiver at a time; one that fills more than this is flooding, and it is the one closed.
pub const CONTROL_SHARE_PER_SENDER: usize = 16;

/// Sessions one relay holds. Each costs a task pair, up to its outbox bound in memory (a few
/// MiB when its receiver stalls) and its share of the fan-out; beyond this a relay answers
/// "full" so that a load balancer sends people elsewhere, instead of slowing everyone.
pub const MAX_SESSIONS: usize = 10_000;

/// Rooms one relay serves. Each is a NATS subscription and a little state (about 18 KiB):
/// without a cap one host could open rooms until the relay runs out of memory.
pub const MAX_ROOMS: usize = 5_000;

/// Sessions from one client address: enough for a whole room behind one office NAT, far from
/// what it takes to fill a relay.
pub const MAX_SESSIONS_PER_ADDRESS: usize = MAX_PARTICIPANTS;

/// Subscriptions a session may send a second, and at once. A page sends one when what it shows
/// changes (a page of the grid, a pin, a new speaker): a few a second at most. Each makes the
/// relay work out the demand for every sender and may tell each of them, so a flood ends here.
pub const SEND_SUBSCRIPTIONS_PER_SEC: f64 = 10.0;
pub const SEND_SUBSCRIPTION_BURST: f64 = 20.0;

/// Largest `Subscription`: a want per sender's camera and screen in the largest room is about
/// 4 KiB.
pub const MAX_SUBSCRIPTION_BYTES: usize = 8 * 1024;

/// A relay asks a sender for a keyframe of a layer a receiver waits to switch to at most this
/// often: the answer needs a round trip, and a keyframe costs the sender (and everyone taking
/// that layer) several delta frames. The same interval as a receiver's own requests.
pub const KEYFRAME_DEMAND_INTERVAL: Duration = Duration::from_secs(1);

/// A receiver's queue holding more than this is backed up: its layers step down. About a
/// quarter of a second of what a receiver of a 25-person grid with one speaker takes
/// (4 Mbit/s); a single large keyframe (under 100 KB) does not reach it alone.
pub const RECEIVER_CONGESTED_BYTES: usize = 128 * 1024;

/// A receiver's queue at or under this is clear: after [`LAYER_RECOVER_AFTER`] of it the
/// layers step back up. A few small frames in flight.
pub const RECEIVER_CLEAR_BYTES: usize = 16 * 1024;

/// Least time between two steps of a receiver's layers: a step down takes effect at the next
/// keyframe of the smaller layer (a round trip to the sender), so stepping faster would go
/// down to the smallest layer on one burst.
pub const LAYER_STEP_INTERVAL: Duration = Duration::from_secs(1);

/// A receiver's queue clear this long moves its layers one step back up: long enough that a
/// link that just recovered is not flooded again at once (the larger layer costs about three
/// times the smaller), short enough that a brief loss costs seconds of a smaller picture.
pub const LAYER_RECOVER_AFTER: Duration = Duration::from_secs(5);
