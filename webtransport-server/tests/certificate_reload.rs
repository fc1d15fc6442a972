//! A certificate replaced on disk is served without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use videocall_relay::{LocalBus, Relay, RelayConfig, RelayMetrics, RoomToken, TokenKey};
use videocall_types::{DisplayName, RoomId, UserId};
use webtransport_server::{IdentitySource, WebTransportOptions, serve};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_file_is_served_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("wt-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = write_identity(&dir).await;

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
    assert_eq!(server.certificate_hash(), Some(first));

    let grant = RoomToken {
        user: UserId::parse("ada").unwrap(),
        room: RoomId::parse("reload").unwrap(),
        name: DisplayName::parse("Ada").unwrap(),
        expires_at: u64::MAX / 2,
    };
    let url = format!(
        "https://127.0.0.1:{}/lobby/ada/reload?token={}",
        server.local_addr().port(),
        tokens.issue(&grant, 0).unwrap()
    );
    assert!(accepted_with(&url, first).await);

    let second = write_identity(&dir).await;
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.certificate_hash() != Some(second) {
        assert!(Instant::now() < deadline, "the new certificate was not picked up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted_with(&url, second).await, "new connections get the new certificate");
    assert!(!accepted_with(&url, first).await, "and no longer the old one");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
