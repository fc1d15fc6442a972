//! WebTransport and WebSocket clients in the same room: one process (single node), and through
//! NATS with the WebTransport relay as a separate process.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::webtransport::{WebTransportServer, WtClient, lobby, start_with_webtransport};
use common::*;
use testkit::{KillOnDrop, NatsServer, free_port};
use videocall_types::PacketType;

/// WebSocket `ws` and WebTransport `wt` (both already joined) see each other and exchange
/// packets with stamped identities.
async fn exchange(ws: &mut Client, ws_guest: &Guest, wt: &WtClient, wt_guest: &Guest) {
    let wt_session = loop {
        match ws.recv_within(Duration::from_secs(10)).await.unwrap() {
            Received::Joined(session, user) if user == wt_guest.user => break session,
            _ => {}
        }
    };
    let mut spoofed = media(b"over webtransport");
    spoofed.email = ws_guest.user.clone();
    wt.send(&spoofed).await.unwrap();
    let got = next_packet(ws).await;
    assert_eq!(
        (got.email.as_str(), got.session_id, &got.data[..]),
        (wt_guest.user.as_str(), wt_session, &b"over webtransport"[..])
    );

    ws.send(&media(b"over websocket")).await.unwrap();
    let got = loop {
        if let Received::Packet(p) = wt.recv_within(Duration::from_secs(10)).await.unwrap() {
            break p;
        }
    };
    assert_eq!((got.email.as_str(), &got.data[..]), (ws_guest.user.as_str(), &b"over websocket"[..]));
    assert_eq!(got.packet_type.enum_value(), Ok(PacketType::MEDIA));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_webtransport_clients_meet_in_one_process() {
    let config = Config::for_tests();
    let WebTransportServer { server, http, base, hash } = start_with_webtransport(config).await;
    assert_eq!(base, format!("https://127.0.0.1:{}/", server.webtransport_addr().unwrap().port()));

    let ws_guest = guest(&http, "mixed", "On WebSocket").await;
    let mut ws = Client::join(&http, &ws_guest).await;
    let wt_guest = guest(&http, "mixed", "On WebTransport").await;
    let wt = WtClient::connect(&lobby(&base, &wt_guest), hash).await.unwrap();
    match wt.recv().await.unwrap() {
        Received::Members(members) => assert_eq!(members.len(), 1),
        other => panic!("expected the member list, got {other:?}"),
    }
    exchange(&mut ws, &ws_guest, &wt, &wt_guest).await;

    // A WebTransport client that goes away is reported gone to the room.
    drop(wt);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "leave not reported");
        if let Ok(Received::Left(_, _)) = ws.recv_within(Duration::from_secs(20)).await {
            break;
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_refuses_bad_paths_and_tokens() {
    let config = Config::for_tests();
    let WebTransportServer { server, http, base, hash } = start_with_webtransport(config).await;
    let g = guest(&http, "room", "A").await;
    for path in [
        format!("lobby/{}/bad.room?token={}", g.user, g.token),
        format!("lobby/{}/room", g.user),
        format!("lobby/{}/room?token=forged", g.user),
        format!("lobby/someone/room?token={}", g.token),
        "nowhere".to_owned(),
    ] {
        assert!(WtClient::connect(&format!("{base}{path}"), hash).await.is_err(), "{path} was accepted");
    }
    let metrics = common::metrics(&server).await;
    for code in ["bad_room_id", "token_missing", "token_invalid", "token_mismatch", "bad_path"] {
        assert!(metrics.contains(&format!("connections_refused_total{{reason=\"{code}\"}} 1")), "{code}: {metrics}");
    }
    // The one valid session works.
    let wt = WtClient::connect(&lobby(&base, &g), hash).await.unwrap();
    assert!(matches!(wt.recv().await.unwrap(), Received::Members(_)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_webtransport_relays_meet_through_nats_as_separate_processes() {
    let nats = NatsServer::start().unwrap();
    let mut config = Config::for_tests();
    config.relay.nats_url = Some(nats.url());
    let server = start(config).await;
    let http = http_url(&server);

    // The separate relay loads its certificate from files, as in production.
    let (wt_port, health_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("wt-cert-{wt_port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let identity = wtransport::Identity::self_signed(["127.0.0.1"]).unwrap();
    identity.certificate_chain().store_pemfile(dir.join("cert.pem")).await.unwrap();
    identity.private_key().store_secret_pemfile(dir.join("key.pem")).await.unwrap();
    let hash = *identity.certificate_chain().as_slice()[0].hash().as_ref();

    let binary = testkit::workspace_binary("webtransport-server").unwrap();
    let _relay = KillOnDrop(
        Command::new(binary)
            .env("WEBTRANSPORT_LISTEN", format!("127.0.0.1:{wt_port}"))
            .env("HEALTH_LISTEN_ADDR", format!("127.0.0.1:{health_port}"))
            .env("NATS_URL", nats.url())
            .env("TOKEN_SECRET", "test secret that is long enough for HS256")
            .env("TLS_CERT_FILE", dir.join("cert.pem"))
            .env("TLS_KEY_FILE", dir.join("key.pem"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "webtransport-server not ready");
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{health_port}/readyz")).await {
            if r.status() == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A certificate from files is one browsers check as usual (a CA's): the relay offers no
    // hash to pin. This test's client pins it all the same.
    let reported: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{health_port}/certificate")).await.unwrap().json().await.unwrap();
    assert_eq!(reported["certificate_hashes"], serde_json::json!([]));

    let ws_guest = guest(&http, "across", "On WebSocket").await;
    let mut ws = Client::join(&http, &ws_guest).await;
    let wt_guest = guest(&http, "across", "On WebTransport").await;
    let wt = WtClient::connect(&lobby(&format!("https://127.0.0.1:{wt_port}/"), &wt_guest), hash).await.unwrap();
    exchange(&mut ws, &ws_guest, &wt, &wt_guest).await;
    let _ = std::fs::remove_dir_all(&dir);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webtransport_client_that_vanishes_is_reported_gone_within_the_heartbeat_timeout() {
    let mut config = Config::for_tests();
    config.relay.heartbeat_timeout_secs = 3;
    config.relay.ping_interval_secs = 1;
    let WebTransportServer { server, http, base, hash } = start_with_webtransport(config).await;
    let mut watcher = Client::join(&http, &guest(&http, "vanish", "Watcher").await).await;
    let url = lobby(&base, &guest(&http, "vanish", "Vanishing").await);

    // The client lives on its own runtime; shutting that down in the background stops its QUIC
    // driver on the spot: no CONNECTION_CLOSE, no further packets, as if the machine went away.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let client_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let client = runtime.block_on(WtClient::connect(&url, hash)).unwrap();
        ready_tx.send(()).unwrap();
        std::mem::forget(client);
        runtime.shutdown_background();
    });
    ready_rx.recv().unwrap();
    client_thread.join().unwrap();
    let Received::Joined(session, _) = watcher.recv().await.unwrap() else { panic!("join not seen") };
    let vanished_at = Instant::now();
    loop {
        match watcher.recv_within(Duration::from_secs(15)).await.unwrap() {
            Received::Left(left, _) if left == session => break,
            _ => {}
        }
    }
    // QUIC's idle timeout is the heartbeat timeout (3 s); allow the relay's tick and scheduling.
    assert!(vanished_at.elapsed() < Duration::from_secs(6), "took {:?}", vanished_at.elapsed());
    server.stop().await;
}
