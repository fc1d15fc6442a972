//! WebTransport stream modes: what `?streams=` asks of the relay, and a client's long-lived
//! stream in; each checked for order and for the streams actually used.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::webtransport::{WebTransportServer, WtClient, lobby, start_with_webtransport};
use common::*;
use protobuf::Message as _;
use videocall_types::framing;
use videocall_types::{PacketType, PacketWrapper};

const PER_SENDER: usize = 150;

/// Two WebSocket senders each send `PER_SENDER` numbered packets; returns, per sender, the
/// numbers in the order received and the streams they came on.
async fn run(mode: &str) -> (BTreeMap<String, Vec<usize>>, BTreeMap<String, BTreeSet<usize>>, BTreeSet<usize>) {
    let WebTransportServer { server, http, base, hash } = start_with_webtransport(Config::for_tests()).await;
    let room = format!("streams-{mode}");
    let watcher = guest(&http, &room, "Watcher").await;
    let wt = WtClient::connect(&format!("{}&streams={mode}", lobby(&base, &watcher)), hash).await.unwrap();
    let mut senders = Vec::new();
    for name in ["A", "B"] {
        let g = guest(&http, &room, name).await;
        senders.push((Client::join(&http, &g).await, g.user));
    }
    for i in 0..PER_SENDER {
        for (client, _) in &mut senders {
            client.send(&media(format!("{i}").as_bytes())).await.unwrap();
        }
    }
    let (mut order, mut streams, mut all_streams) = (BTreeMap::new(), BTreeMap::new(), BTreeSet::new());
    let mut media_count = 0;
    while media_count < 2 * PER_SENDER {
        let (stream, packet) = wt.recv_raw_within(Duration::from_secs(10)).await.expect("all packets within 10 s");
        let packet = PacketWrapper::parse_from_bytes(&packet).unwrap();
        all_streams.insert(stream);
        if packet.packet_type.enum_value() != Ok(PacketType::MEDIA) {
            continue;
        }
        media_count += 1;
        let n: usize = String::from_utf8(packet.data).unwrap().parse().unwrap();
        order.entry(packet.email.clone()).or_insert_with(Vec::new).push(n);
        streams.entry(packet.email).or_insert_with(BTreeSet::new).insert(stream);
    }
    server.stop().await;
    (order, streams, all_streams)
}

fn in_order(order: &BTreeMap<String, Vec<usize>>) -> bool {
    order.len() == 2 && order.values().all(|v| *v == (0..PER_SENDER).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_puts_everything_on_one_ordered_stream() {
    let (order, _, all_streams) = run("single").await;
    assert!(in_order(&order), "{order:?}");
    assert_eq!(all_streams.len(), 1, "presence and both senders on one stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_sender_gives_each_sender_its_own_ordered_stream() {
    let (order, streams, _) = run("per-sender").await;
    assert!(in_order(&order), "{order:?}");
    let used: Vec<_> = streams.values().collect();
    assert!(used.iter().all(|s| s.len() == 1), "one stream per sender: {streams:?}");
    assert_ne!(used[0], used[1], "senders on different streams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_packet_opens_a_stream_per_packet() {
    let (order, streams, _) = run("per-packet").await;
    assert!(order.values().all(|v| v.iter().collect::<BTreeSet<_>>().len() == PER_SENDER), "every packet once");
    assert!(streams.values().all(|s| s.len() == PER_SENDER), "a stream each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_long_lived_stream_arrives_in_order_and_unknown_modes_are_refused() {
    let WebTransportServer { server, http, base, hash } = start_with_webtransport(Config::for_tests()).await;
    let receiver = guest(&http, "long", "Receiver").await;
    let mut ws = Client::join(&http, &receiver).await;
    let wt = WtClient::connect(&lobby(&base, &guest(&http, "long", "Sender").await), hash).await.unwrap();
    let mut stream = wt.connection.open_uni().await.unwrap().await.unwrap();
    for i in 0..300 {
        stream.write_all(&framing::encode(&media(format!("{i}").as_bytes()).write_to_bytes().unwrap())).await.unwrap();
    }
    for i in 0..300 {
        assert_eq!(next_packet(&mut ws).await.data, format!("{i}").as_bytes());
    }

    let refused = WtClient::connect(&format!("{}&streams=sideways", lobby(&base, &receiver)), hash).await;
    assert!(refused.is_err(), "an unknown streams mode is refused");
    let metrics = common::metrics(&server).await;
    assert!(metrics.contains("reason=\"bad_path\"} 1"), "{metrics}");
    server.stop().await;
}
