//! Pebble, Let's Encrypt's ACME test server (Debian's `pebble`), with `pebble-challtestsrv` as
//! its DNS server so that every name resolves to 127.0.0.1: a real CA that validates real
//! HTTP-01 challenges, on free ports, with a root it makes up at each start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::{KillOnDrop, free_port};

pub struct Pebble {
    _pebble: KillOnDrop,
    _dns: KillOnDrop,
    dir: PathBuf,
    management: SocketAddr,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA (PEM file) Pebble's own HTTPS (directory, management) is served under: what an
    /// ACME client must trust to talk to it.
    pub api_ca: PathBuf,
}

impl Pebble {
    /// Starts the DNS server and Pebble, which validates HTTP-01 challenges on `http_port` of
    /// 127.0.0.1 and issues certificates valid `validity_secs`.
    pub fn start(http_port: u16, validity_secs: u64) -> Result<Self> {
        let pebble = crate::find_program("pebble").context("pebble is missing (apt-get install pebble)")?;
        let challtestsrv = crate::find_program("pebble-challtestsrv").context("pebble-challtestsrv is missing")?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("pebble-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let api_ca = write_api_certificate(&dir)?;

        let (dns_port, dns_management) = (crate::free_udp_port(), free_port());
        let dns = Command::new(challtestsrv)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .arg("-dns01")
            .arg(format!("127.0.0.1:{dns_port}"))
            .arg("-management")
            .arg(format!("127.0.0.1:{dns_management}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting pebble-challtestsrv")?;
        let dns = KillOnDrop(dns);
        // Its management interface starts with its DNS server.
        crate::wait_for_port(dns_management, Duration::from_secs(20))?;

        let (listen, management) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("api.pem"),
            "privateKey": dir.join("api.key"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string())?;
        let log = std::fs::File::create(dir.join("pebble.log"))?;
        let process = Command::new(pebble)
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            // No random waits before validating, and no random "bad nonce" refusals: the test
            // is about this server, not about retries.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting pebble")?;
        let process = KillOnDrop(process);
        crate::wait_for_port(listen, Duration::from_secs(20))?;
        crate::wait_for_port(management, Duration::from_secs(20))?;
        Ok(Self {
            _pebble: process,
            _dns: dns,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            api_ca,
            dir,
        })
    }

    /// The root and intermediate certificates issued certificates chain to (made up at start).
    pub async fn issuing_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        let client = crate::Https::trusting(&[CertificateDer::from_pem_file(&self.api_ca)?])?;
        let mut chain = Vec::new();
        for which in ["/roots/0", "/intermediates/0"] {
            let response = client.request(self.management, "127.0.0.1", "GET", which, None).await?;
            anyhow::ensure!(response.status == 200, "{which}: {}", response.status);
            chain.push(CertificateDer::from_pem_slice(&response.body).with_context(|| format!("reading {which}"))?);
        }
        Ok(chain)
    }

    /// What Pebble logged, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, for Pebble's own HTTPS; returns the CA's
/// PEM file.
fn write_api_certificate(dir: &Path) -> Result<PathBuf> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "test ACME API CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
        .signed_by(&key, &issuer)?;
    std::fs::write(dir.join("api.pem"), leaf.pem())?;
    std::fs::write(dir.join("api.key"), key.serialize_pem())?;
    let ca_file = dir.join("api-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem())?;
    Ok(ca_file)
}
