//! The web client end to end: people join a room through the UI in headless Chromium (fake
//! camera and microphone, a profile each) and see and hear each other, encrypted end to end.

mod common;

use std::time::Duration;

use common::web_client::{Participant, start_with_client};

/// At least this many remote video frames decoded, and remote audio played, per peer.
const FRAMES: u64 = 60;

fn receiving(peer: &serde_json::Value) -> bool {
    peer["frames_decoded"].as_u64().unwrap_or(0) >= FRAMES
        && peer["audio_frames"].as_u64().unwrap_or(0) > 0
        && peer["audio_played_ms"].as_f64().unwrap_or(0.0) > 0.0
}

async fn two_people_see_and_hear_each_other(transport: &str, expected: &str) {
    let server = start_with_client().await;
    let room = format!("two-{transport}");
    let ada = Participant::join(&server.http, &room, "Ada", transport).await;
    let bob = Participant::join(&server.http, &room, "Bob", transport).await;
    for p in [&ada, &bob] {
        let stats = p.wait_for_peers(1, Duration::from_secs(15), receiving).await;
        assert_eq!(stats["transport"], expected, "{}", p.name);
        assert_eq!(stats["dropped"], 0, "{}: {stats:#}", p.name);
        // The peer's fingerprint as shown is the one its own page reports.
        let other = if p.name == "Ada" { &bob } else { &ada };
        let theirs = other.stats().await["fingerprint"].clone();
        assert_eq!(stats["peers"][0]["fingerprint"], theirs, "{}", p.name);
    }
    // The diagnostics panel shows a nonzero frame rate.
    let fps = ada
        .browser
        .wait_for(
            "const r = document.querySelector('.peer-stats'); return r ? parseFloat(r.dataset.fps) : 0",
            Duration::from_secs(5),
            |v| v.as_f64().unwrap_or(0.0) > 0.0,
        )
        .await
        .unwrap();
    println!("{transport}: diagnostics fps {fps}");
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_over_webtransport() {
    two_people_see_and_hear_each_other("auto", "WebTransport").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_over_websocket() {
    two_people_see_and_hear_each_other("websocket", "WebSocket").await;
}
