//! `internal-tls`: a private CA and a server certificate for a service only the relays talk
//! to (NATS, in `docker-compose.yaml`), written once into a directory shared with them.
//!
//! Writes `ca.pem`, `server.pem` and `server-key.pem`. When `ca.pem` is already there it does
//! nothing, so it can run before every start; delete the directory's files to issue new ones.
//! The CA's key is not kept: nothing else can ever be signed by it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// Issues a private CA and a server certificate for an internal service, once.
#[derive(Debug, Parser)]
#[command(name = "internal-tls", version)]
struct Args {
    /// Directory to write ca.pem, server.pem and server-key.pem into.
    #[arg(long, env = "INTERNAL_TLS_DIR")]
    dir: PathBuf,

    /// Names (and addresses) the server certificate is for, comma-separated.
    #[arg(long, env = "INTERNAL_TLS_NAMES", value_delimiter = ',', default_value = "nats,localhost")]
    names: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    videocall_relay::cli::init_tracing(videocall_relay::cli::LogFormat::Text);
    let ca_path = args.dir.join("ca.pem");
    if ca_path.exists() {
        tracing::info!(dir = %args.dir.display(), "certificates already issued");
        return Ok(());
    }
    issue(&args.dir, &args.names)?;
    tracing::info!(dir = %args.dir.display(), names = ?args.names, "issued a private CA and a server certificate");
    Ok(())
}

fn issue(dir: &Path, names: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name.push(DnType::CommonName, "videocall internal CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?).context("issuing the CA")?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec()).context("certificate names")?;
    params.distinguished_name.push(DnType::CommonName, names.first().map_or("server", String::as_str));
    let cert = params.signed_by(&key, &ca).context("issuing the server certificate")?;
    let write = |name: &str, contents: String, mode: u32| {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))
    };
    // The key first and the CA last: ca.pem present means the set is complete.
    write("server-key.pem", key.serialize_pem(), 0o600)?;
    write("server.pem", cert.pem(), 0o644)?;
    write("ca.pem", ca.pem(), 0o644)
}
