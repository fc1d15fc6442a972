//! HTTPS for the site (the page, the REST API and WebSocket), so that a browser on another
//! computer gets a secure context: camera, microphone, WebCrypto and WebTransport.
//!
//! The certificate comes from one of three places ([`Source`]): an ACME CA for a domain
//! (obtained and renewed by the server itself), the operator's PEM files (reloaded when they
//! change), or a self-signed certificate for the machine's names and addresses, kept on disk so
//! that a browser which accepted it once keeps accepting it. Whichever it is, the HTTPS listener
//! asks one [`CurrentCertificate`] per handshake, and renewal or reload replaces it in place.

pub mod acme;
mod redirect;
pub mod self_signed;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest;

pub use acme::{AcmeSettings, Challenges};
pub use redirect::plain_http_redirect;

/// Where the site's certificate comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Obtained from an ACME CA for a domain, stored in the settings' directory.
    Acme(AcmeSettings),
    /// The operator's certificate chain and key (PEM), reloaded when the files change.
    Files { cert: PathBuf, key: PathBuf },
    /// Self-signed for this machine's names and addresses, stored in `dir`.
    SelfSigned { dir: PathBuf },
}

/// The certificate the HTTPS listener presents now.
#[derive(Debug)]
pub struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

impl CurrentCertificate {
    fn new(key: CertifiedKey) -> Self {
        Self(RwLock::new(Arc::new(key)))
    }

    fn replace(&self, key: CertifiedKey) {
        *self.0.write() = Arc::new(key);
    }

    /// SHA-256 of the leaf certificate, as browsers show it (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        self.0.read().cert.first().map(|leaf| fingerprint(leaf)).unwrap_or_default()
    }

    /// The leaf certificate (DER).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.0.read().cert.first().cloned()
    }
}

/// SHA-256 of a certificate, colon-separated upper-case hex, as Chrome's and Firefox's
/// certificate viewers print it.
pub fn fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A certificate chain and key from PEM text, the key checked against the leaf.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("reading the certificate chain (PEM)")?;
    anyhow::ensure!(!chain.is_empty(), "the certificate file holds no certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("reading the private key (PEM)")?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .context("the certificate does not fit the private key")
}

fn certified_key_from_files(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let chain = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    certified_key(&chain, &key_pem).with_context(|| format!("{} and {}", cert.display(), key.display()))
}

/// The rustls configuration of the HTTPS listener: whatever certificate is current. actix adds
/// the `h2` and `http/1.1` protocols.
pub fn server_config(current: Arc<CurrentCertificate>) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(current)
}

/// The site's certificate and what keeps it current.
pub struct SiteTls {
    pub current: Arc<CurrentCertificate>,
    pub source: Source,
    /// The ACME certificate still has to be obtained (none on disk, or it expired): the
    /// listener presents a stand-in until [`SiteTls::keep_current`] has one.
    needs_issuance: bool,
}

impl SiteTls {
    /// Loads the certificate (creating a self-signed one if needed).
    pub fn load(source: Source) -> Result<Self> {
        let (key, needs_issuance) = match &source {
            Source::Files { cert, key } => (certified_key_from_files(cert, key)?, false),
            Source::SelfSigned { dir } => {
                let (cert, key) = self_signed::load_or_create(dir, &self_signed::machine_names(), SystemTime::now())?;
                (certified_key(cert.as_bytes(), key.as_bytes())?, false)
            }
            Source::Acme(settings) => match settings.stored(SystemTime::now()) {
                Some((cert, key)) => (certified_key(cert.as_bytes(), key.as_bytes())?, false),
                None => {
                    let (cert, key) =
                        self_signed::generate(std::slice::from_ref(&settings.domain), SystemTime::now(), None)?;
                    (certified_key(cert.as_bytes(), key.as_bytes())?, true)
                }
            },
        };
        Ok(Self { current: Arc::new(CurrentCertificate::new(key)), source, needs_issuance })
    }

    /// Obtains the ACME certificate if there is none yet (the HTTP listener must already answer
    /// the CA's challenges), then keeps the certificate current in the background: renewal for
    /// ACME, reloading for files.
    pub async fn keep_current(&mut self, challenges: &Challenges) -> Result<Option<tokio::task::JoinHandle<()>>> {
        match &self.source {
            Source::Acme(settings) => {
                if self.needs_issuance {
                    let (cert, key) = acme::obtain(settings, challenges).await?;
                    self.current.replace(certified_key(cert.as_bytes(), key.as_bytes())?);
                    self.needs_issuance = false;
                }
                Ok(Some(tokio::spawn(acme::renew_forever(settings.clone(), challenges.clone(), self.current.clone()))))
            }
            Source::Files { cert, key } => {
                Ok(Some(tokio::spawn(reload_files(cert.clone(), key.clone(), self.current.clone()))))
            }
            Source::SelfSigned { .. } => Ok(None),
        }
    }

    /// The files WebTransport serves too, when the certificate is one browsers trust (ACME or
    /// the operator's); `None` for the self-signed site certificate, which WebTransport does not
    /// use (it keeps its short-lived hash-pinned one).
    pub fn trusted_files(&self) -> Option<(PathBuf, PathBuf)> {
        match &self.source {
            Source::Acme(settings) => Some((settings.cert_path(), settings.key_path())),
            Source::Files { cert, key } => Some((cert.clone(), key.clone())),
            Source::SelfSigned { .. } => None,
        }
    }
}

/// Reloads the operator's certificate when its files change (as WebTransport does); a pair that
/// does not load keeps the current certificate.
async fn reload_files(cert: PathBuf, key: PathBuf, current: Arc<CurrentCertificate>) {
    let source = webtransport_server::IdentitySource::Files { cert: cert.clone(), key: key.clone() };
    let mut watch = source.watch();
    let mut poll = tokio::time::interval(watch.poll_interval());
    loop {
        poll.tick().await;
        if !watch.due() {
            continue;
        }
        match certified_key_from_files(&cert, &key) {
            Ok(loaded) => {
                current.replace(loaded);
                tracing::info!(fingerprint = %current.fingerprint(), "site certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "site certificate reload failed; keeping the current one")
            }
        }
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, so that a reader (or a
/// crash) never sees half a certificate; `private` files are readable by the owner only.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().context("a file needs a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = path.with_extension("tmp");
    let mode = if private { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
}
