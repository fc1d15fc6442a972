//! Meeting passwords: argon2id with a random salt, as a PHC string; hashing and checking run
//! off the async workers (each costs tens of milliseconds of CPU on purpose).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Longest password taken: argon2 accepts more, but nobody types it.
pub const MAX_PASSWORD_BYTES: usize = 256;

pub async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let salt: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// True when `password` matches the stored hash; a hash we cannot read matches nothing.
pub async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let a = super::hash("open sesame".into()).await.unwrap();
        let b = super::hash("open sesame".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$") && a != b);
        assert!(super::verify("open sesame".into(), a.clone()).await);
        assert!(!super::verify("open sesame!".into(), a).await);
        assert!(!super::verify("x".into(), "not a hash".into()).await);
    }
}
