//! The self-signed site certificate: for this machine's names and addresses, kept on disk so
//! that a browser which accepted it once (after checking its fingerprint) keeps accepting it, and
//! replaced, with the same key, only when the machine gains an address or it nears its end.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

/// A year: browsers cap the lifetime only of certificates from public CAs, and a person who
/// accepted this one should not have to again soon.
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Replaced this long before it ends, so that a server started now serves it for a while.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

const CERT_FILE: &str = "self-signed.pem";
const KEY_FILE: &str = "self-signed.key";

/// The names and addresses a browser may use for this machine: `localhost`, the host name (and
/// its `.local` mDNS name), and every address of every interface but IPv6 link-local ones
/// (which need a zone in a URL).
pub fn machine_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = gethostname::gethostname().to_str().filter(|h| !h.is_empty() && *h != "localhost") {
        names.push(host.to_owned());
        if !host.contains('.') {
            names.push(format!("{host}.local"));
        }
    }
    let mut addresses: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)];
    addresses.extend(network_addresses());
    for address in addresses {
        let name = address.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The addresses other computers may reach this one at: not loopback, not IPv6 link-local.
pub fn network_addresses() -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|a| !a.is_loopback() && !is_link_local_v6(a))
        .collect();
    found.sort_by_key(|a| (a.is_ipv6(), *a));
    found.dedup();
    found
}

fn is_link_local_v6(address: &IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// The stored certificate and key (PEM) if they cover `names` and are not near their end;
/// otherwise a new certificate, with the stored key if there is one, written to `dir`.
pub fn load_or_create(dir: &Path, names: &[String], now: SystemTime) -> Result<(String, String)> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let stored_key = std::fs::read_to_string(&key_path).ok().and_then(|pem| KeyPair::from_pem(&pem).ok());
    if let (Some(key), Ok(cert)) = (&stored_key, std::fs::read_to_string(&cert_path))
        && still_good(&cert, names, now)
    {
        return Ok((cert, key.serialize_pem()));
    }
    let (cert, key) = generate(names, now, stored_key)?;
    super::write_atomically(&key_path, key.as_bytes(), true)?;
    super::write_atomically(&cert_path, cert.as_bytes(), false)?;
    tracing::info!(path = %cert_path.display(), names = names.join(","), "new self-signed site certificate");
    Ok((cert, key))
}

/// A self-signed certificate for `names` (with `key`, else a new ECDSA P-256 key), valid from
/// an hour before `now` (clocks differ) for [`VALIDITY`]; certificate and key as PEM.
pub fn generate(names: &[String], now: SystemTime, key: Option<KeyPair>) -> Result<(String, String)> {
    let key = match key {
        Some(key) => key,
        None => KeyPair::generate().context("generating a key")?,
    };
    let mut params = CertificateParams::new(names.to_vec()).context("certificate names")?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, format!("videocall on {}", names.get(1).map_or("localhost", String::as_str)));
    params.distinguished_name = subject;
    let start = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
    params.not_before = start.into();
    params.not_after = (now + VALIDITY).into();
    let cert = params.self_signed(&key).context("signing the self-signed certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Whether the certificate (PEM) names every one of `names` and has more than
/// [`RENEW_BEFORE`] left at `now`.
fn still_good(pem: &str, names: &[String], now: SystemTime) -> bool {
    let Some(covered) = certificate_facts(pem) else { return false };
    covered.not_after > now + RENEW_BEFORE && names.iter().all(|n| covered.names.contains(n))
}

/// What this module reads back from a certificate.
pub(crate) struct Facts {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// DNS names and IP addresses (as text) of its subject alternative names.
    pub names: Vec<String>,
}

/// The validity and names of the first certificate of a PEM chain.
pub(crate) fn certificate_facts(pem: &str) -> Option<Facts> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    der_facts(&CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()?)
}

/// The validity and names of a certificate (DER).
pub(crate) fn der_facts(der: &[u8]) -> Option<Facts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let time = |t: x509_parser::time::ASN1Time| {
        let seconds = u64::try_from(t.timestamp()).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    };
    let validity = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let address = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(address.map(|a| a.to_string()));
                }
                _ => {}
            }
        }
    }
    Some(Facts { not_before: time(validity.not_before)?, not_after: time(validity.not_after)?, names })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "meet-box".into(), "127.0.0.1".into(), "10.0.0.7".into(), "fd00::7".into()]
    }

    #[test]
    fn a_certificate_is_kept_while_it_covers_the_names_and_is_not_near_its_end() {
        let dir = std::env::temp_dir().join(format!("self-signed-{}-{}", std::process::id(), rand::random::<u64>()));
        let now = SystemTime::now();
        let (first, key) = load_or_create(&dir, &names(), now).unwrap();
        let facts = certificate_facts(&first).unwrap();
        assert_eq!(facts.names, names());
        // Started again: the same certificate.
        assert_eq!(load_or_create(&dir, &names(), now).unwrap().0, first);
        // A new address: a new certificate with the same key.
        let mut more = names();
        more.push("192.168.1.20".into());
        let (second, second_key) = load_or_create(&dir, &more, now).unwrap();
        assert_ne!(second, first);
        assert_eq!(second_key, key);
        // Near its end: replaced.
        let later = now + VALIDITY - RENEW_BEFORE + Duration::from_secs(60);
        assert_ne!(load_or_create(&dir, &more, later).unwrap().0, second);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("self-signed-{}-{}", std::process::id(), rand::random::<u64>()));
        load_or_create(&dir, &names(), SystemTime::now()).unwrap();
        let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
