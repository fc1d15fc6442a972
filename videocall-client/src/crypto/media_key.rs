//! Media keys: a sender seals frames with its [`SenderKey`]; each receiver opens them with the
//! matching [`ReceiverKey`].

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bytes::{Bytes, BytesMut};
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::Sha256;
use thiserror::Error;
use videocall_types::{EncryptedMedia, Route};

use super::replay::{ReplayWindow, Verdict};

/// An AES-256 key and the salt that starts every nonce under it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    pub key: [u8; 32],
    pub salt: [u8; 4],
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(..)")
    }
}

impl KeyMaterial {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut material = Self { key: [0; 32], salt: [0; 4] };
        rng.fill_bytes(&mut material.key);
        rng.fill_bytes(&mut material.salt);
        material
    }

    /// Key then salt, what gets wrapped.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0; 36];
        out[..32].copy_from_slice(&self.key);
        out[32..].copy_from_slice(&self.salt);
        out
    }

    /// The next key on this sender's ratchet: HKDF-SHA256 of this one. Whoever holds a key can
    /// step forward to the next; nobody can step back, so a newcomer given the next key cannot
    /// open what was sealed before it.
    pub fn ratchet(&self) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, &self.to_bytes());
        let mut next = [0u8; 36];
        // 36 bytes is far below HKDF-SHA256's 8160-byte limit: expanding cannot fail.
        let _ = hkdf.expand(b"videocall media ratchet v1", &mut next);
        let mut material = Self { key: [0; 32], salt: [0; 4] };
        material.key.copy_from_slice(&next[..32]);
        material.salt.copy_from_slice(&next[32..]);
        material
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 36] = bytes.try_into().ok()?;
        let (key, salt) = bytes.split_at(32);
        Some(Self { key: key.try_into().ok()?, salt: salt.try_into().ok()? })
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.key))
    }

    fn nonce(&self, sequence: u64) -> [u8; 12] {
        let mut nonce = [0; 12];
        nonce[..4].copy_from_slice(&self.salt);
        nonce[4..].copy_from_slice(&sequence.to_be_bytes());
        nonce
    }
}

/// The associated data: who sent it, under which key, at which sequence, and the plaintext
/// routing header relays read (stream, layer, keyframe, frame counter).
fn associated_data(user: &str, key_id: u32, sequence: u64, route: &Route) -> Vec<u8> {
    const LABEL: &[u8] = b"videocall media v2";
    let route = route.to_bytes();
    let mut aad = Vec::with_capacity(LABEL.len() + 2 + user.len() + 12 + route.len());
    aad.extend_from_slice(LABEL);
    aad.extend_from_slice(&u16::try_from(user.len()).unwrap_or(u16::MAX).to_be_bytes());
    aad.extend_from_slice(user.as_bytes());
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(&sequence.to_be_bytes());
    aad.extend_from_slice(&route);
    aad
}

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    #[error("every sequence of this key is used; rotate")]
    Exhausted,
    #[error("AES-GCM refused to seal")]
    Cipher,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    #[error("no key {key_id} from this sender")]
    UnknownKey { key_id: u32 },
    #[error("frame does not authenticate (tampered, or not from this sender)")]
    Tampered,
    #[error("sequence already opened")]
    Replayed,
    #[error("sequence too far behind the newest")]
    TooOld,
}

/// AES-GCM's tag, appended to every ciphertext.
pub const TAG_BYTES: usize = 16;

/// This participant's current media key.
pub struct SenderKey {
    key_id: u32,
    material: KeyMaterial,
    cipher: Aes256Gcm,
    next_sequence: u64,
}

impl SenderKey {
    pub fn new(key_id: u32, material: KeyMaterial) -> Self {
        Self { key_id, cipher: material.cipher(), material, next_sequence: 0 }
    }

    pub fn generate(rng: &mut impl CryptoRngCore, key_id: u32) -> Self {
        Self::new(key_id, KeyMaterial::generate(rng))
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// The next key on the ratchet (see [`KeyMaterial::ratchet`]), under the next key id.
    pub fn ratchet(&self) -> Self {
        Self::new(self.key_id.wrapping_add(1), self.material.ratchet())
    }

    /// Seals one frame as `user` (the id the relay will stamp on it) with its routing header,
    /// in place: `plaintext` becomes the ciphertext (no copy when it has room for the tag,
    /// [`TAG_BYTES`]).
    pub fn seal(
        &mut self,
        user: &str,
        route: &Route,
        plaintext: impl Into<Vec<u8>>,
    ) -> Result<EncryptedMedia, SealError> {
        let sequence = self.next_sequence;
        self.next_sequence = sequence.checked_add(1).ok_or(SealError::Exhausted)?;
        let aad = associated_data(user, self.key_id, sequence, route);
        let nonce = self.material.nonce(sequence);
        let mut buffer = plaintext.into();
        self.cipher.encrypt_in_place(&Nonce::from(nonce), &aad, &mut buffer).map_err(|_| SealError::Cipher)?;
        let mut sealed = EncryptedMedia::new();
        sealed.key_id = self.key_id;
        sealed.sequence = sequence;
        sealed.ciphertext = buffer.into();
        Ok(sealed)
    }
}

/// Another sender's media key, as received.
pub struct ReceiverKey {
    key_id: u32,
    material: KeyMaterial,
    cipher: Aes256Gcm,
    window: ReplayWindow,
}

impl ReceiverKey {
    pub fn new(key_id: u32, material: KeyMaterial) -> Self {
        Self { key_id, cipher: material.cipher(), material, window: ReplayWindow::default() }
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// Opens a frame `user` sent with the routing header `route`: authenticated, and each
    /// sequence once. In place when the ciphertext's buffer is `sealed`'s alone (a frame just
    /// parsed); else in a copy.
    pub fn open(&mut self, user: &str, route: &Route, sealed: EncryptedMedia) -> Result<Bytes, OpenError> {
        if sealed.key_id != self.key_id {
            return Err(OpenError::UnknownKey { key_id: sealed.key_id });
        }
        match self.window.check(sealed.sequence) {
            Verdict::Fresh => {}
            Verdict::Replayed => return Err(OpenError::Replayed),
            Verdict::TooOld => return Err(OpenError::TooOld),
        }
        let aad = associated_data(user, self.key_id, sealed.sequence, route);
        let nonce = self.material.nonce(sealed.sequence);
        let sequence = sealed.sequence;
        let mut buffer = sealed.ciphertext.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        self.cipher.decrypt_in_place(&Nonce::from(nonce), &aad, &mut buffer).map_err(|_| OpenError::Tampered)?;
        self.window.accept(sequence);
        Ok(buffer.freeze())
    }
}
