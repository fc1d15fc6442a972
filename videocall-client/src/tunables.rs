//! Tunables of the client core, each with its reason.

/// RSA modulus for identity keys: 2048 bits is the floor for RSA-OAEP today; generation costs
/// 0.5–1.8 s in wasm, so it happens before joining, never on the join path.
pub const IDENTITY_KEY_BITS: usize = 2048;

/// Smallest modulus accepted from a peer.
pub const MIN_PEER_KEY_BITS: usize = 2048;

/// How long a sender's previous media key still opens frames after a new one arrives: frames
/// sealed just before the rotation may still be in flight (a relay queue, a retransmission).
pub const ROTATION_GRACE_MS: u64 = 2_000;

/// Sequences remembered behind the newest one per key: a frame older than this is refused as a
/// possible replay. 30 fps video plus 50 audio packets/s is 80 packets/s, so this is about
/// 13 s of reordering, far more than any transport here produces.
pub const REPLAY_WINDOW: u64 = 1024;

/// How far ahead of the key we hold a sender's frame may be and still be tried on the ratchet:
/// each join moves every sender one step, so this is joins in a row we may miss frames for.
/// A forged frame costs at most this many HKDF steps and one AES-GCM check.
pub const MAX_RATCHET_STEPS: u32 = 64;

/// Frames held per sender while its new media key is being unwrapped (an asynchronous
/// WebCrypto call in a browser, a few milliseconds): about three seconds of 30 fps video
/// with audio, so the keyframe that follows a new key is not lost.
pub const HELD_WHILE_UNWRAPPING: usize = 256;

/// Sessions that left whose identity, counters and newest key id are remembered, should
/// presence report them back (a healed network between relays): replays from them stay
/// refused. Far more than the sessions a meeting sees; it bounds what a relay inventing
/// members and departures can make a page keep.
pub const MAX_REMEMBERED_DEPARTED: usize = 1024;
