//! The server's TLS identity: a self-signed development certificate (ECDSA P-256, valid 13
//! days, which Chrome accepts through `serverCertificateHashes`) or a certificate and key from
//! PEM files, reloaded when the files change or on SIGHUP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use parking_lot::RwLock;
use wtransport::Identity;

/// Chrome accepts a hashed certificate only if valid for at most 14 days; 13 leaves a margin.
const SELF_SIGNED_VALIDITY_DAYS: u32 = 13;

/// A self-signed certificate is replaced after this long, well before it expires.
const SELF_SIGNED_ROTATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often certificate files are checked for changes.
const FILE_POLL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub enum IdentitySource {
    /// Development: generated at start-up for these names (e.g. `localhost`, `127.0.0.1`).
    SelfSigned { names: Vec<String> },
    /// Production: PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

impl IdentitySource {
    pub async fn load(&self) -> Result<Identity> {
        match self {
            Self::SelfSigned { names } => Identity::self_signed_builder()
                .subject_alt_names(names)
                .from_now_utc()
                .validity_days(SELF_SIGNED_VALIDITY_DAYS)
                .build()
                .context("generating a self-signed certificate"),
            Self::Files { cert, key } => Identity::load_pemfiles(cert, key)
                .await
                .with_context(|| format!("loading {} and {}", cert.display(), key.display())),
        }
    }

    /// When the identity should be loaded again: the files changed, or the self-signed
    /// certificate is due for rotation.
    pub fn watch(&self) -> IdentityWatch {
        IdentityWatch { source: self.clone(), stamp: self.stamp(), loaded_at: SystemTime::now() }
    }

    fn stamp(&self) -> Option<(SystemTime, SystemTime)> {
        match self {
            Self::SelfSigned { .. } => None,
            Self::Files { cert, key } => {
                let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                Some((modified(cert)?, modified(key)?))
            }
        }
    }
}

pub struct IdentityWatch {
    source: IdentitySource,
    stamp: Option<(SystemTime, SystemTime)>,
    loaded_at: SystemTime,
}

impl IdentityWatch {
    pub fn poll_interval(&self) -> Duration {
        FILE_POLL
    }

    /// True when a reload is due; records that it happened.
    pub fn due(&mut self) -> bool {
        let due = match &self.source {
            IdentitySource::SelfSigned { .. } => self.loaded_at.elapsed().is_ok_and(|age| age >= SELF_SIGNED_ROTATION),
            IdentitySource::Files { .. } => {
                let stamp = self.source.stamp();
                stamp.is_some() && stamp != self.stamp
            }
        };
        if due {
            self.stamp = self.source.stamp();
            self.loaded_at = SystemTime::now();
        }
        due
    }
}

/// SHA-256 of the leaf certificate, as `serverCertificateHashes` wants it, for the
/// self-signed certificate only: a certificate from files is one browsers trust (a CA's), and
/// Chrome refuses to pin one valid longer than 14 days anyway.
pub fn certificate_hash(source: &IdentitySource, identity: &Identity) -> Option<[u8; 32]> {
    match source {
        IdentitySource::SelfSigned { .. } => {
            identity.certificate_chain().as_slice().first().map(|c| *c.hash().as_ref())
        }
        IdentitySource::Files { .. } => None,
    }
}

/// The current certificate's hash, shared with whoever tells browsers about it.
pub type SharedHash = Arc<RwLock<Option<[u8; 32]>>>;

/// `[{"algorithm": "sha-256", "value": "<hex>"}]`, what a page turns into
/// `serverCertificateHashes`; empty without a hash.
pub fn certificate_hashes_json(hash: Option<[u8; 32]>) -> serde_json::Value {
    let entries = hash.map(|h| {
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        serde_json::json!({"algorithm": "sha-256", "value": hex})
    });
    serde_json::Value::Array(entries.into_iter().collect())
}
