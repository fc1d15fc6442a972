//! Two relays on different nodes of a real 3-node NATS cluster, clients spread over both.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use protobuf::Message as _;
use testkit::{NatsCluster, NatsServer};
use tokio_tungstenite::tungstenite::Message;
use videocall_types::PacketType;

const PACKETS_PER_CLIENT: u32 = 300;

fn config_on(nats: &NatsServer) -> Config {
    let mut config = Config::for_tests();
    config.relay.nats_url = Some(nats.url());
    config
}

/// Reads until the client knows every other session in the room.
async fn await_presence(client: &mut Client, others: usize) -> HashSet<u64> {
    let mut known: HashSet<u64> = client.members.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while known.len() < others {
        assert!(Instant::now() < deadline, "{} knows only {} of {others} others", client.user, known.len());
        match client.recv_within(Duration::from_secs(20)).await.unwrap() {
            Received::Members(list) => known.extend(list),
            Received::Joined(s, _) => {
                known.insert(s);
            }
            Received::Left(s, _) => {
                known.remove(&s);
            }
            Received::Packet(_) => {}
        }
    }
    known
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_every_other_clients_packets_once_in_order_across_relays() {
    let cluster = NatsCluster::start(3).unwrap();
    let relays = [start(config_on(&cluster.nodes[0])).await, start(config_on(&cluster.nodes[1])).await];
    let urls: Vec<String> = relays.iter().map(http_url).collect();

    let mut clients = Vec::new();
    for i in 0..6 {
        let http = &urls[i % 2];
        clients.push(Client::join(http, &guest(http, "cluster", &format!("P{i}")).await).await);
    }
    let users: Vec<String> = clients.iter().map(|c| c.user.clone()).collect();
    let mut sessions_seen = Vec::new();
    for client in &mut clients {
        sessions_seen.push(await_presence(client, 5).await);
    }

    // Everyone sends and receives at once.
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                let user = client.user.clone();
                let (mut sink, mut stream) = client.ws.split();
                let sender = tokio::spawn(async move {
                    for seq in 0..PACKETS_PER_CLIENT {
                        let packet = media(&seq.to_be_bytes()).write_to_bytes().unwrap();
                        sink.send(Message::Binary(packet.into())).await.unwrap();
                        if seq % 20 == 0 {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    sink
                });
                let mut by_sender: HashMap<String, Vec<u32>> = HashMap::new();
                let expected = (PACKETS_PER_CLIENT * 5) as usize;
                let mut received = 0;
                while received < expected {
                    let message = tokio::time::timeout(Duration::from_secs(20), stream.next()).await;
                    let Ok(Some(Ok(Message::Binary(bytes)))) = message else {
                        if matches!(message, Ok(Some(Ok(_)))) {
                            continue;
                        }
                        panic!("{user}: stream ended after {received} of {expected}: {message:?}");
                    };
                    if let Received::Packet(p) = decode(&bytes) {
                        if p.packet_type.enum_value() == Ok(PacketType::MEDIA) {
                            by_sender
                                .entry(p.email.clone())
                                .or_default()
                                .push(u32::from_be_bytes(p.data[..4].try_into().unwrap()));
                            received += 1;
                        }
                    }
                }
                // Anything extra (a duplicate) would arrive now.
                while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await
                {
                    if let Message::Binary(bytes) = message {
                        if let Received::Packet(p) = decode(&bytes) {
                            panic!("{user}: extra packet from {}", p.email);
                        }
                    }
                }
                let sink = sender.await.unwrap();
                (user, by_sender, sink.reunite(stream).unwrap())
            })
        })
        .collect();

    let mut streams = Vec::new();
    for task in tasks {
        let (user, by_sender, ws) = task.await.unwrap();
        assert!(!by_sender.contains_key(&user), "{user} received its own packets");
        assert_eq!(by_sender.len(), 5, "{user} heard from {} senders", by_sender.len());
        for (sender, seqs) in by_sender {
            assert!(users.contains(&sender));
            assert_eq!(
                seqs,
                (0..PACKETS_PER_CLIENT).collect::<Vec<_>>(),
                "{user} from {sender}: lost, duplicated or reordered"
            );
        }
        streams.push(ws);
    }

    // A client on the second relay leaves: everyone on both relays hears it.
    let mut leaver = streams.remove(1);
    leaver.close(None).await.unwrap();
    for ws in &mut streams {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "leave not seen");
            if let Ok(Some(Ok(Message::Binary(bytes)))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await
            {
                if let Received::Left(_, reason) = decode(&bytes) {
                    assert_eq!(reason, "left");
                    break;
                }
            }
        }
    }
    assert!(sessions_seen.iter().all(|s| s.len() == 5));
    for relay in relays {
        relay.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_survives_a_nats_restart_and_readyz_reports_the_outage() {
    let mut nats = NatsServer::start().unwrap();
    let server = start(config_on(&nats)).await;
    let http = http_url(&server);
    let ready = |http: String| async move { reqwest::get(format!("{http}/readyz")).await.unwrap().status().as_u16() };
    assert_eq!(ready(http.clone()).await, 200);

    let mut a = Client::join(&http, &guest(&http, "restart", "A").await).await;
    let mut b = Client::join(&http, &guest(&http, "restart", "B").await).await;
    a.recv().await.unwrap();
    b.send(&media(b"before")).await.unwrap();
    assert_eq!(next_packet(&mut a).await.data, b"before");

    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(http.clone()).await != 503 {
        assert!(Instant::now() < deadline, "readyz never reported the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Packets sent during the outage are dropped and counted, and nobody is disconnected.
    b.send(&media(b"during")).await.unwrap();

    nats.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready(http.clone()).await != 200 {
        assert!(Instant::now() < deadline, "readyz never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The subscription comes back with the connection: traffic resumes.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "traffic did not resume");
        b.send(&media(b"after")).await.unwrap();
        match a.recv_within(Duration::from_millis(200)).await {
            Ok(Received::Packet(p)) if p.data == b"after" => break,
            _ => {}
        }
    }
    let metrics = common::metrics(&server).await;
    assert!(metrics.contains("videocall_packets_dropped_total{reason=\"bus_unavailable\"}"), "{metrics}");
    server.stop().await;
}

/// An audio packet from a client, `seq` in its data and its route's frame counter.
fn audio(seq: u32) -> Vec<u8> {
    let mut packet = media(&seq.to_be_bytes());
    videocall_types::Route::audio(u64::from(seq)).apply(&mut packet);
    packet.write_to_bytes().unwrap()
}

/// The next `n` audio packets `client` receives (anything else skipped): their sequence numbers.
async fn audio_received(client: &mut Client, n: usize) -> Vec<u32> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let p = tokio::time::timeout(Duration::from_secs(10), next_packet(client)).await.expect("audio in time");
        if p.packet_type.enum_value() == Ok(PacketType::MEDIA) {
            seqs.push(u32::from_be_bytes(p.data[..4].try_into().unwrap()));
        }
    }
    seqs
}

/// `videocall_media_kept_here_total` of `relay`.
async fn kept_here(relay: &RunningServer) -> u64 {
    let metrics = common::metrics(relay).await;
    let line = metrics.lines().find(|l| l.starts_with("videocall_media_kept_here_total ")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A room's media goes on NATS only while another relay serves the room: with the whole room
/// on one relay, its sessions hear each other in-process and nats-server sees none of it; once
/// someone joins on a second relay, the same sender's media reaches them over NATS, in order,
/// and the first relay's own sessions still get it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_on_nats_only_while_another_relay_serves_the_room() {
    let nats = NatsServer::start().unwrap();
    let relays = [start(config_on(&nats)).await, start(config_on(&nats)).await];
    let urls: Vec<String> = relays.iter().map(http_url).collect();
    let spy = async_nats::connect(nats.url()).await.unwrap();
    let mut on_nats = spy.subscribe("room.kept.*").await.unwrap();
    spy.flush().await.unwrap();

    let mut ada = Client::join(&urls[0], &guest(&urls[0], "kept", "Ada").await).await;
    let mut bob = Client::join(&urls[0], &guest(&urls[0], "kept", "Bob").await).await;
    await_presence(&mut ada, 1).await;
    await_presence(&mut bob, 1).await;
    // What the room's joining put on NATS (presence) is not what this test counts.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), on_nats.next()).await {}

    for seq in 0..50 {
        ada.ws.send(Message::Binary(audio(seq).into())).await.unwrap();
    }
    assert_eq!(audio_received(&mut bob, 50).await, (0..50).collect::<Vec<_>>());
    assert_eq!(kept_here(&relays[0]).await, 50, "every packet stayed on the relay");
    let mut published = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), on_nats.next()).await {
        published += 1;
    }
    assert!(published < 5, "{published} messages on NATS while the room was on one relay (presence refreshes at most)");

    // Cyd joins on the second relay: the first learns it (Ada hears of Cyd from it), and
    // Ada's media goes on NATS from then on.
    let mut cyd = Client::join(&urls[1], &guest(&urls[1], "kept", "Cyd").await).await;
    await_presence(&mut cyd, 2).await;
    let joined = async { while !matches!(ada.recv().await, Ok(Received::Joined(..))) {} };
    tokio::time::timeout(Duration::from_secs(20), joined).await.expect("Ada hears that Cyd joined");
    for seq in 50..100 {
        ada.ws.send(Message::Binary(audio(seq).into())).await.unwrap();
    }
    assert_eq!(audio_received(&mut cyd, 50).await, (50..100).collect::<Vec<_>>(), "over NATS, in order");
    assert_eq!(audio_received(&mut bob, 50).await, (50..100).collect::<Vec<_>>(), "in-process, once");
    assert_eq!(kept_here(&relays[0]).await, 50, "nothing more kept back");
    let mut published = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), on_nats.next()).await {
        published += 1;
    }
    assert!(published >= 50, "only {published} messages on NATS with the room on two relays");
    for relay in relays {
        relay.stop().await;
    }
}
