//! The WebSocket relay end to end: real server, real clients, in one process.

mod common;

use common::*;
use videocall_types::PacketType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_packets_with_stamped_identity_and_presence() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let (ga, gb) = (guest(&http, "standup", "Ada").await, guest(&http, "standup", "Bob").await);
    let mut a = Client::join(&http, &ga).await;
    let mut b = Client::join(&http, &gb).await;
    let Received::Joined(b_session, b_user) = a.recv().await.unwrap() else { panic!("a should see b join") };
    assert_eq!(b_user, gb.user);

    // B claims to be A: the relay overwrites it.
    let mut spoofed = media(b"hello");
    spoofed.email = ga.user.clone();
    spoofed.session_id = 1;
    b.send(&spoofed).await.unwrap();
    let got = next_packet(&mut a).await;
    assert_eq!((got.email.as_str(), got.session_id, &got.data[..]), (gb.user.as_str(), b_session, &b"hello"[..]));
    assert_eq!(got.packet_type.enum_value(), Ok(PacketType::MEDIA));

    // Nobody gets their own packets back.
    a.send(&media(b"from a")).await.unwrap();
    assert_eq!(next_packet(&mut b).await.data, b"from a");
    assert!(a.recv_within(std::time::Duration::from_millis(300)).await.is_err());

    b.close().await;
    assert_eq!(a.recv().await.unwrap(), Received::Left(b_session, "left".into()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addressed_packets_reach_only_their_recipient() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let mut a = Client::join(&http, &guest(&http, "keys", "A").await).await;
    let mut b = Client::join(&http, &guest(&http, "keys", "B").await).await;
    let Received::Joined(b_session, _) = a.recv().await.unwrap() else { panic!() };
    let mut c = Client::join(&http, &guest(&http, "keys", "C").await).await;
    a.recv().await.unwrap();
    b.recv().await.unwrap();
    let mut key = media(b"wrapped key");
    key.packet_type = PacketType::AES_KEY.into();
    key.to_session_id = b_session;
    a.send(&key).await.unwrap();
    assert_eq!(next_packet(&mut b).await.data, b"wrapped key");
    assert!(c.recv_within(std::time::Duration::from_millis(300)).await.is_err());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let get = |path: &'static str| {
        let url = format!("{http}{path}");
        async move { reqwest::get(url).await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    let ready = get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ready": true, "bus": "local", "bus_ready": true, "database": "sqlite", "database_ready": true})
    );

    let mut a = Client::join(&http, &guest(&http, "metrics", "A").await).await;
    let mut b = Client::join(&http, &guest(&http, "metrics", "B").await).await;
    let packet = media(&[0; 1000]);
    a.send(&packet).await.unwrap();
    next_packet(&mut b).await;
    // A packet larger than the relay's WebSocket fragment size arrives whole.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    a.send(&media(&big)).await.unwrap();
    assert_eq!(next_packet(&mut b).await.data, big);
    // Metrics are served apart from the site, never through whatever proxies it: there the path
    // is not found, or (with the web client served) it is the client's page.
    let site = get("/metrics").await.text().await.unwrap();
    assert!(!site.contains("videocall_sessions"), "the site's port serves metrics: {site}");
    let text = metrics(&server).await;
    let bytes_in = format!(
        "videocall_bytes_in_total {}",
        protobuf::Message::compute_size(&packet) + protobuf::Message::compute_size(&media(&big))
    );
    for expected in [
        "videocall_sessions 2",
        "videocall_rooms 1",
        "videocall_packets_in_total 2",
        &bytes_in,
        "videocall_bus_ready 1",
        "videocall_bus_publish_seconds_count",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_tokens_validate_input_and_can_be_turned_off() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let post = |body: serde_json::Value| {
        let url = format!("{http}/api/v1/guest-tokens");
        async move { reqwest::Client::new().post(url).json(&body).send().await.unwrap() }
    };
    let bad_room = post(serde_json::json!({"room": "a.b", "display_name": "X"})).await;
    assert_eq!(bad_room.status(), 400);
    assert_eq!(bad_room.json::<serde_json::Value>().await.unwrap()["code"], "bad_room_id");
    let bad_name = post(serde_json::json!({"room": "ok", "display_name": "  "})).await;
    assert_eq!(bad_name.json::<serde_json::Value>().await.unwrap()["code"], "bad_display_name");
    let huge = post(serde_json::json!({"room": "ok", "display_name": "x".repeat(10_000)})).await;
    assert_eq!(huge.status(), 413);
    assert_eq!(huge.json::<serde_json::Value>().await.unwrap()["code"], "body_too_large");
    server.stop().await;

    let mut config = Config::for_tests();
    config.guest_tokens = false;
    let server = start(config).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/guest-tokens", http_url(&server)))
        .json(&serde_json::json!({"room": "ok", "display_name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_is_closed_and_reported_gone() {
    let mut config = Config::for_tests();
    config.relay.heartbeat_timeout_secs = 3;
    config.relay.ping_interval_secs = 1;
    let server = start(config).await;
    let http = http_url(&server);
    // Never read again, so never answers a ping.
    let mut silent = Client::join(&http, &guest(&http, "quiet", "Silent").await).await;
    // `alive` joins after it and is read from then on, so it answers every ping and stays
    // (joined first, it went unread while the other joined: on a loaded machine, past the
    // timeout).
    let mut alive = Client::join(&http, &guest(&http, "quiet", "Alive").await).await;
    let started = std::time::Instant::now();
    let [silent_session] = alive.members[..] else { panic!("members: {:?}", alive.members) };
    assert_eq!(
        alive.recv_within(std::time::Duration::from_secs(8)).await.unwrap(),
        Received::Left(silent_session, "timed out".into())
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(silent.expect_close().await, (4001, "timed out".into()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_one_session_and_a_new_token_of_the_same_user_replaces_it() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let mut other = Client::join(&http, &guest(&http, "again", "Other").await).await;
    let ada = guest(&http, "again", "Ada").await;
    let mut first = Client::join(&http, &ada).await;
    let Received::Joined(first_session, _) = other.recv().await.unwrap() else { panic!() };
    // A copy of the token (a proxy log of the URL) opens nothing, and evicts nobody.
    let path = format!("/lobby/{}/{}?token={}", ada.user, ada.room, ada.token);
    let (status, body) = Client::connect_raw(&http, &path).await.err().expect("a used token got in");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("token_used"), "{body}");
    first.send(&media(b"still mine")).await.unwrap();
    assert_eq!(next_packet(&mut other).await.data, b"still mine");
    // Ada's own reconnect asks for a new token: that one replaces the old connection.
    let key =
        videocall_relay::TokenKey::from_secret(Config::for_tests().relay.token_secret.unwrap().as_bytes()).unwrap();
    let mut grant = key.verify(&ada.token, videocall_relay::auth::unix_now()).unwrap();
    grant.id = videocall_relay::RoomToken::fresh_id();
    let fresh = Guest { token: key.issue(&grant, videocall_relay::auth::unix_now()).unwrap(), ..ada };
    let second = Client::join(&http, &fresh).await;
    assert_eq!(second.members.len(), 1, "the new connection sees the others, not its old self");
    assert_eq!(first.expect_close().await, (4000, "replaced by a newer connection".into()));
    assert_eq!(other.recv().await.unwrap(), Received::Left(first_session, "replaced by a newer connection".into()));
    assert!(matches!(other.recv().await.unwrap(), Received::Joined(_, user) if user == fresh.user));
    // And once its session has ended, the first token stays dead.
    let (status, body) = Client::connect_raw(&http, &path).await.err().expect("an ended token got in");
    assert_eq!((status, body.contains("token_used")), (403, true), "{body}");
    let metrics = common::metrics(&server).await;
    assert!(metrics.contains(r#"videocall_connections_refused_total{reason="token_used"} 2"#), "{metrics}");
    server.stop().await;
}

/// Refused with its status and code, counted.
async fn refused_with(http: &str, guest: &Guest) -> (u16, String) {
    let path = format!("/lobby/{}/{}?token={}", guest.user, guest.room, guest.token);
    let Err((status, body)) = Client::connect_raw(http, &path).await else { panic!("{} was let in", guest.user) };
    let code = serde_json::from_str::<serde_json::Value>(&body).unwrap()["code"].as_str().unwrap_or("").to_owned();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_caps_sessions_per_address_in_all_and_its_rooms() {
    // One address may hold two sessions; a third waits until one is given back.
    let mut config = Config::for_tests();
    config.relay.max_sessions_per_address = 2;
    let server = start(config).await;
    let http = http_url(&server);
    let first = Client::join(&http, &guest(&http, "a", "One").await).await;
    let _second = Client::join(&http, &guest(&http, "a", "Two").await).await;
    let third = guest(&http, "a", "Three").await;
    assert_eq!(refused_with(&http, &third).await, (429, "too_many_connections".to_owned()));
    first.close().await;
    let mut let_in = None;
    for _ in 0..50 {
        let path = format!("/lobby/{}/{}?token={}", third.user, third.room, third.token);
        if let Ok(client) = Client::connect_raw(&http, &path).await {
            let_in = Some(client);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(let_in.is_some(), "a seat given back is taken again");
    let metrics = common::metrics(&server).await;
    assert!(metrics.contains(r#"videocall_connections_refused_total{reason="too_many_connections"}"#), "{metrics}");
    server.stop().await;

    // One room and two sessions in all.
    let mut config = Config::for_tests();
    config.relay.max_rooms = 1;
    config.relay.max_sessions = 2;
    let server = start(config).await;
    let http = http_url(&server);
    let _a = Client::join(&http, &guest(&http, "a", "One").await).await;
    assert_eq!(refused_with(&http, &guest(&http, "b", "Two").await).await, (503, "too_many_rooms".to_owned()));
    let _b = Client::join(&http, &guest(&http, "a", "Two").await).await;
    assert_eq!(refused_with(&http, &guest(&http, "a", "Three").await).await, (503, "server_full".to_owned()));
    let metrics = common::metrics(&server).await;
    for reason in ["too_many_rooms", "server_full"] {
        assert!(
            metrics.contains(&format!("videocall_connections_refused_total{{reason=\"{reason}\"}} 1")),
            "{metrics}"
        );
    }
    server.stop().await;
}
