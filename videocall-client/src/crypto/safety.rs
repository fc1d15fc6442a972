//! The room safety code: one number a whole room compares by voice instead of every pair of
//! fingerprints. It hashes every participant's user id and identity fingerprint, sorted, so
//! everyone who sees the same people with the same keys sees the same code, and a page shown
//! one substituted key sees a different one.

use std::fmt;

use sha2::{Digest, Sha256};

use super::identity::Fingerprint;

/// Digits shown: 4 groups of 5. A relay that wants two views of a room to show one code must
/// find a key whose code collides, about 2^66 tries for 20 decimal digits.
const GROUPS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyCode([u32; GROUPS]);

impl SafetyCode {
    /// The code for a room of these `(user id, fingerprint)` pairs, ourselves included.
    pub fn of<'a>(participants: impl IntoIterator<Item = (&'a str, Fingerprint)>) -> Self {
        let mut list: Vec<(&str, Fingerprint)> = participants.into_iter().collect();
        list.sort();
        list.dedup();
        let mut hash = Sha256::new();
        hash.update(b"videocall room safety code v1");
        hash.update((list.len() as u32).to_be_bytes());
        for (user, fingerprint) in list {
            hash.update((user.len() as u32).to_be_bytes());
            hash.update(user.as_bytes());
            hash.update(fingerprint.0);
        }
        let digest = hash.finalize();
        let mut groups = [0; GROUPS];
        for (group, chunk) in groups.iter_mut().zip(digest.chunks(5)) {
            let mut wide = [0u8; 8];
            wide[3..].copy_from_slice(chunk);
            *group = (u64::from_be_bytes(wide) % 100_000) as u32;
        }
        Self(groups)
    }
}

impl fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{group:05}")?;
        }
        Ok(())
    }
}
