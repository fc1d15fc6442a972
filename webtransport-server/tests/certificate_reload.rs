//! A certificate replaced on disk is served without a restart: noticed by itself, or at once
//! on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use videocall_relay::{LocalBus, Relay, RelayConfig, RelayMetrics, RoomToken, TokenKey};
use videocall_types::{DisplayName, RoomId, UserId};
use webtransport_server::{IdentitySource, WebTransportHandle, WebTransportOptions, serve};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Endpoint, Identity};

async fn write_identity(dir: &std::path::Path) -> [u8; 32] {
    let identity = Identity::self_signed(["127.0.0.1"]).unwrap();
    identity.certificate_chain().store_pemfile(dir.join("cert.pem")).await.unwrap();
    identity.private_key().store_secret_pemfile(dir.join("key.pem")).await.unwrap();
    *identity.certificate_chain().as_slice()[0].hash().as_ref()
}

/// True when a client trusting only `hash` completes a session with the relay.
async fn accepted_with(url: &str, hash: [u8; 32]) -> bool {
    let config =
        ClientConfig::builder().with_bind_default().with_server_certificate_hashes([Sha256Digest::new(hash)]).build();
    let endpoint = Endpoint::client(config).unwrap();
    endpoint.connect(url).await.is_ok()
}

/// A relay serving the certificate files in `dir`, and a session URL with a valid token.
async fn serve_files(dir: &Path) -> (WebTransportHandle, String) {
    let relay = Relay::new(Arc::new(LocalBus::new()), RelayConfig::default(), Arc::new(RelayMetrics::default()));
    let tokens = TokenKey::from_secret(b"test secret that is long enough for HS256").unwrap();
    let options = WebTransportOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity: IdentitySource::Files { cert: dir.join("cert.pem"), key: dir.join("key.pem") },
        max_packet_bytes: 64 * 1024,
        keep_alive: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(10),
    };
    let server = serve(relay, tokens.clone(), options).await.unwrap();
    let grant = RoomToken {
        user: UserId::parse("ada").unwrap(),
        room: RoomId::parse("reload").unwrap(),
        name: DisplayName::parse("Ada").unwrap(),
        expires_at: u64::MAX / 2,
        id: RoomToken::fresh_id(),
        recorder: false,
    };
    let url = format!(
        "https://127.0.0.1:{}/lobby/ada/reload?token={}",
        server.local_addr().port(),
        tokens.issue(&grant, 0).unwrap()
    );
    (server, url)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wt-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until the relay serves the certificate whose hash is `hash`.
async fn wait_for_hash(url: &str, hash: [u8; 32], within: Duration) {
    let deadline = Instant::now() + within;
    while !accepted_with(url, hash).await {
        assert!(Instant::now() < deadline, "the new certificate was not picked up within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends SIGHUP to this test process, where the servers under test listen for it.
fn sighup_self() {
    let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_file_is_served_without_a_restart() {
    let dir = temp_dir("reload");
    let first = write_identity(&dir).await;
    let (server, url) = serve_files(&dir).await;
    // A certificate from files is one browsers trust: no hash to pin is offered for it.
    assert_eq!(server.certificate_hash(), None);
    assert!(accepted_with(&url, first).await);

    let second = write_identity(&dir).await;
    assert_ne!(first, second);
    wait_for_hash(&url, second, Duration::from_secs(20)).await;
    assert!(accepted_with(&url, second).await, "new connections get the new certificate");
    assert!(!accepted_with(&url, first).await, "and no longer the old one");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_at_once() {
    let dir = temp_dir("sighup");
    let first = write_identity(&dir).await;
    let (server, url) = serve_files(&dir).await;
    assert!(accepted_with(&url, first).await);

    // New files with the old modification times, renamed into place (a rename keeps them):
    // only the signal can tell the server.
    let staging = temp_dir("sighup-staging");
    let second = write_identity(&staging).await;
    for f in ["cert.pem", "key.pem"] {
        let time = std::fs::metadata(dir.join(f)).unwrap().modified().unwrap();
        std::fs::File::options().write(true).open(staging.join(f)).unwrap().set_modified(time).unwrap();
    }
    for f in ["cert.pem", "key.pem"] {
        std::fs::rename(staging.join(f), dir.join(f)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(accepted_with(&url, first).await, "unchanged times, no signal: no reload");

    sighup_self();
    wait_for_hash(&url, second, Duration::from_secs(2)).await;
    assert!(accepted_with(&url, second).await, "new connections get the new certificate");

    // Caught mid-rotation (a new certificate beside the old key): refused, the current one kept.
    let third = Identity::self_signed(["127.0.0.1"]).unwrap();
    third.certificate_chain().store_pemfile(dir.join("cert.pem")).await.unwrap();
    sighup_self();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(accepted_with(&url, second).await, "still serving after a bad reload");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&staging);
}
