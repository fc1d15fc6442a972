//! End-to-end encryption.
//!
//! Every participant has an identity ([`IdentityPublic`]): an RSA-OAEP key that media keys are
//! wrapped to and an ECDSA P-256 key that signs what it sends about keys. Its SHA-256
//! [`Fingerprint`] covers both and is shown to users to compare out of band; the room's
//! [`SafetyCode`] lets a whole room compare at once. Every sender seals its media with its own
//! AES-256-GCM key ([`SenderKey`]), which it wraps to each recipient's identity
//! ([`PeerIdentity::wrap`]) and sends addressed to that recipient alone, signed
//! ([`statement::key_grant`]). Receivers keep what they were given in a [`KeyRing`], where key
//! ids only go forward.
//!
//! When someone joins, every sender steps its key along a one-way ratchet
//! ([`KeyMaterial::ratchet`]): members who hold the old key step with it, the newcomer is given
//! only the new one. When someone leaves, every sender draws a fresh key and wraps it to those
//! still here.
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
mod safety;
pub mod statement;

pub use identity::{Fingerprint, IdentityPublic, KeyError, LocalIdentity, PeerIdentity};
pub use keyring::{KeyRing, StaleKey};
pub use media_key::{KeyMaterial, OpenError, ReceiverKey, SealError, SenderKey, TAG_BYTES};
pub use replay::ReplayWindow;
pub use safety::SafetyCode;
