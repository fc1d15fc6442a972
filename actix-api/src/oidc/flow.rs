//! The OpenID Connect authorization code flow with PKCE, as plain functions: what to send the
//! provider, what to keep in the browser meanwhile, and whether the ID token that comes back is
//! the one we asked for. No I/O; `mod.rs` moves the bytes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the browser keeps (in a signed, short-lived cookie) between leaving for the provider
/// and coming back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// A path on this site to go back to.
    pub return_to: String,
    pub exp: u64,
}

impl crate::api::signed::Expiring for Pending {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636): 64 random bytes, base64url.
pub fn random_secret() -> String {
    let bytes: [u8; 48] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of a PKCE verifier.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A path on this site, or `/`: never another origin (`//evil.example`, `https://…`, or
/// `/\t/evil.example`, which a browser reads as `//evil.example` since URL parsing drops tabs).
/// The path is resolved as a browser would against this site and kept only when it stays here.
pub fn safe_return_to(asked: Option<&str>) -> String {
    const HERE: &str = "https://this-site.invalid/";
    let Some(path) = asked.filter(|p| p.starts_with('/') && p.len() <= 512) else { return "/".to_owned() };
    if path.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return "/".to_owned();
    }
    // A constant that parses: this cannot fail.
    let Ok(here) = url::Url::parse(HERE) else { return "/".to_owned() };
    match here.join(path) {
        Ok(url) if url.origin() == here.origin() => url[url::Position::BeforePath..].to_owned(),
        _ => "/".to_owned(),
    }
}

/// The provider's authorization URL for this attempt.
pub fn authorization_url(endpoint: &str, client_id: &str, redirect_uri: &str, pending: &Pending) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let query = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid profile email"),
        ("state", &pending.state),
        ("nonce", &pending.nonce),
        ("code_challenge", &challenge(&pending.verifier)),
        ("code_challenge_method", "S256"),
    ];
    let encoded: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", crate::outbound::encode(v))).collect();
    format!("{endpoint}{sep}{}", encoded.join("&"))
}

/// Why an ID token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    #[error("the ID token is signed with {0:?}, which is not accepted")]
    Algorithm(Algorithm),
    #[error("the provider has no key {0:?}")]
    UnknownKey(String),
    #[error("the ID token's signature is not the provider's")]
    BadSignature,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is from another issuer or for another client")]
    WrongParty,
    #[error("the ID token's nonce is not the one this sign-in sent")]
    NonceMismatch,
}

impl IdTokenError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::NonceMismatch => "nonce_mismatch",
            Self::Expired => "id_token_expired",
            _ => "id_token_invalid",
        }
    }
}

/// What we take from a valid ID token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    pub iss: String,
    pub sub: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

impl Identity {
    /// The name to show: the provider's display name, else the username, else the email.
    pub fn display_name(&self) -> &str {
        [&self.name, &self.preferred_username, &self.email]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .unwrap_or("Signed-in user")
    }

    /// How the store knows this identity: issuer and subject.
    pub fn subject_key(&self) -> String {
        format!("{}|{}", self.iss, self.sub)
    }
}

/// Asymmetric signatures only: an HMAC "signed" with the public key, or `none`, is refused.
const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Checks an ID token against the provider's keys, issuer, our client id, the clock (`now`,
/// seconds since the Unix epoch, with a minute's leeway) and the nonce this sign-in sent.
pub fn verify_id_token(
    id_token: &str,
    keys: &JwkSet,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: u64,
) -> Result<Identity, IdTokenError> {
    use jsonwebtoken::errors::ErrorKind;
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| IdTokenError::Malformed(e.to_string()))?;
    if !ACCEPTED.contains(&header.alg) {
        return Err(IdTokenError::Algorithm(header.alg));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid).ok_or_else(|| IdTokenError::UnknownKey(kid.clone()))?,
        None if keys.keys.len() == 1 => &keys.keys[0],
        None => return Err(IdTokenError::UnknownKey(String::new())),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| IdTokenError::Malformed(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Expiry is checked below against the time passed in.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => IdTokenError::BadSignature,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => IdTokenError::WrongParty,
        _ => IdTokenError::Malformed(e.to_string()),
    })?;
    let exp = data.claims.get("exp").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if exp + 60 <= now {
        return Err(IdTokenError::Expired);
    }
    let identity: Identity = serde_json::from_value(data.claims).map_err(|e| IdTokenError::Malformed(e.to_string()))?;
    if identity.nonce.as_deref() != Some(nonce) {
        return Err(IdTokenError::NonceMismatch);
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let secret = random_secret();
        assert!((43..=128).contains(&secret.len()));
        assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(safe_return_to(Some("/meeting/abc")), "/meeting/abc");
        assert_eq!(safe_return_to(Some("/meeting/abc?x=1#y")), "/meeting/abc?x=1#y");
        assert_eq!(safe_return_to(Some("/a/../meeting/abc")), "/meeting/abc");
        // `%09` arrives decoded from the query string: a tab, which URL parsing drops.
        for bad in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil.example",
            "meeting",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            "///evil.example",
            "/\u{2028}/evil.example",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn the_authorization_url_carries_state_nonce_and_challenge() {
        let pending = Pending {
            state: "s t".into(),
            nonce: "n".into(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            return_to: "/".into(),
            exp: 0,
        };
        let url = authorization_url("https://id.example/auth", "app", "http://localhost:8080/cb", &pending);
        assert!(url.starts_with(
            "https://id.example/auth?response_type=code&client_id=app&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcb"
        ));
        assert!(url.contains(
            "&state=s%20t&nonce=n&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        ));
        assert!(url.contains("scope=openid%20profile%20email"));
    }
}
