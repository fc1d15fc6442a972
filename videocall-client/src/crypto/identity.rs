//! Identities: each participant has an RSA-OAEP key that media keys are wrapped to and an
//! ECDSA P-256 key that signs its key packets. Their [`Fingerprint`] covers both, so comparing
//! fingerprints compares the key that reads and the key that signs.
//!
//! The private halves live where the platform keeps them: in the browser, non-extractable
//! WebCrypto keys; natively, a [`LocalIdentity`]. The core only ever holds an
//! [`IdentityPublic`] and asks for private-key operations through [`crate::peers::Work`].

use std::fmt;

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
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
    #[error("not a valid P-256 signing key")]
    InvalidSigningKey,
    #[error("RSA key of {bits} bits is below the {MIN_PEER_KEY_BITS}-bit minimum")]
    TooSmall { bits: usize },
    #[error("wrapping the media key failed: {0}")]
    Wrap(rsa::Error),
    #[error("the wrapped media key does not open with this identity")]
    Unwrap,
}

/// What the fingerprint hashes: a label, then each key length-prefixed.
const FINGERPRINT_LABEL: &[u8] = b"videocall identity v2";

/// SHA-256 over an identity's two public keys. Shown as 16 groups of 4 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

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

/// The public half of an identity, as `RSA_PUB_KEY` packets carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityPublic {
    /// RSA-OAEP public key, SubjectPublicKeyInfo DER.
    pub encryption_der: Vec<u8>,
    /// ECDSA P-256 public key, SEC1 uncompressed (what WebCrypto's "raw" export gives).
    pub signing_key: Vec<u8>,
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublic({})", self.fingerprint())
    }
}

impl IdentityPublic {
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = Sha256::new();
        hash.update(FINGERPRINT_LABEL);
        for part in [&self.encryption_der, &self.signing_key] {
            hash.update((part.len() as u32).to_be_bytes());
            hash.update(part);
        }
        Fingerprint(hash.finalize().into())
    }
}

fn oaep() -> Oaep {
    Oaep::new::<Sha256>()
}

/// An identity whose private keys are in this process (the bot, tests). Decryption is blinded
/// (RUSTSEC-2023-0071: `rsa`'s unblinded decryption leaks timing on chosen ciphertexts, and
/// the relay chooses what reaches us).
pub struct LocalIdentity {
    decrypt: RsaPrivateKey,
    sign: SigningKey,
    public: IdentityPublic,
}

impl fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalIdentity({})", self.public.fingerprint())
    }
}

impl LocalIdentity {
    /// A new identity. Slow (RSA generation): do it before joining.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, KeyError> {
        let decrypt = RsaPrivateKey::new(rng, IDENTITY_KEY_BITS).map_err(KeyError::Generate)?;
        Self::from_keys(decrypt, SigningKey::random(rng))
    }

    /// An identity from an RSA key in PKCS#8 DER and a P-256 secret scalar (32 bytes).
    pub fn from_parts(rsa_pkcs8_der: &[u8], signing_secret: &[u8]) -> Result<Self, KeyError> {
        let decrypt = RsaPrivateKey::from_pkcs8_der(rsa_pkcs8_der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let sign = SigningKey::from_slice(signing_secret).map_err(|_| KeyError::InvalidSigningKey)?;
        Self::from_keys(decrypt, sign)
    }

    fn from_keys(decrypt: RsaPrivateKey, sign: SigningKey) -> Result<Self, KeyError> {
        if decrypt.size() * 8 < MIN_PEER_KEY_BITS {
            return Err(KeyError::TooSmall { bits: decrypt.size() * 8 });
        }
        let encryption_der =
            RsaPublicKey::from(&decrypt).to_public_key_der().map_err(|e| KeyError::Invalid(e.to_string()))?.into_vec();
        let signing_key = sign.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        Ok(Self { decrypt, sign, public: IdentityPublic { encryption_der, signing_key } })
    }

    pub fn public(&self) -> &IdentityPublic {
        &self.public
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    /// ECDSA P-256 with SHA-256, `r || s` (64 bytes), as WebCrypto signs.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.sign.sign(message);
        signature.to_bytes().to_vec()
    }

    /// Opens a media key wrapped to this identity, with RSA blinding.
    pub fn unwrap_key(&self, rng: &mut impl CryptoRngCore, wrapped: &[u8]) -> Result<KeyMaterial, KeyError> {
        let plain = self.decrypt.decrypt_blinded(rng, oaep(), wrapped).map_err(|_| KeyError::Unwrap)?;
        KeyMaterial::from_bytes(&plain).ok_or(KeyError::Unwrap)
    }
}

/// Another participant's identity, checked: an RSA key of at least the minimum size and a
/// valid P-256 point.
#[derive(Clone)]
pub struct PeerIdentity {
    encrypt: RsaPublicKey,
    verify: VerifyingKey,
    public: IdentityPublic,
    fingerprint: Fingerprint,
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerIdentity({})", self.fingerprint)
    }
}

impl PeerIdentity {
    pub fn new(public: IdentityPublic) -> Result<Self, KeyError> {
        let encrypt =
            RsaPublicKey::from_public_key_der(&public.encryption_der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let bits = encrypt.size() * 8;
        if bits < MIN_PEER_KEY_BITS {
            return Err(KeyError::TooSmall { bits });
        }
        let verify = VerifyingKey::from_sec1_bytes(&public.signing_key).map_err(|_| KeyError::InvalidSigningKey)?;
        let fingerprint = public.fingerprint();
        Ok(Self { encrypt, verify, public, fingerprint })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn public(&self) -> &IdentityPublic {
        &self.public
    }

    /// Wraps a media key so only this identity can open it.
    pub fn wrap(&self, rng: &mut impl CryptoRngCore, key: &KeyMaterial) -> Result<Vec<u8>, KeyError> {
        self.encrypt.encrypt(rng, oaep(), &key.to_bytes()).map_err(KeyError::Wrap)
    }

    /// Whether `signature` (`r || s`) is this identity's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|s| self.verify.verify(message, &s).is_ok())
    }
}
