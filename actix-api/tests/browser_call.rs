//! The web client end to end: people join a room through the UI in headless Chromium (fake
//! camera and microphone, a profile each) and see and hear each other, encrypted end to end.

mod common;

use std::time::Duration;

use common::web_client::{Participant, click, start_with_client};
use serde_json::Value;

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
    if expected == "WebTransport" {
        save_screenshot(&ada, "two-people.png").await;
    }
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

/// Saves what `p` sees into `$CARGO_TARGET_DIR/screenshots/` (the README shows a copy).
async fn save_screenshot(p: &Participant, name: &str) {
    let png = p.browser.screenshot().await.unwrap();
    let dir = common::web_client::web_root().join("../screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
    println!("screenshot: {}", dir.join(name).display());
}

fn peer<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["peers"].as_array().and_then(|l| l.iter().find(|p| p["name"] == name)).unwrap_or(&Value::Null)
}

fn frames(stats: &Value, name: &str) -> u64 {
    peer(stats, name)["frames_decoded"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_one_leaves_and_the_others_move_to_new_keys() {
    let server = start_with_client().await;
    let ada = Participant::join(&server.http, "three", "Ada", "auto").await;
    let bob = Participant::join(&server.http, "three", "Bob", "auto").await;
    let cyd = Participant::join(&server.http, "three", "Cyd", "auto").await;
    let enough = |p: &Value| p["frames_decoded"].as_u64().unwrap_or(0) >= 20;
    for p in [&ada, &bob, &cyd] {
        p.wait_for_peers(2, Duration::from_secs(30), enough).await;
    }
    let (ada_before, bob_before) = (ada.stats().await, bob.stats().await);

    click(&cyd.browser, "#leave").await;
    cyd.quit().await;

    // Each of the two left sees one peer, holds a new key from it, and keeps decoding.
    for (p, before, other) in [(&ada, &ada_before, "Bob"), (&bob, &bob_before, "Ada")] {
        let old_key = peer(before, other)["key_id"].as_u64().unwrap();
        let old_frames = frames(before, other);
        let after = p
            .wait_for_peers(1, Duration::from_secs(20), |q| {
                q["key_id"].as_u64().is_some_and(|k| k != old_key)
                    && q["frames_decoded"].as_u64().unwrap_or(0) >= old_frames + 30
            })
            .await;
        assert_ne!(after["key_id"], before["key_id"], "{}: our own key moved on too", p.name);
        assert_eq!(after["dropped"], 0, "{}: {after:#}", p.name);
    }
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_is_decoded_by_the_other() {
    let server = start_with_client().await;
    let ada = Participant::join(&server.http, "screens", "Ada", "auto").await;
    let bob = Participant::join(&server.http, "screens", "Bob", "auto").await;
    bob.wait_for_peers(1, Duration::from_secs(15), |p| p["frames_decoded"].as_u64().unwrap_or(0) > 0).await;
    click(&ada.browser, "#toggle-screen").await;
    let stats =
        bob.wait_for_peers(1, Duration::from_secs(20), |p| p["screen_frames"].as_u64().unwrap_or(0) >= 10).await;
    println!("screen frames: {}", stats["peers"][0]["screen_frames"]);
    // Bob's page shows Ada's screen as its own tile.
    common::web_client::wait(&bob.browser, "return !!document.querySelector('[data-screen-session]')", 10).await;
    // Ada stops; the tile goes.
    click(&ada.browser, "#toggle-screen").await;
    common::web_client::wait(&bob.browser, "return !document.querySelector('[data-screen-session]')", 10).await;
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_reconnect_and_exchange_keys_again_after_the_relay_restarts() {
    let server = start_with_client().await;
    let ada = Participant::join(&server.http, "restart", "Ada", "auto").await;
    let bob = Participant::join(&server.http, "restart", "Bob", "websocket").await;
    let enough = |p: &Value| p["frames_decoded"].as_u64().unwrap_or(0) >= 20;
    let before = ada.wait_for_peers(1, Duration::from_secs(15), enough).await;
    bob.wait_for_peers(1, Duration::from_secs(15), enough).await;

    let server = server.restart().await;
    // Both see the drop, come back by themselves, and meet again under new sessions and keys.
    for p in [&ada, &bob] {
        let after = p
            .wait_for_peers(1, Duration::from_secs(30), |q| {
                q["session"] != before["peers"][0]["session"] && q["frames_decoded"].as_u64().unwrap_or(0) >= 20
            })
            .await;
        let state = p.browser.eval("return document.querySelector('#connection').dataset.state").await.unwrap();
        assert_eq!(state, "connected", "{}", p.name);
        assert_eq!(after["dropped"], 0, "{}: {after:#}", p.name);
    }
    assert_eq!(ada.stats().await["transport"], "WebTransport", "Ada came back over WebTransport (new certificate)");
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}

/// The ladder and simulcast together, through a real page: Ada's uplink is throttled to
/// 300 kbit/s (her WebTransport session crosses a UDP link that passes only that much from
/// her, queueing at most 200 ms and dropping the rest, as a slow uplink's router does), her
/// send queue grows and her camera steps down. Once its top layer is as narrow as a lower one,
/// that lower layer goes (it would carry the same size twice over a link that is already full),
/// down to one 320x240 layer, which fits, so her frames reach Bob fresh again; Bob, who
/// pinned her, keeps decoding her all along. With the limit lifted, she steps back up and her
/// layers come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_on_a_slow_uplink_steps_down_shedding_layers_and_comes_back() {
    let (server, link) = common::web_client::start_with_client_behind_link().await;
    // Only Ada's datagrams cross the link: Bob uses WebSocket.
    let ada = Participant::join(&server.http, "uplink", "Ada", "webtransport").await;
    let bob = Participant::join(&server.http, "uplink", "Bob", "websocket").await;
    let stats = bob.wait_for_peers(1, Duration::from_secs(30), |p| p["frames_decoded"].as_u64() >= Some(30)).await;
    let session = peer(&stats, "Ada")["session"].as_u64().unwrap();
    click(&bob.browser, &format!(".tile[data-session='{session}'] .pin")).await;
    let count = |stats: &Value| stats["sending_layers"]["count"].as_u64().unwrap_or(0);
    let full = count(&ada.stats().await);
    assert!(full >= 2, "Ada's camera sends simulcast layers: {:#}", ada.stats().await);

    link.limit_up(Some(300_000));
    let throttled = std::time::Instant::now();
    let mut counts = vec![full];
    while counts.last() != Some(&1) {
        assert!(throttled.elapsed() < Duration::from_secs(60), "Ada never got down to one layer: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = count(&ada.stats().await);
        if counts.last() != Some(&now) {
            counts.push(now);
        }
    }
    let down = throttled.elapsed();
    assert!(counts.windows(2).all(|w| w[1] < w[0]), "one layer less at a time: {counts:?}");
    // Bob decodes her one layer: the top, now 320 wide.
    let before = frames(&bob.stats().await, "Ada");
    let small = |p: &Value| p["layer"] == 0 && p["width"].as_u64() <= Some(320);
    let stats = bob
        .wait_for_peers(1, Duration::from_secs(20), |p| small(p) && p["frames_decoded"].as_u64() >= Some(before + 20))
        .await;
    println!("Bob decodes Ada at {}x{}", peer(&stats, "Ada")["width"], peer(&stats, "Ada")["height"]);
    // What queued while the link was full drains: her frames arrive fresh again.
    let median_latency = |stats: &Value| {
        let all = peer(stats, "Ada")["latency_ms"].as_array().cloned().unwrap_or_default();
        let mut recent: Vec<f64> = all[all.len().saturating_sub(10)..].iter().filter_map(Value::as_f64).collect();
        recent.sort_by(f64::total_cmp);
        recent.get(recent.len() / 2).copied().unwrap_or(f64::MAX)
    };
    let stale = median_latency(&stats);
    loop {
        let latency = median_latency(&bob.stats().await);
        if latency < 1_000.0 {
            println!(
                "Ada's frames {stale:.0} ms late at one layer, {latency:.0} ms {} ms after the limit",
                throttled.elapsed().as_millis()
            );
            break;
        }
        assert!(throttled.elapsed() < Duration::from_secs(60), "Ada's frames still reach Bob {latency:.0} ms late");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    link.limit_up(None);
    let lifted = std::time::Instant::now();
    let stats =
        bob.wait_for_peers(1, Duration::from_secs(60), |p| p["layer"].as_u64() >= Some(1) && p["width"] == 640).await;
    let up = lifted.elapsed();
    assert!(count(&ada.stats().await) >= 2, "{:#}", ada.stats().await);
    println!(
        "uplink at 300 kbit/s: Ada's layers {counts:?}, one layer after {} ms; limit lifted: Bob decodes her \
         {}x{} (layer {}) after {} ms",
        down.as_millis(),
        peer(&stats, "Ada")["width"],
        peer(&stats, "Ada")["height"],
        peer(&stats, "Ada")["layer"],
        up.as_millis()
    );
    assert_eq!(peer(&stats, "Ada")["decode_errors"], 0, "{stats:#}");
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}
