//! End-to-end encryption.
//!
//! Every participant has an RSA identity key ([`IdentityKey`]); its public half travels in
//! `RSA_PUB_KEY` packets and its SHA-256 [`Fingerprint`] is shown to users to compare out of
//! band. Every sender seals its media with its own AES-256-GCM key ([`SenderKey`]), which it
//! wraps with RSA-OAEP (SHA-256) to each recipient's public key ([`PeerKey::wrap`]) and sends
//! addressed to that recipient alone. Receivers keep what they were given in a [`KeyRing`].
//!
//! A sealed frame ([`videocall_types::EncryptedMedia`]) carries the key id and a sequence
//! number in clear. The nonce is the key's random 4-byte salt followed by the 8-byte sequence,
//! so it never repeats under one key; the associated data binds the sender's user id (as the
//! relay stamps it), the key id and the sequence, so a frame cannot be re-attributed, moved to
//! another key or renumbered. Each key opens a sequence at most once.

mod identity;
mod keyring;
mod media_key;
mod replay;

pub use identity::{Fingerprint, IdentityKey, KeyError, PeerKey};
pub use keyring::KeyRing;
pub use media_key::{KeyMaterial, OpenError, ReceiverKey, SealError, SenderKey};
pub use replay::ReplayWindow;
