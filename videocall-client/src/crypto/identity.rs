//! Identity keys: RSA key pairs for wrapping media keys, and their fingerprints.

use std::fmt;

use rand_core::CryptoRngCore;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::media_key::KeyMaterial;
use crate::tunables::{IDENTITY_KEY_BITS, MIN_PEER_KEY_BITS};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("generating an RSA key failed: {0}")]
    Generate(rsa::Error),
    #[error("not a valid RSA key: {0}")]
    Invalid(String),
    #[error("RSA key of {bits} bits is below the {MIN_PEER_KEY_BITS}-bit minimum")]
    TooSmall { bits: usize },
    #[error("wrapping the media key failed: {0}")]
    Wrap(rsa::Error),
    #[error("the wrapped media key does not open with this identity")]
    Unwrap,
}

/// SHA-256 of a public key's SubjectPublicKeyInfo DER. Shown as 16 groups of 4 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_public_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{:02x}{:02x}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

fn oaep() -> Oaep {
    Oaep::new::<Sha256>()
}

/// This participant's RSA key pair.
pub struct IdentityKey {
    private: RsaPrivateKey,
    public_der: Vec<u8>,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.fingerprint())
    }
}

impl IdentityKey {
    /// A new key pair. Slow (seconds in wasm): do it before joining, or use
    /// [`IdentityKey::from_pkcs8_der`] with a key the browser's WebCrypto generated.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, KeyError> {
        Self::from_private(RsaPrivateKey::new(rng, IDENTITY_KEY_BITS).map_err(KeyError::Generate)?)
    }

    /// A key pair from PKCS#8 DER (`crypto.subtle.exportKey("pkcs8", …)`).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let private = RsaPrivateKey::from_pkcs8_der(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        if private.size() * 8 < MIN_PEER_KEY_BITS {
            return Err(KeyError::TooSmall { bits: private.size() * 8 });
        }
        Self::from_private(private)
    }

    fn from_private(private: RsaPrivateKey) -> Result<Self, KeyError> {
        let public_der =
            RsaPublicKey::from(&private).to_public_key_der().map_err(|e| KeyError::Invalid(e.to_string()))?.into_vec();
        Ok(Self { private, public_der })
    }

    /// SubjectPublicKeyInfo DER, what `RSA_PUB_KEY` packets carry.
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_public_der(&self.public_der)
    }

    /// Opens a media key wrapped to this identity.
    pub fn unwrap_key(&self, wrapped: &[u8]) -> Result<KeyMaterial, KeyError> {
        let plain = self.private.decrypt(oaep(), wrapped).map_err(|_| KeyError::Unwrap)?;
        KeyMaterial::from_bytes(&plain).ok_or(KeyError::Unwrap)
    }
}

/// Another participant's public key.
#[derive(Clone)]
pub struct PeerKey {
    public: RsaPublicKey,
    fingerprint: Fingerprint,
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey({})", self.fingerprint)
    }
}

impl PeerKey {
    /// A public key from SubjectPublicKeyInfo DER, refused below the minimum size.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let public = RsaPublicKey::from_public_key_der(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let bits = public.size() * 8;
        if bits < MIN_PEER_KEY_BITS {
            return Err(KeyError::TooSmall { bits });
        }
        Ok(Self { public, fingerprint: Fingerprint::of_public_der(der) })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Wraps a media key so only this peer can open it.
    pub fn wrap(&self, rng: &mut impl CryptoRngCore, key: &KeyMaterial) -> Result<Vec<u8>, KeyError> {
        self.public.encrypt(rng, oaep(), &key.to_bytes()).map_err(KeyError::Wrap)
    }
}
