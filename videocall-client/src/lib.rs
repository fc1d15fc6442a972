//! The client core shared by the web client (`yew-ui`) and the native `bot`: end-to-end
//! encryption, peer and key state, packet framing. No sockets, no clock reads, no browser APIs:
//! time comes in as milliseconds, randomness as an RNG, packets as bytes.
//!
//! - [`crypto`]: identity keys (RSA-OAEP) and fingerprints, per-sender media keys (AES-256-GCM)
//!   with unique nonces and bound identity, the replay window, and the [`crypto::KeyRing`] of
//!   keys received from others, with a grace period when a sender rotates.
//! - [`packets`]: those keys and frames as `PacketWrapper`s: public keys, wrapped media keys
//!   addressed to one session, sealed media.
//! - [`peers`]: one participant's key exchange state: packets in, packets out, events.
//!
//! Builds for native targets and `wasm32-unknown-unknown`.

pub mod crypto;
pub mod packets;
pub mod peers;
pub mod tunables;

/// Milliseconds on the caller's monotonic clock (`performance.now()` in a browser).
pub type Millis = u64;
