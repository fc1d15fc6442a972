//! TLS from the test's side: an HTTPS client that trusts given roots only, the certificate a
//! server presents (whatever it is), and the key hash Chromium is told to accept.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS client (ring) that trusts the given roots only and resumes no session, so that
/// each request sees, and reports, the certificate served now.
pub struct Https {
    config: Arc<rustls::ClientConfig>,
}

/// What came back, with the certificate the server presented.
pub struct HttpsResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub certificate: Vec<u8>,
}

impl HttpsResponse {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the body is not JSON")
    }
}

impl Https {
    pub fn trusting(roots: &[CertificateDer<'static>]) -> Result<Self> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root.clone())?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(store)
            .with_no_client_auth();
        // A resumed session presents no certificate.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self { config: Arc::new(config) })
    }

    /// `method path` (with a JSON body, if any) to the server at `addr` under the name `name`,
    /// over a new connection.
    pub async fn request(
        &self,
        addr: std::net::SocketAddr,
        name: &str,
        method: &str,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<HttpsResponse> {
        use http_body_util::BodyExt as _;
        let server_name = ServerName::try_from(name.to_owned()).context("server name")?;
        let tcp = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(server_name, tcp)
            .await
            .with_context(|| format!("TLS with {name} at {addr}"))?;
        let certificate =
            tls.get_ref().1.peer_certificates().and_then(|c| c.first()).context("no certificate")?.to_vec();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        let body = json.map(|j| j.to_string()).unwrap_or_default();
        let mut request = hyper::Request::builder().method(method).uri(path).header("host", name);
        if json.is_some() {
            request = request.header("content-type", "application/json");
        }
        let response = sender.send_request(request.body(http_body_util::Full::new(bytes::Bytes::from(body)))?).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok(HttpsResponse { status, body, certificate })
    }
}

/// The leaf certificate (DER) a TLS server presents on `stream` for `server_name`, read
/// without judging it: for comparing with what the server printed.
pub fn presented_certificate(mut stream: std::net::TcpStream, server_name: &str) -> Result<Vec<u8>> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).context("server name")?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    while connection.is_handshaking() {
        connection.complete_io(&mut stream).context("TLS handshake")?;
    }
    let leaf = connection.peer_certificates().and_then(|c| c.first()).context("no certificate presented")?;
    Ok(leaf.to_vec())
}

/// SHA-256 of a certificate's public key (its SubjectPublicKeyInfo), base64: what Chromium's
/// `--ignore-certificate-errors-spki-list` takes.
pub fn spki_sha256_base64(certificate: &[u8]) -> Result<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).context("parsing the certificate")?;
    let digest = sha2::Sha256::digest(parsed.tbs_certificate.subject_pki.raw);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// Accepts any certificate: only for reading what a server presents.
#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}
