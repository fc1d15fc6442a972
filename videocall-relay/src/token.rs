//! Room tokens: a JWT (HS256) saying who may join which room, under which name, until when.
//! The relays share the secret; anyone holding it can issue tokens, so it stays on servers.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use videocall_types::{DisplayName, IdError, RoomId, UserId};

/// Shortest accepted secret: HS256 keys under 256 bits make brute force of the key practical.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token secret must be at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token claims are invalid: {0}")]
    InvalidClaims(#[from] IdError),
    #[error("could not sign the token")]
    Signing,
}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomToken {
    pub user: UserId,
    pub room: RoomId,
    pub name: DisplayName,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
    /// The token's own id (`jti`): a token opens one session, and the relays remember which
    /// ids have ([`crate::Revocations::claim`]).
    pub id: String,
    /// The holder records the room: presence tells everyone, and every page shows it.
    pub recorder: bool,
}

impl RoomToken {
    /// A new random token id (128 bits, hex).
    pub fn fresh_id() -> String {
        format!("{:032x}", rand::random::<u128>())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    room: String,
    name: String,
    exp: u64,
    iat: u64,
    jti: String,
    /// A recorder's token (absent: not one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rec: bool,
}

/// The shared secret, ready to issue and verify tokens.
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    secret: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn from_secret(secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::SecretTooShort);
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            secret: secret.into(),
        })
    }

    /// A key for another kind of token signed with the same secret (a session cookie, say):
    /// the secret, a zero byte and `purpose`. An HMAC under it is no room token, and the
    /// reverse.
    pub fn subkey(&self, purpose: &str) -> Vec<u8> {
        let mut key = self.secret.to_vec();
        key.push(0);
        key.extend_from_slice(purpose.as_bytes());
        key
    }

    /// Signs a token; `now` is seconds since the Unix epoch.
    pub fn issue(&self, token: &RoomToken, now: u64) -> Result<String, TokenError> {
        let claims = Claims {
            sub: token.user.to_string(),
            room: token.room.to_string(),
            name: token.name.to_string(),
            exp: token.expires_at,
            iat: now,
            jti: token.id.clone(),
            rec: token.recorder,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|_| TokenError::Signing)
    }

    /// Checks signature, expiry (against `now`, seconds since the Unix epoch) and claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<RoomToken, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the time passed in, not the clock.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "sub", "jti"].into_iter().map(String::from).collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(RoomToken {
            user: UserId::parse(&claims.sub)?,
            room: RoomId::parse(&claims.room)?,
            name: DisplayName::parse(&claims.name)?,
            expires_at: claims.exp,
            id: claims.jti,
            recorder: claims.rec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key(secret: &str) -> TokenKey {
        TokenKey::from_secret(secret.as_bytes()).unwrap()
    }

    fn grant(expires_at: u64) -> RoomToken {
        RoomToken {
            user: UserId::parse("ada@example.org").unwrap(),
            room: RoomId::parse("standup").unwrap(),
            name: DisplayName::parse("Ada").unwrap(),
            expires_at,
            id: "0123456789abcdef0123456789abcdef".into(),
            recorder: false,
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let k = key("0123456789abcdef0123456789abcdef");
        let token = k.issue(&grant(NOW + 60), NOW).unwrap();
        assert_eq!(k.verify(&token, NOW).unwrap(), grant(NOW + 60));
        assert_eq!(k.verify(&token, NOW + 60), Err(TokenError::Expired));
    }

    #[test]
    fn forged_malformed_and_short_secrets_are_refused() {
        let k = key("0123456789abcdef0123456789abcdef");
        let other = key("another secret, also long enough!!");
        let forged = other.issue(&grant(NOW + 60), NOW).unwrap();
        assert_eq!(k.verify(&forged, NOW), Err(TokenError::BadSignature));
        assert_eq!(k.verify("not a jwt", NOW), Err(TokenError::Malformed));
        assert_eq!(k.verify("", NOW), Err(TokenError::Malformed));
        assert_eq!(TokenKey::from_secret(b"short").unwrap_err(), TokenError::SecretTooShort);
        // alg=none with the same claims.
        let parts: Vec<&str> = forged.split('.').collect();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
        assert!(k.verify(&none, NOW).is_err());
    }

    #[test]
    fn claims_are_validated_like_any_other_id() {
        let k = key("0123456789abcdef0123456789abcdef");
        let claims = Claims {
            sub: "a@b".into(),
            room: "bad.room".into(),
            name: "A".into(),
            exp: NOW + 9,
            iat: NOW,
            jti: "x".into(),
            rec: false,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &k.encoding).unwrap();
        assert!(matches!(k.verify(&token, NOW), Err(TokenError::InvalidClaims(_))));
    }

    #[test]
    fn a_recorder_is_said_by_the_token_and_only_by_it() {
        let k = key("0123456789abcdef0123456789abcdef");
        let mut recorder = grant(NOW + 60);
        recorder.recorder = true;
        assert!(k.verify(&k.issue(&recorder, NOW).unwrap(), NOW).unwrap().recorder);
        let plain = k.issue(&grant(NOW + 60), NOW).unwrap();
        assert!(!k.verify(&plain, NOW).unwrap().recorder);
    }
}
