//! Whatever reaches NATS, as an attacker: two relays on a real `nats-server` that requires a
//! user, a password and TLS; an intruder holding that NATS password (but not `TOKEN_SECRET`)
//! tries to end the meeting, invent a member and inject media. Nobody sees any of it, and the
//! relays count what they refused.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use protobuf::Message as _;
use testkit::{NatsSecurity, NatsServer};
use videocall_relay::Moderation;
use videocall_types::{PacketType, PacketWrapper, Participant, PresencePacket, presence_packet::Event};

fn security() -> NatsSecurity {
    NatsSecurity { user: "relay".into(), password: "correct horse battery staple".into(), tls: true }
}

fn config_on(nats: &NatsServer) -> Config {
    let mut config = Config::for_tests();
    let s = security();
    config.relay.nats_url = Some(nats.url());
    config.relay.nats_user = Some(s.user);
    config.relay.nats_password = Some(s.password);
    config.relay.nats_tls_ca = nats.tls_ca().map(Into::into);
    config
}

fn invented_member() -> Bytes {
    let ghost = Participant {
        session_id: 4242,
        user_id: "ghost@relay.example".into(),
        display_name: "Ghost".into(),
        ..Default::default()
    };
    let presence = PresencePacket { origin: 77, event: Some(Event::Joined(ghost)), ..Default::default() };
    let wrapper = PacketWrapper {
        packet_type: PacketType::PRESENCE.into(),
        email: "ghost@relay.example".into(),
        session_id: 4242,
        data: presence.write_to_bytes().unwrap(),
        ..Default::default()
    };
    wrapper.write_to_bytes().unwrap().into()
}

async fn dropped(server: &RunningServer, reason: &str) -> u64 {
    let text = metrics(server).await;
    let needle = format!("videocall_packets_dropped_total{{reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&needle)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intruder_on_nats_can_neither_end_the_meeting_nor_invent_members_nor_inject_media() {
    let nats = NatsServer::start_secured(&security()).unwrap();
    let relays = [start(config_on(&nats)).await, start(config_on(&nats)).await];
    let urls: Vec<String> = relays.iter().map(http_url).collect();
    let mut a = Client::join(&urls[0], &guest(&urls[0], "standup", "Ada").await).await;
    let mut b = Client::join(&urls[1], &guest(&urls[1], "standup", "Bob").await).await;
    // The relays' own sealed messages cross the bus.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "Bob's media never reached Ada");
        b.send(&media(b"hello")).await.unwrap();
        if let Ok(Received::Packet(p)) = a.recv_within(Duration::from_millis(200)).await
            && p.data == b"hello"
        {
            break;
        }
    }

    let s = security();
    let intruder = async_nats::ConnectOptions::new()
        .user_and_password(s.user, s.password)
        .add_root_certificates(nats.tls_ca().unwrap().into())
        .require_tls(true)
        .connect(nats.url())
        .await
        .unwrap();
    intruder.publish("room.standup.0", Moderation::End.to_packet()).await.unwrap();
    intruder.publish("room.standup.0", invented_member()).await.unwrap();
    intruder.publish("room.standup.4242", media(b"injected").write_to_bytes().unwrap().into()).await.unwrap();
    intruder.flush().await.unwrap();

    // Each relay refuses all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    for relay in &relays {
        while dropped(relay, "bus_unauthenticated").await < 3 {
            assert!(Instant::now() < deadline, "{} did not count the intruder's messages", relay.addr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The meeting goes on, and neither participant heard of a ghost or its media.
    b.send(&media(b"still here")).await.unwrap();
    a.send(&media(b"me too")).await.unwrap();
    for (client, expected) in [(&mut a, &b"still here"[..]), (&mut b, &b"me too"[..])] {
        loop {
            match client.recv_within(Duration::from_secs(5)).await.unwrap() {
                Received::Packet(p) if p.data == b"hello" => {} // Bob's retries from the start
                Received::Packet(p) if p.packet_type.enum_value_or_default() == PacketType::MEDIA => {
                    assert_eq!(p.data, expected, "{} got media it should not have", client.user);
                    break;
                }
                Received::Joined(session, user) | Received::Left(session, user) => {
                    assert_ne!(session, 4242, "{} heard of the invented member {user}", client.user);
                }
                Received::Members(list) => assert!(!list.contains(&4242), "{} got the invented member", client.user),
                Received::Packet(_) => {}
            }
        }
    }
    for relay in relays {
        relay.stop().await;
    }
}
