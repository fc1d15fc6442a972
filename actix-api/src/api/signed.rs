//! Claims this server signs for itself and reads back (the session cookie, a pending sign-in):
//! HS256 under a sub-key of the token secret, one sub-key per purpose, so every server of a
//! deployment reads them and none passes for a room token or for another purpose's claims.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use videocall_relay::TokenKey;

use super::internal;
use crate::error::ApiError;

/// Claims that end: seconds since the Unix epoch.
pub trait Expiring {
    fn expires_at(&self) -> u64;
}

#[derive(Clone)]
pub struct SignedClaims {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SignedClaims {
    pub fn new(tokens: &TokenKey, purpose: &str) -> Self {
        let key = tokens.subkey(purpose);
        Self { encoding: EncodingKey::from_secret(&key), decoding: DecodingKey::from_secret(&key) }
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(|e| internal("sign", e))
    }

    /// The claims of `jwt` when it is ours and has not expired by `now`; `None` otherwise.
    pub fn read<T: DeserializeOwned + Expiring>(&self, jwt: &str, now: u64) -> Option<T> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the time passed in.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        let claims = jsonwebtoken::decode::<T>(jwt, &self.decoding, &validation).ok()?.claims;
        (claims.expires_at() > now).then_some(claims)
    }
}
