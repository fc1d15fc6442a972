//! Bad input, each with its documented result, while the others in the room keep receiving.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use protobuf::Message as _;
use tokio_tungstenite::tungstenite::Message;
use videocall_relay::{RoomToken, TokenKey};
use videocall_types::{DisplayName, PacketType, PacketWrapper, RoomId, UserId, limits::MAX_PACKET_BYTES};

const SECRET: &str = "test secret that is long enough for HS256";

/// A sender publishing a numbered packet every 5 ms, and a watcher that must keep getting them.
struct LiveRoom {
    sent: Arc<AtomicU32>,
    watcher: Client,
    sender_task: tokio::task::JoinHandle<()>,
}

impl LiveRoom {
    async fn start(http: &str, room: &str) -> Self {
        let mut sender = Client::join(http, &guest(http, room, "Sender").await).await;
        let watcher = Client::join(http, &guest(http, room, "Watcher").await).await;
        let sent = Arc::new(AtomicU32::new(0));
        let counter = sent.clone();
        let sender_task = tokio::spawn(async move {
            loop {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if sender.send(&media(&n.to_be_bytes())).await.is_err() {
                    return;
                }
                // Drain what the sender receives (presence of the bad clients).
                while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(5), sender.recv()).await {}
            }
        });
        Self { sent, watcher, sender_task }
    }

    /// The watcher receives packets sent after this call: the room still works.
    async fn still_flowing(&mut self) {
        let from = self.sent.load(Ordering::SeqCst);
        loop {
            match self.watcher.recv().await.expect("watcher keeps receiving") {
                Received::Packet(p) if p.packet_type.enum_value() == Ok(PacketType::MEDIA) => {
                    let n = u32::from_be_bytes(p.data[..4].try_into().unwrap());
                    if n > from + 3 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}

async fn refused(http: &str, path: &str) -> (u16, String) {
    let Err((status, body)) = Client::connect_raw(http, path).await else { panic!("{path} was accepted") };
    let code = serde_json::from_str::<serde_json::Value>(&body).map(|v| v["code"].as_str().unwrap_or("").to_owned());
    (status, code.unwrap_or(body))
}

fn token(secret: &str, user: &str, room: &str, expires_at: u64) -> String {
    let grant = RoomToken {
        user: UserId::parse(user).unwrap(),
        room: RoomId::parse(room).unwrap(),
        name: DisplayName::parse("Mallory").unwrap(),
        expires_at,
        id: RoomToken::fresh_id(),
        recorder: false,
    };
    TokenKey::from_secret(secret.as_bytes()).unwrap().issue(&grant, 0).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_with_bad_ids_or_tokens_are_refused_with_a_clear_status() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let mut live = LiveRoom::start(&http, "busy").await;
    let valid = token(SECRET, "mallory", "busy", now() + 60);

    let cases: Vec<(String, (u16, &str))> = vec![
        (format!("/lobby/mallory/bad.room?token={valid}"), (400, "bad_room_id")),
        (format!("/lobby/mallory/bad*room?token={valid}"), (400, "bad_room_id")),
        (format!("/lobby/mallory/bad%3Eroom?token={valid}"), (400, "bad_room_id")),
        (format!("/lobby/mallory/room%20x?token={valid}"), (400, "bad_room_id")),
        (format!("/lobby/mal%20lory/busy?token={valid}"), (400, "bad_user_id")),
        ("/lobby/mallory/busy".to_owned(), (401, "token_missing")),
        ("/lobby/mallory/busy?token=".to_owned(), (401, "token_missing")),
        ("/lobby/mallory/busy?token=garbage".to_owned(), (401, "token_invalid")),
        (format!("/lobby/mallory/busy?token={}", token(SECRET, "mallory", "busy", now() - 1)), (401, "token_expired")),
        (
            format!(
                "/lobby/mallory/busy?token={}",
                token("a different secret, also long enough", "mallory", "busy", now() + 60)
            ),
            (401, "token_invalid"),
        ),
        (format!("/lobby/mallory/other?token={valid}"), (403, "token_mismatch")),
        (format!("/lobby/someone-else/busy?token={valid}"), (403, "token_mismatch")),
    ];
    for (path, (status, code)) in cases {
        let (got_status, got_code) = refused(&http, &path).await;
        assert_eq!((got_status, got_code.as_str()), (status, code), "{path}");
        live.still_flowing().await;
    }
    let metrics = common::metrics(&server).await;
    assert!(metrics.contains(r#"videocall_connections_refused_total{reason="bad_room_id"} 4"#), "{metrics}");
    assert!(metrics.contains(r#"videocall_connections_refused_total{reason="token_expired"} 1"#), "{metrics}");
    live.sender_task.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_only_the_offender_with_a_close_code() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let mut live = LiveRoom::start(&http, "busy").await;

    let mut unknown_type = media(b"x").write_to_bytes().unwrap();
    unknown_type[1] = 77;
    let mut presence = media(b"x");
    presence.packet_type = PacketType::PRESENCE.into();
    let mut oversized = media(&vec![0; MAX_PACKET_BYTES]).write_to_bytes().unwrap();
    oversized.truncate(MAX_PACKET_BYTES + 1);
    let mut connection = media(b"x");
    connection.packet_type = PacketType::CONNECTION.into();
    let mut padded_key = media(&vec![7; 5000]);
    padded_key.packet_type = PacketType::AES_KEY.into();
    let mut demand = media(b"");
    demand.packet_type = PacketType::LAYER_DEMAND.into();
    let mut bad_subscription = media(&[0xff, 0xff]);
    bad_subscription.packet_type = PacketType::SUBSCRIPTION.into();
    let mut padded_subscription = media(&vec![0; 9 * 1024]);
    padded_subscription.packet_type = PacketType::SUBSCRIPTION.into();

    let cases: Vec<(&str, Message, u16, &str)> = vec![
        ("malformed protobuf", Message::Binary(vec![0xff, 0xff, 0xff].into()), 1007, "malformed PacketWrapper"),
        ("no packet type", Message::Binary(vec![0x1a, 0x01, 0x00].into()), 1007, "PacketWrapper has no packet_type"),
        ("unknown packet type", Message::Binary(unknown_type.into()), 1008, "unknown packet type 77"),
        (
            "presence from a client",
            Message::Binary(presence.write_to_bytes().unwrap().into()),
            1008,
            "clients may not send PRESENCE packets",
        ),
        (
            "connection packet from a client",
            Message::Binary(connection.write_to_bytes().unwrap().into()),
            1008,
            "clients may not send CONNECTION packets",
        ),
        (
            "a layer demand from a client",
            Message::Binary(demand.write_to_bytes().unwrap().into()),
            1008,
            "clients may not send LAYER_DEMAND packets",
        ),
        (
            "a subscription that is not one",
            Message::Binary(bad_subscription.write_to_bytes().unwrap().into()),
            1007,
            "malformed Subscription",
        ),
        (
            "a padded subscription",
            Message::Binary(padded_subscription.write_to_bytes().unwrap().into()),
            4005,
            "sending too fast: a subscription of",
        ),
        (
            "a padded key packet",
            Message::Binary(padded_key.write_to_bytes().unwrap().into()),
            4005,
            "sending too fast: a key packet of",
        ),
        ("text frame", Message::Text("{\"hello\":1}".into()), 1003, "text frames are not accepted"),
        ("oversized message", Message::Binary(oversized.into()), 1009, "exceeds the limit"),
    ];
    for (what, message, code, reason) in cases {
        let mut offender = Client::join(&http, &guest(&http, "busy", "Mallory").await).await;
        offender.ws.send(message).await.unwrap();
        let (got_code, got_reason) = offender.expect_close().await;
        assert_eq!(got_code, code, "{what}: {got_reason}");
        assert!(got_reason.contains(reason), "{what}: {got_reason:?} lacks {reason:?}");
        live.still_flowing().await;
    }
    let metrics = common::metrics(&server).await;
    for reason in [
        "malformed\"} 2",
        "unknown_type\"} 1",
        "not_allowed\"} 3",
        "bad_subscription\"} 1",
        "text_frame\"} 1",
        "oversized\"} 1",
        "over_budget\"} 2",
    ] {
        assert!(
            metrics.contains(&format!("videocall_packets_rejected_total{{reason=\"{reason}")),
            "{reason} in {metrics}"
        );
    }
    live.sender_task.abort();
    server.stop().await;
}

/// A participant flooding keys at one victim, or the room with packets, is closed (4005) by its
/// send budget; the victim stays and keeps receiving the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_closed_and_its_victim_kept() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let mut victim = Client::join(&http, &guest(&http, "flood", "Victim").await).await;
    // What each flood sends, given the victim's session.
    type Flood = fn(u64) -> PacketWrapper;
    let floods: [(&str, Flood); 2] = [
        ("keys addressed to the victim", |victim| PacketWrapper {
            packet_type: PacketType::AES_KEY.into(),
            to_session_id: victim,
            data: vec![9; 4000],
            ..Default::default()
        }),
        ("small packets to everyone", |_| media(b"spam")),
    ];
    for (what, packet) in floods {
        let mut flooder = Client::join(&http, &guest(&http, "flood", "Flooder").await).await;
        let victim_session = flooder.members[0];
        let Received::Joined(flooder_session, _) = victim.recv().await.unwrap() else { panic!("{what}: join") };
        let bytes = packet(victim_session).write_to_bytes().unwrap();
        let mut sent = 0;
        for _ in 0..5000 {
            if flooder.send_bytes(bytes.clone()).await.is_err() {
                break;
            }
            sent += 1;
        }
        let (code, reason) = flooder.expect_close().await;
        assert_eq!(code, 4005, "{what}: {reason} after {sent}");
        assert!(reason.contains("sending too fast"), "{what}: {reason}");
        // The victim got what was within the budget, then the flooder's departure, and stays.
        loop {
            match victim.recv().await.expect("the victim stays connected") {
                Received::Left(session, _) if session == flooder_session => break,
                Received::Packet(_) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        // The flooder's last packets may still be on the bus after the relay told the room it
        // left (presence goes to local sessions directly): they are skipped, nothing else is.
        let mut next_not_from_flooder = async || loop {
            match victim.recv().await.expect("the victim stays connected") {
                Received::Packet(p) if p.session_id == flooder_session => {}
                other => return other,
            }
        };
        let mut honest = Client::join(&http, &guest(&http, "flood", "Honest").await).await;
        let Received::Joined(honest_session, _) = next_not_from_flooder().await else { panic!("{what}: honest") };
        honest.send(&media(b"still here")).await.unwrap();
        let Received::Packet(still_here) = next_not_from_flooder().await else { panic!("{what}: media") };
        assert_eq!(still_here.data, b"still here");
        honest.close().await;
        assert!(matches!(next_not_from_flooder().await, Received::Left(s, _) if s == honest_session));
    }
    // Closed by its own budget, or by the room when it filled its share of the victim's queue
    // first: either way counted, twice in all.
    let metrics = common::metrics(&server).await;
    let count = |line: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(line)).map_or(0, |v| v.trim().parse().unwrap())
    };
    let closed = count(r#"videocall_sessions_closed_total{reason="over_budget"}"#)
        + count(r#"videocall_sessions_closed_total{reason="sending too fast"}"#);
    assert_eq!(closed, 2, "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_claiming_another_identity_is_stamped_with_its_own() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let victim = guest(&http, "busy", "Victim").await;
    let mut watcher = Client::join(&http, &victim).await;
    let mallory = guest(&http, "busy", "Mallory").await;
    let mut m = Client::join(&http, &mallory).await;
    let Received::Joined(mallory_session, _) = watcher.recv().await.unwrap() else { panic!() };
    let mut forged = media(b"I am the victim");
    forged.email = victim.user.clone();
    forged.session_id = mallory_session + 1;
    m.send(&forged).await.unwrap();
    let got = next_packet(&mut watcher).await;
    assert_eq!((got.email, got.session_id), (mallory.user, mallory_session));
    server.stop().await;
}
