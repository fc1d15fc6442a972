//! Meeting across machines: the server serves HTTPS so that a browser on another computer gets
//! a secure context (camera, WebCrypto, WebTransport, the `Secure` cookie).
//!
//! - The self-signed certificate: the fingerprint the server prints is the one it serves, and a
//!   restart keeps it.
//! - Two computers: the server in one network namespace, browsers in another, joining by the
//!   server's address. Plain http shows a notice (no HTTPS) or is redirected (HTTPS); over HTTPS
//!   two people see and hear each other over WebTransport and over WebSocket.
//! - ACME: a certificate from Pebble (a real ACME CA), served, renewed when two thirds of its
//!   short life have passed, and used by WebTransport with no certificate hash.

mod common;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::web_client::{Participant, wait, web_root};
use serde_json::Value;
use testkit::{Host, KillOnDrop, LaunchOptions, TwoHosts};

const SECRET: &str = "test secret that is long enough for HS256";

/// One browser test of this file at a time: two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `actix-api` as a process, and what it printed for people (`videocall: …` lines).
struct Server {
    _process: KillOnDrop,
    welcome: Vec<String>,
}

impl Server {
    /// Starts the server (on `host`, or this machine) with `settings`, and waits for its
    /// welcome, which it prints once it serves.
    fn start(host: Option<&Host>, settings: &[(&str, String)]) -> Self {
        let binary = testkit::workspace_binary("actix-api").unwrap();
        let mut command = match host {
            Some(host) => host.command(&binary),
            None => Command::new(&binary),
        };
        command
            .env("RUST_LOG", "warn")
            .env("TOKEN_SECRET", SECRET)
            .env("METRICS_LISTEN_ADDR", "127.0.0.1:0")
            .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let process = KillOnDrop(child);
        let https = settings.iter().any(|(k, _)| *k == "HTTPS_LISTEN");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end, so the server never writes into a closed pipe; its logs are
            // shown with the test's output.
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                match line.starts_with("videocall: ") {
                    true => drop(lines.send(line)),
                    false => println!("server: {line}"),
                }
            }
        });
        let mut welcome = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let line = received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("the server printed no welcome; so far {welcome:?}"));
            let last = if https { line.contains("fingerprint") } else { line.starts_with("videocall: open http://") };
            welcome.push(line);
            if last {
                return Self { _process: process, welcome };
            }
        }
    }

    /// The fingerprint it printed.
    fn fingerprint(&self) -> String {
        let line = self.welcome.iter().find(|l| l.contains("fingerprint")).expect("a fingerprint line");
        line.rsplit(' ').next().unwrap().to_owned()
    }
}

/// SHA-256 of a certificate as the server prints it (`AB:CD:…`).
fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn temporary_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{label}-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The certificate the server at `addr` presents, connecting from `host` (or this machine).
async fn presented(host: Option<&Host>, addr: SocketAddr, name: &str) -> Vec<u8> {
    let (host, name) = (host.cloned(), name.to_owned());
    tokio::task::spawn_blocking(move || {
        let stream = match &host {
            Some(host) => host.connect(addr)?,
            None => std::net::TcpStream::connect(addr)?,
        };
        testkit::presented_certificate(stream, &name)
    })
    .await
    .unwrap()
    .unwrap()
}

/// Resolves every name to 127.0.0.1 (the port as asked).
#[derive(Debug)]
struct Loopback;

impl wtransport::config::DnsResolver for Loopback {
    fn resolve(&self, host: &str) -> std::pin::Pin<Box<dyn wtransport::config::DnsLookupFuture>> {
        let port = host.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(443);
        Box::pin(async move { Ok(Some(SocketAddr::from(([127, 0, 0, 1], port)))) })
    }
}

/// Opens a WebTransport session at `url` (its name resolved to this machine), trusting `root`
/// only: the handshake succeeds only with a certificate for the name that chains to it.
async fn webtransport_session(root: &[u8], url: &str) -> anyhow::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(root.to_vec()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![wtransport::tls::WEBTRANSPORT_ALPN.to_vec()];
    let config =
        wtransport::ClientConfig::builder().with_bind_default().with_custom_tls(tls).dns_resolver(Loopback).build();
    let connection = wtransport::Endpoint::client(config)?.connect(url).await?;
    connection.close(wtransport::VarInt::from_u32(0), b"done");
    Ok(())
}

/// The port of the first `https://` address the welcome names.
fn https_port(welcome: &[String]) -> u16 {
    let url = welcome.iter().find_map(|l| l.split(' ').find(|w| w.starts_with("https://"))).expect("an https URL");
    url::Url::parse(url).unwrap().port_or_known_default().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_signed_certificate_printed_is_the_one_served_and_a_restart_keeps_it() {
    let state = temporary_dir("self-signed");
    let settings = |state: &Path| {
        vec![
            ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("HTTPS_LISTEN", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", "sqlite::memory:".to_owned()),
            ("STATE_DIR", state.display().to_string()),
        ]
    };
    let mut fingerprints = Vec::new();
    for _start in 0..2 {
        let server = Server::start(None, &settings(&state));
        let port = https_port(&server.welcome);
        let served = presented(None, SocketAddr::from(([127, 0, 0, 1], port)), "localhost").await;
        assert_eq!(fingerprint(&served), server.fingerprint(), "printed {:?}", server.welcome);
        fingerprints.push(server.fingerprint());
    }
    assert_eq!(fingerprints[0], fingerprints[1], "a restart made a new certificate");
    // The key is the owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(state.join("tls/self-signed.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let _ = std::fs::remove_dir_all(&state);
}

/// A certificate and key (PEM) for `localhost`, self-signed.
fn certificate_files(dir: &Path) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    // Written beside and renamed into place, as certificate tools do.
    for (name, text) in [("key.pem", key.serialize_pem()), ("cert.pem", cert.pem())] {
        std::fs::write(dir.join(format!("{name}.new")), text).unwrap();
        std::fs::rename(dir.join(format!("{name}.new")), dir.join(name)).unwrap();
    }
    cert.der().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_certificate_files_are_served_and_reloaded_when_they_change() {
    let dir = temporary_dir("operator-files");
    let first = certificate_files(&dir);
    let server = Server::start(
        None,
        &[
            ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("HTTPS_LISTEN", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", "sqlite::memory:".to_owned()),
            ("TLS_CERT_FILE", dir.join("cert.pem").display().to_string()),
            ("TLS_KEY_FILE", dir.join("key.pem").display().to_string()),
        ],
    );
    let at = SocketAddr::from(([127, 0, 0, 1], https_port(&server.welcome)));
    assert_eq!(presented(None, at, "localhost").await, first);
    assert_eq!(server.fingerprint(), fingerprint(&first));
    // Renewed by the operator's tooling: served without a restart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = certificate_files(&dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while presented(None, at, "localhost").await != second {
        assert!(Instant::now() < deadline, "the new certificate was not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until a remote peer is decoded and heard, as in the one-machine call test.
fn receiving(peer: &Value) -> bool {
    peer["frames_decoded"].as_u64().unwrap_or(0) >= 60
        && peer["audio_frames"].as_u64().unwrap_or(0) > 0
        && peer["audio_played_ms"].as_f64().unwrap_or(0.0) > 0.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_computers_meet_by_the_servers_address() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let hosts = match TwoHosts::create("meet") {
        Ok(hosts) => hosts,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED two_computers_meet_by_the_servers_address: cannot make network namespaces: {e:#}");
            return;
        }
        Err(e) => panic!("cannot make network namespaces (needed in CI): {e:#}"),
    };
    let server_ip = hosts.server.address;
    let client = || LaunchOptions { host: Some(hosts.client.clone()), ..LaunchOptions::default() };
    let state = temporary_dir("two-computers");
    let mut settings = vec![
        ("LISTEN_ADDR", "0.0.0.0:8080".to_owned()),
        ("DATABASE_URL", format!("sqlite:{}", state.join("videocall.db").display())),
        ("WEB_ROOT", web_root().display().to_string()),
        ("WEBTRANSPORT_LISTEN", "0.0.0.0:4433".to_owned()),
    ];

    // Without HTTPS, a page opened from the other computer says why it cannot work.
    {
        let _server = Server::start(Some(&hosts.server), &settings);
        let browser = testkit::Browser::launch_with(client()).await.unwrap();
        browser.goto(&format!("http://{server_ip}:8080/room/lan-check")).await.unwrap();
        let notice = browser
            .wait_for(
                "const n = document.querySelector('#insecure-context'); return n ? n.textContent : null",
                Duration::from_secs(20),
                |v| v.is_string(),
            )
            .await
            .unwrap();
        assert!(notice.as_str().unwrap().contains("https://"), "{notice}");
        assert_eq!(browser.eval("return window.isSecureContext").await.unwrap(), Value::Bool(false));
        browser.quit().await;
    }

    // With HTTPS: the printed address, redirected to from plain http.
    settings.push(("HTTPS_LISTEN", "0.0.0.0:8443".to_owned()));
    let server = Server::start(Some(&hosts.server), &settings);
    let https = format!("https://{server_ip}:8443");
    assert!(
        server.welcome.iter().any(|l| l.contains(&format!("open {https}/ on another computer"))),
        "{:?}",
        server.welcome
    );
    let served = presented(Some(&hosts.client), SocketAddr::from((server_ip, 8443)), &server_ip.to_string()).await;
    assert_eq!(fingerprint(&served), server.fingerprint());
    // The person checked the fingerprint and accepted the certificate: Chromium is told so.
    let accepted = format!("--ignore-certificate-errors-spki-list={}", testkit::spki_sha256_base64(&served).unwrap());
    let trusting =
        || LaunchOptions { host: Some(hosts.client.clone()), args: vec![accepted.clone()], ..LaunchOptions::default() };
    {
        let browser = testkit::Browser::launch_with(trusting()).await.unwrap();
        browser.goto(&format!("http://{server_ip}:8080/room/lan-check")).await.unwrap();
        let at = browser
            .wait_for("return location.href", Duration::from_secs(20), |v| {
                v.as_str().is_some_and(|h| h.starts_with("https://"))
            })
            .await
            .unwrap();
        assert_eq!(at, Value::String(format!("{https}/room/lan-check")));
        wait(&browser, "return window.isSecureContext && !!crypto.subtle && !!navigator.mediaDevices", 20).await;
        browser.quit().await;
    }

    for (transport, expected) in [("auto", "WebTransport"), ("websocket", "WebSocket")] {
        let room = format!("lan-{transport}");
        let ada = Participant::join_with(trusting(), &https, &room, "Ada", transport).await;
        let bob = Participant::join_with(trusting(), &https, &room, "Bob", transport).await;
        for p in [&ada, &bob] {
            let stats = p.wait_for_peers(1, Duration::from_secs(30), receiving).await;
            assert_eq!(stats["transport"], expected, "{}: {stats:#}", p.name);
            // A guest session's cookie (Secure, so only over HTTPS here) comes back: the server
            // knows who this is.
            let session = p
                .browser
                .eval(&format!(
                    "return fetch('/api/v1/session', {{method: 'POST', headers: {{'content-type': 'application/json'}},
                       body: JSON.stringify({{display_name: {name:?}}})}})
                     .then(() => fetch('/api/v1/session')).then(r => r.json())
                     .then(s => s.user && s.user.display_name)",
                    name = p.name
                ))
                .await
                .unwrap();
            assert_eq!(session, Value::String(p.name.clone()), "{}", p.name);
        }
        ada.quit().await;
        bob.quit().await;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_acme_ca_is_served_renewed_and_used_by_webtransport() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let http_port = testkit::free_port();
    // Thirty seconds: renewal is due after twenty.
    let pebble = testkit::Pebble::start(http_port, 30).unwrap();
    let issuing = pebble.issuing_chain().await.unwrap();
    let state = temporary_dir("acme");
    let (https_port, webtransport_port) = (testkit::free_port(), testkit::free_udp_port());
    let domain = "meet.test";
    let started = Instant::now();
    let server = Server::start(
        None,
        &[
            ("LISTEN_ADDR", format!("127.0.0.1:{http_port}")),
            ("HTTPS_LISTEN", format!("127.0.0.1:{https_port}")),
            ("WEBTRANSPORT_LISTEN", format!("127.0.0.1:{webtransport_port}")),
            ("DOMAIN", domain.to_owned()),
            ("ACME_DIRECTORY", pebble.directory.clone()),
            ("ACME_CA_FILE", pebble.api_ca.display().to_string()),
            ("DATABASE_URL", "sqlite::memory:".to_owned()),
            ("STATE_DIR", state.display().to_string()),
            ("WEB_ROOT", web_root().display().to_string()),
        ],
    );
    println!("certificate obtained and serving after {:?}", started.elapsed());
    let site = format!("https://{domain}:{https_port}");
    assert!(server.welcome.iter().any(|l| l.contains(&format!("open {site} anywhere"))), "{:?}", server.welcome);

    // A client that trusts Pebble's root only, asking by name.
    let client = testkit::Https::trusting(&issuing[..1]).unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], https_port));
    let health = client.request(at, domain, "GET", "/healthz", None).await.unwrap();
    assert_eq!(health.status, 200);
    let first = health.certificate;
    assert_eq!(fingerprint(&first), server.fingerprint());
    // WebTransport: the same CA-signed certificate, so no hash to pin.
    let info = client.request(at, domain, "GET", "/api/v1/webtransport", None).await.unwrap().json().unwrap();
    assert_eq!(info["url"], format!("https://{domain}:{webtransport_port}/"));
    assert_eq!(info["certificate_hashes"], serde_json::json!([]));
    // A WebTransport client that trusts Pebble's root only opens a session by name.
    let ask = serde_json::json!({"room": "acme-room", "display_name": "Probe"});
    let guest = client.request(at, domain, "POST", "/api/v1/guest-tokens", Some(&ask)).await.unwrap().json().unwrap();
    let session_url = format!("https://{domain}:{webtransport_port}{}", guest["websocket_path"].as_str().unwrap());
    webtransport_session(&issuing[0], &session_url).await.unwrap();

    // A browser that trusts Pebble's root (the test's stand-in for a public CA, installed as a
    // person installs one) joins over WebTransport by name. Chromium speaks QUIC only to
    // certificates from publicly known roots; WebTransport developer mode lifts that one rule
    // for a locally installed root (a real CA's certificate needs no flag).
    let options = LaunchOptions {
        host: None,
        args: vec![format!("--host-resolver-rules=MAP {domain} 127.0.0.1"), "--webtransport-developer-mode".into()],
        trusted_roots: vec![issuing[0].to_vec()],
    };
    let ada = Participant::join_with(options, &site, "acme-room", "Ada", "webtransport").await;
    assert_eq!(ada.stats().await["transport"], "WebTransport");
    ada.quit().await;

    // Renewed: a new certificate is served before the first one ends.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.request(at, domain, "GET", "/healthz", None).await
            && response.certificate != first
        {
            break;
        }
        assert!(Instant::now() < deadline, "never renewed; Pebble's log:\n{}", pebble.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}
