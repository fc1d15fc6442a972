//! The client core shared by the web client (`yew-ui`) and the native `bot`: end-to-end
//! encryption, peer and key state, packet framing. No sockets, no clock reads, no browser APIs:
//! time comes in as milliseconds, randomness as an RNG, packets as bytes.
//!
//! - [`crypto`]: identities (RSA-OAEP to wrap, ECDSA P-256 to sign) and their fingerprints,
//!   the room safety code, per-sender media keys (AES-256-GCM) with unique nonces, bound
//!   identity and a join ratchet, the replay window, and the [`crypto::KeyRing`] of keys
//!   received from others, forward-only, with a grace period when a sender rotates.
//! - [`packets`]: those keys and frames as `PacketWrapper`s: signed identity announcements,
//!   signed wrapped media keys addressed to one session, sealed media.
//! - [`messages`]: keyframe requests, heartbeat answers and chat lines, built one way.
//! - [`peers`]: one participant's key exchange state against a relay it does not trust: packets
//!   in, packets out, private-key work out and back, events.
//! - [`call`]: the call engine over it, what the web client and the bot both run: the
//!   connection's life (backoff, final closes, leaving), media packets in and out as bytes,
//!   heartbeats and their answers, keyframe requests, the bitrate ladder.
//!
//! Builds for native targets and `wasm32-unknown-unknown`.

pub mod call;
pub mod crypto;
pub mod messages;
pub mod packets;
pub mod peers;
pub mod tunables;

/// Milliseconds on the caller's monotonic clock (`performance.now()` in a browser).
pub type Millis = u64;
