//! Bad input over WebTransport: each offender gets its documented close code, while the others
//! in the room keep receiving.

mod common;

use std::time::Duration;

use common::webtransport::{WebTransportServer, WtClient, lobby, start_with_webtransport};
use common::*;
use protobuf::Message as _;
use videocall_types::limits::MAX_PACKET_BYTES;
use videocall_types::{PacketType, framing};

/// A sends to B over WebSocket; after each offence B must still get A's next packet.
async fn still_flowing(a: &mut Client, b: &mut Client, n: u32) {
    let text = format!("still flowing #{n}");
    a.send(&media(text.as_bytes())).await.unwrap();
    loop {
        if let Received::Packet(p) = b.recv_within(Duration::from_secs(10)).await.unwrap() {
            if p.data == text.as_bytes() {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_offenders_are_closed_and_the_room_carries_on() {
    let config = Config::for_tests();
    let WebTransportServer { server, http, base, hash } = start_with_webtransport(config).await;
    let mut a = Client::join(&http, &guest(&http, "busy", "A").await).await;
    let mut b = Client::join(&http, &guest(&http, "busy", "B").await).await;

    let mut unknown_type = media(b"x").write_to_bytes().unwrap();
    unknown_type[1] = 77;
    let mut presence = media(b"x");
    presence.packet_type = PacketType::PRESENCE.into();
    let mut truncated = framing::encode(&media(b"cut short").write_to_bytes().unwrap());
    truncated.truncate(truncated.len() - 3);
    // Streams as sent, framing included.
    let cases: Vec<(&str, Vec<u8>, u32, &str)> = vec![
        ("malformed protobuf", framing::encode(&[0xff, 0xff, 0xff]), 1007, "malformed PacketWrapper"),
        ("unknown packet type", framing::encode(&unknown_type), 1008, "unknown packet type 77"),
        (
            "presence from a client",
            framing::encode(&presence.write_to_bytes().unwrap()),
            1008,
            "clients may not send PRESENCE",
        ),
        ("oversized packet", framing::encode(&vec![0; MAX_PACKET_BYTES + 1]), 1009, "exceeds the limit"),
        ("oversized length, no body", framing::prefix(u32::MAX as usize).to_vec(), 1009, "exceeds the limit"),
        ("stream ending inside a packet", truncated, 1007, "stream ended inside a packet"),
    ];
    for (n, (what, bytes, code, reason)) in cases.into_iter().enumerate() {
        let offender = WtClient::connect(&lobby(&base, &guest(&http, "busy", "Mallory").await), hash).await.unwrap();
        // The stream may be cut short by the close, so the write's result does not matter.
        let _ = offender.send_raw(&bytes).await;
        let (got_code, got_reason) = offender.closed().await;
        assert_eq!(got_code, code, "{what}: {got_reason}");
        assert!(got_reason.contains(reason), "{what}: {got_reason:?} lacks {reason:?}");
        still_flowing(&mut a, &mut b, n as u32).await;
    }

    // A flood of datagrams: the excess is dropped and counted, the sender stays, the room too.
    let flooder = WtClient::connect(&lobby(&base, &guest(&http, "busy", "Flood").await), hash).await.unwrap();
    let heartbeat = media(b"heartbeat").write_to_bytes().unwrap();
    for _ in 0..2000 {
        let _ = flooder.connection.send_datagram(heartbeat.clone());
    }
    still_flowing(&mut a, &mut b, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = common::metrics(&server).await;
    assert!(metrics.contains("videocall_packets_dropped_total{reason=\"datagram_rate\"}"), "{metrics}");
    assert!(flooder.connection.quic_connection().close_reason().is_none(), "a datagram flood is throttled, not fatal");

    // Many large packets begun at once, none finished: closed when they pass the session's
    // budget for unfinished packets, long before the finish timeout.
    let hoarder = WtClient::connect(&lobby(&base, &guest(&http, "busy", "Hoarder").await), hash).await.unwrap();
    let mut partial = framing::prefix(MAX_PACKET_BYTES).to_vec();
    partial.resize(MAX_PACKET_BYTES, 0);
    let mut held = Vec::new();
    for _ in 0..5 {
        // Once the relay closes the session, no more streams open.
        let Ok(opening) = hoarder.connection.open_uni().await else { break };
        let Ok(mut stream) = opening.await else { break };
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&partial)).await;
        held.push(stream);
    }
    let (code, reason) = hoarder.closed().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("bytes of unfinished packets"), "{reason}");
    still_flowing(&mut a, &mut b, 150).await;
    drop(held);

    // A packet begun and never completed closes its session after the finish timeout; a
    // long-lived stream idle between whole packets does not.
    let staller = WtClient::connect(&lobby(&base, &guest(&http, "busy", "Staller").await), hash).await.unwrap();
    let mut idle = staller.connection.open_uni().await.unwrap().await.unwrap();
    idle.write_all(&framing::encode(&media(b"whole").write_to_bytes().unwrap())).await.unwrap();
    let mut stream = staller.connection.open_uni().await.unwrap().await.unwrap();
    let begun = framing::encode(&media(b"never finished").write_to_bytes().unwrap());
    stream.write_all(&begun[..begun.len() / 2]).await.unwrap();
    still_flowing(&mut a, &mut b, 200).await;
    let (code, reason) = staller.closed().await;
    assert_eq!((code, reason.as_str()), (1008, "packet not completed within 10 s"));
    still_flowing(&mut a, &mut b, 201).await;

    for reason in [
        "malformed\"} 2",
        "unknown_type\"} 1",
        "not_allowed\"} 1",
        "oversized\"} 2",
        "stream_not_finished\"} 1",
        "too_much_pending\"} 1",
    ] {
        let metrics = common::metrics(&server).await;
        assert!(
            metrics.contains(&format!("videocall_packets_rejected_total{{reason=\"{reason}")),
            "{reason} in {metrics}"
        );
    }
    server.stop().await;
}
