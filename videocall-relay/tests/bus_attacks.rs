//! The bus as an attacker sees it, on a real `nats-server` that requires a user, a password and
//! TLS: a process without credentials is turned away by NATS; one that has them (a leaked NATS
//! password, a compromised neighbour) but not the relays' key can publish, and the relays refuse
//! and count what it sends, including copies of genuine relay messages.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use testkit::{NatsSecurity, NatsServer};
use tokio::sync::mpsc;
use tokio::time::timeout;
use videocall_relay::bus::{BusKey, BusSink, NatsBusOptions, SealError};
use videocall_relay::{NatsBus, RoomBus, SessionId, TokenKey};
use videocall_types::RoomId;

enum Event {
    Delivered(Option<SessionId>, Bytes),
    Refused(SealError),
}

struct ChannelSink(mpsc::UnboundedSender<Event>);

impl BusSink for ChannelSink {
    fn deliver(&self, from: Option<SessionId>, payload: Bytes) {
        let _ = self.0.send(Event::Delivered(from, payload));
    }

    fn refuse(&self, why: SealError) {
        let _ = self.0.send(Event::Refused(why));
    }
}

const SECRET: &[u8] = b"the relays' shared secret, 32 bytes+";

fn security() -> NatsSecurity {
    NatsSecurity { user: "relay".into(), password: "a long random password".into(), tls: true }
}

fn relay_options(server: &NatsServer) -> NatsBusOptions {
    let s = security();
    NatsBusOptions {
        credentials: Some((s.user, s.password)),
        tls_ca: server.tls_ca().map(Into::into),
        ..NatsBusOptions::default()
    }
}

async fn relay(server: &NatsServer) -> NatsBus {
    let key = BusKey::derive(&TokenKey::from_secret(SECRET).unwrap());
    NatsBus::connect(&server.url(), key, relay_options(server)).await.expect("relay connects with its credentials")
}

/// Subscribes `spy` to `subject` and returns once nats-server has registered it (`flush` only
/// writes to the socket): the server handles a client's messages in order, so a probe the spy
/// gets back on a subject of its own proves every subscription it made before.
async fn subscribed(spy: &async_nats::Client, subject: &str) -> async_nats::Subscriber {
    let subscriber = spy.subscribe(subject.to_owned()).await.unwrap();
    let inbox = spy.new_inbox();
    let mut probe = spy.subscribe(inbox.clone()).await.unwrap();
    spy.publish(inbox, Bytes::new()).await.unwrap();
    timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut probe)).await.unwrap().unwrap();
    subscriber
}

/// A raw NATS client with the relays' NATS credentials but not their key.
async fn intruder(server: &NatsServer) -> async_nats::Client {
    let s = security();
    async_nats::ConnectOptions::new()
        .user_and_password(s.user, s.password)
        .add_root_certificates(server.tls_ca().unwrap().into())
        .require_tls(true)
        .connect(server.url())
        .await
        .unwrap()
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    timeout(Duration::from_secs(5), rx.recv()).await.expect("timed out").expect("sink closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_turns_away_clients_without_credentials_or_tls() {
    let server = NatsServer::start_secured(&security()).unwrap();
    let anonymous = async_nats::ConnectOptions::new()
        .add_root_certificates(server.tls_ca().unwrap().into())
        .require_tls(true)
        .connect(server.url())
        .await;
    assert!(anonymous.is_err(), "an anonymous client got through");
    let wrong = async_nats::ConnectOptions::new()
        .user_and_password("relay".into(), "guess".into())
        .add_root_certificates(server.tls_ca().unwrap().into())
        .require_tls(true)
        .connect(server.url())
        .await;
    assert!(wrong.is_err(), "a wrong password got through");
    // A relay that does not ask for TLS is refused too: the server requires it.
    let s = security();
    let plain = async_nats::ConnectOptions::new().user_and_password(s.user, s.password).connect(server.url()).await;
    assert!(plain.is_err(), "a client without TLS got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_refuse_and_count_what_only_reaches_nats() {
    let server = NatsServer::start_secured(&security()).unwrap();
    let (a, b) = (relay(&server).await, relay(&server).await);
    let room = RoomId::parse("standup-7").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = b.subscribe(&room, Arc::new(ChannelSink(tx))).await.unwrap();

    // Wait until the subscription is in place, with a genuine relay message.
    let genuine = loop {
        a.publish(&room, None, Bytes::from_static(b"relay hello")).await.unwrap();
        if let Ok(Some(event)) = timeout(Duration::from_millis(100), rx.recv()).await {
            break event;
        }
    };
    assert!(matches!(genuine, Event::Delivered(None, ref p) if &p[..] == b"relay hello"));
    while let Ok(Some(_)) = timeout(Duration::from_millis(200), rx.recv()).await {}

    // The intruder records a genuine relay message as it crosses the bus.
    let spy = intruder(&server).await;
    let mut recording = subscribed(&spy, "room.standup-7.0").await;
    a.publish(&room, None, Bytes::from_static(b"MODERATION: remove ada")).await.unwrap();
    let captured =
        timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut recording)).await.unwrap().unwrap();
    assert!(matches!(next(&mut rx).await, Event::Delivered(None, ref p) if &p[..] == b"MODERATION: remove ada"));

    // 1. A message it wrote itself, as the relay and as a session: no seal, refused.
    spy.publish("room.standup-7.0", Bytes::from_static(b"MODERATION: end meeting")).await.unwrap();
    spy.publish("room.standup-7.42", Bytes::from_static(b"forged media")).await.unwrap();
    // 2. The genuine message again: a replay.
    spy.publish("room.standup-7.0", captured.payload.clone()).await.unwrap();
    // 3. The genuine message moved to another sender subject: the seal covers the subject.
    spy.publish("room.standup-7.42", captured.payload.clone()).await.unwrap();
    // 4. A forged seal: the genuine one with its payload changed.
    let mut altered = captured.payload.to_vec();
    altered[0] ^= 0x20;
    spy.publish("room.standup-7.0", Bytes::from(altered)).await.unwrap();
    spy.flush().await.unwrap();

    let expected = [SealError::BadTag, SealError::BadTag, SealError::Replayed, SealError::BadTag, SealError::BadTag];
    for want in expected {
        match next(&mut rx).await {
            Event::Refused(why) => assert_eq!(why, want),
            Event::Delivered(from, payload) => panic!("delivered an intruder's message from {from:?}: {payload:?}"),
        }
    }

    // A presence packet travels on its member's subject; a copy of it is a replay all the same.
    let mut watching = subscribed(&spy, "room.standup-7.5").await;
    let presence = videocall_types::PacketWrapper {
        packet_type: videocall_types::PacketType::PRESENCE.into(),
        session_id: 5,
        ..Default::default()
    };
    let presence = Bytes::from(protobuf::Message::write_to_bytes(&presence).unwrap());
    a.publish(&room, SessionId::new(5), presence.clone()).await.unwrap();
    let captured =
        timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut watching)).await.unwrap().unwrap();
    assert!(
        matches!(next(&mut rx).await, Event::Delivered(from, ref p) if from == SessionId::new(5) && *p == presence)
    );
    spy.publish("room.standup-7.5", captured.payload).await.unwrap();
    spy.flush().await.unwrap();
    assert!(matches!(next(&mut rx).await, Event::Refused(SealError::Replayed)));

    // The relays carry on.
    a.publish(&room, SessionId::new(9), Bytes::from_static(b"still here")).await.unwrap();
    assert!(
        matches!(next(&mut rx).await, Event::Delivered(from, ref p) if from == SessionId::new(9) && &p[..] == b"still here")
    );
}
