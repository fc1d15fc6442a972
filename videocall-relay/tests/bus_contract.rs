//! One contract, two buses: every test runs against `LocalBus` and against `NatsBus` on a real
//! `nats-server` spawned on a free port. "Two relays" are two handles on the bus: the same
//! `LocalBus` (one process), or two NATS connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use testkit::NatsServer;
use tokio::sync::mpsc;
use tokio::time::timeout;
use videocall_relay::bus::{BusKey, BusSink, NatsBusOptions};
use videocall_relay::{LocalBus, NatsBus, RoomBus, SessionId, TokenKey};
use videocall_types::RoomId;

type Received = mpsc::UnboundedReceiver<(Option<SessionId>, Bytes)>;

struct ChannelSink(mpsc::UnboundedSender<(Option<SessionId>, Bytes)>);

impl BusSink for ChannelSink {
    fn deliver(&self, from: Option<SessionId>, payload: Bytes) {
        let _ = self.0.send((from, payload));
    }

    fn refuse(&self, why: videocall_relay::bus::SealError) {
        // Both ends here are relays with the same key: nothing may be refused. The panic ends
        // the subscription, so the test fails waiting for what should have arrived.
        panic!("a relay's own message was refused: {why}");
    }
}

fn sink() -> (Arc<dyn BusSink>, Received) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(ChannelSink(tx)), rx)
}

fn room(name: &str) -> RoomId {
    RoomId::parse(name).unwrap()
}

fn sid(n: u64) -> Option<SessionId> {
    SessionId::new(n)
}

const PROBE: &[u8] = b"probe";

/// Publishes probes from `publisher` until `rx` sees one, then drains the probes: after this
/// the subscription is known to be in place at the server.
async fn await_subscription(publisher: &dyn RoomBus, room: &RoomId, rx: &mut Received) {
    for _ in 0..100 {
        publisher.publish(room, None, Bytes::from_static(PROBE)).await.unwrap();
        if let Ok(Some(_)) = timeout(Duration::from_millis(50), rx.recv()).await {
            while let Ok(Some(_)) = timeout(Duration::from_millis(100), rx.recv()).await {}
            return;
        }
    }
    panic!("subscription never became effective");
}

async fn next(rx: &mut Received) -> (Option<SessionId>, Bytes) {
    timeout(Duration::from_secs(5), rx.recv()).await.expect("timed out").expect("sink closed")
}

async fn nothing_more(rx: &mut Received) {
    if let Ok(Some(m)) = timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected delivery {m:?}");
    }
}

async fn delivers_bytes_and_sender_exactly(a: Arc<dyn RoomBus>, b: Arc<dyn RoomBus>) {
    let r = room("bytes");
    let (s, mut rx) = sink();
    let _sub = b.subscribe(&r, s).await.unwrap();
    await_subscription(&*a, &r, &mut rx).await;
    let big: Bytes = (0..400_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    a.publish(&r, sid(7), big.clone()).await.unwrap();
    a.publish(&r, None, Bytes::from_static(b"relay")).await.unwrap();
    assert_eq!(next(&mut rx).await, (sid(7), big));
    assert_eq!(next(&mut rx).await, (None, Bytes::from_static(b"relay")));
    nothing_more(&mut rx).await;
}

async fn each_subscription_gets_each_packet_once_and_rooms_are_isolated(a: Arc<dyn RoomBus>, b: Arc<dyn RoomBus>) {
    let (r, other) = (room("once"), room("once-other"));
    let (sa, mut rxa) = sink();
    let (sb, mut rxb) = sink();
    let (so, mut rxo) = sink();
    let _subs = (
        a.subscribe(&r, sa).await.unwrap(),
        b.subscribe(&r, sb).await.unwrap(),
        b.subscribe(&other, so).await.unwrap(),
    );
    await_subscription(&*a, &r, &mut rxb).await;
    while let Ok(Some(_)) = timeout(Duration::from_millis(100), rxa.recv()).await {}
    for i in 0..50u8 {
        b.publish(&r, sid(1), Bytes::from(vec![i])).await.unwrap();
    }
    for rx in [&mut rxa, &mut rxb] {
        for i in 0..50u8 {
            assert_eq!(next(rx).await, (sid(1), Bytes::from(vec![i])));
        }
        nothing_more(rx).await;
    }
    nothing_more(&mut rxo).await;
}

async fn keeps_per_sender_order(a: Arc<dyn RoomBus>, b: Arc<dyn RoomBus>) {
    let r = room("order");
    let (s, mut rx) = sink();
    let _sub = b.subscribe(&r, s).await.unwrap();
    await_subscription(&*a, &r, &mut rx).await;
    let senders = [1u64, 2, 3];
    let publishers: Vec<_> = senders
        .iter()
        .map(|&sender| {
            let a = a.clone();
            let r = r.clone();
            tokio::spawn(async move {
                for seq in 0..2000u32 {
                    a.publish(&r, sid(sender), Bytes::copy_from_slice(&seq.to_be_bytes())).await.unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let mut expected = [0u32; 3];
    for _ in 0..6000 {
        let (from, payload) = next(&mut rx).await;
        let index = senders.iter().position(|s| sid(*s) == from).unwrap();
        let seq = u32::from_be_bytes(payload[..].try_into().unwrap());
        assert_eq!(seq, expected[index], "sender {from:?} out of order");
        expected[index] += 1;
    }
    nothing_more(&mut rx).await;
}

async fn unsubscribes_when_the_guard_drops(a: Arc<dyn RoomBus>, b: Arc<dyn RoomBus>) {
    let r = room("drop");
    let (s, mut rx) = sink();
    let sub = b.subscribe(&r, s).await.unwrap();
    await_subscription(&*a, &r, &mut rx).await;
    drop(sub);
    // A second subscriber proves the publish after the drop really happened.
    let (s2, mut rx2) = sink();
    let _sub2 = b.subscribe(&r, s2).await.unwrap();
    await_subscription(&*a, &r, &mut rx2).await;
    a.publish(&r, sid(5), Bytes::from_static(b"after")).await.unwrap();
    assert_eq!(next(&mut rx2).await, (sid(5), Bytes::from_static(b"after")));
    while let Ok(Some((from, payload))) = timeout(Duration::from_millis(300), rx.recv()).await {
        assert_eq!((from, &payload[..]), (None, PROBE), "delivered after unsubscribe");
    }
    assert!(a.is_ready() && b.is_ready());
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod local {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let bus: Arc<dyn RoomBus> = Arc::new(LocalBus::new());
                    super::$test(bus.clone(), bus).await;
                }
            )*
        }
        mod nats {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = NatsServer::start().unwrap();
                    let key = BusKey::derive(&TokenKey::from_secret(b"the relays' shared secret, 32 bytes+").unwrap());
                    let a = NatsBus::connect(&server.url(), key.clone(), NatsBusOptions::default()).await.unwrap();
                    let b = NatsBus::connect(&server.url(), key, NatsBusOptions::default()).await.unwrap();
                    super::$test(Arc::new(a), Arc::new(b)).await;
                }
            )*
        }
    };
}

contract!(
    delivers_bytes_and_sender_exactly,
    each_subscription_gets_each_packet_once_and_rooms_are_isolated,
    keeps_per_sender_order,
    unsubscribes_when_the_guard_drops,
);

/// NATS only: a relay's own sessions are served in-process, so they hear each other (once)
/// while NATS is away, and the publish says the other relays missed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relays_own_sessions_hear_each_other_without_nats() {
    let mut server = NatsServer::start().unwrap();
    let key = BusKey::derive(&TokenKey::from_secret(b"the relays' shared secret, 32 bytes+").unwrap());
    let bus = NatsBus::connect(&server.url(), key, NatsBusOptions::default()).await.unwrap();
    let r = room("own");
    let (s, mut rx) = sink();
    let _sub = bus.subscribe(&r, s).await.unwrap();
    bus.publish(&r, sid(1), Bytes::from_static(b"with nats")).await.unwrap();
    assert_eq!(next(&mut rx).await, (sid(1), Bytes::from_static(b"with nats")));
    nothing_more(&mut rx).await;

    server.stop();
    for _ in 0..100 {
        if !bus.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!bus.is_ready(), "NATS is gone");
    let published = bus.publish(&r, sid(2), Bytes::from_static(b"without nats")).await;
    assert!(matches!(published, Err(videocall_relay::bus::BusError::NotConnected)), "{published:?}");
    assert_eq!(next(&mut rx).await, (sid(2), Bytes::from_static(b"without nats")));
    nothing_more(&mut rx).await;
}

/// `publish_here` reaches this relay's own subscription and nothing on NATS: another relay
/// subscribed to the room never gets it, while a `publish` right after reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_here_stays_off_nats() {
    let server = NatsServer::start().unwrap();
    let key = BusKey::derive(&TokenKey::from_secret(b"the relays' shared secret, 32 bytes+").unwrap());
    let a = NatsBus::connect(&server.url(), key.clone(), NatsBusOptions::default()).await.unwrap();
    let b = NatsBus::connect(&server.url(), key, NatsBusOptions::default()).await.unwrap();
    let r = room("here");
    let (sa, mut on_a) = sink();
    let (sb, mut on_b) = sink();
    let _sub_a = a.subscribe(&r, sa).await.unwrap();
    let _sub_b = b.subscribe(&r, sb).await.unwrap();
    await_subscription(&a, &r, &mut on_b).await;
    while tokio::time::timeout(Duration::from_millis(100), on_a.recv()).await.is_ok() {}
    a.publish_here(&r, sid(1), Bytes::from_static(b"here only")).await.unwrap();
    a.publish(&r, sid(1), Bytes::from_static(b"everywhere")).await.unwrap();
    assert_eq!(next(&mut on_a).await, (sid(1), Bytes::from_static(b"here only")));
    assert_eq!(next(&mut on_a).await, (sid(1), Bytes::from_static(b"everywhere")));
    assert_eq!(next(&mut on_b).await, (sid(1), Bytes::from_static(b"everywhere")), "the other relay: only the publish");
    nothing_more(&mut on_a).await;
    nothing_more(&mut on_b).await;
}
