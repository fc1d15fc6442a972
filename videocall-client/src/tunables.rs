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
