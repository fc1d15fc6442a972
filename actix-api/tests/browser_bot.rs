//! `bot camera` publishes into a room and a browser in the room decodes it: the bot speaks the
//! browser's end-to-end encryption and sends H.264 a browser's WebCodecs decoder takes.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::web_client::{Participant, start_with_client};
use testkit::KillOnDrop;

fn bot_camera(http: &str, room: &str, transport: &str) -> KillOnDrop {
    bot_camera_as(http, room, transport, "Camera", &[])
}

fn bot_camera_as(http: &str, room: &str, transport: &str, name: &str, extra: &[&str]) -> KillOnDrop {
    let binary = testkit::workspace_binary("bot").unwrap();
    let child = Command::new(binary)
        .args(["camera", "--server", http, "--room", room, "--name", name, "--transport", transport])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting bot camera");
    KillOnDrop(child)
}

async fn a_browser_sees_the_bot(transport: &str) {
    let server = start_with_client().await;
    let room = format!("bot-{transport}");
    let ada = Participant::join(&server.http, &room, "Ada", "auto").await;
    let _bot = bot_camera(&server.http, &room, transport);
    let stats = ada
        .wait_for_peers(1, Duration::from_secs(15), |p| {
            p["name"] == "Camera" && p["frames_decoded"].as_u64().unwrap_or(0) >= 60
        })
        .await;
    let camera = &stats["peers"][0];
    assert_eq!(camera["width"], 640);
    assert_eq!(stats["dropped"], 0, "{stats:#}");
    assert!(camera["fingerprint"].is_string(), "the bot's key is shown");
    println!("{transport}: {} frames of the bot decoded", camera["frames_decoded"]);
    ada.quit().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_decodes_the_bot_camera_over_websocket() {
    a_browser_sees_the_bot("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_decodes_the_bot_camera_over_webtransport() {
    a_browser_sees_the_bot("webtransport").await;
}

/// A room of six: one page and five native participants, each sending real H.264 from its
/// camera (the bot's test pattern at 320x180) through `videocall-client`'s call engine, over
/// both transports. Every tile decodes, at the size sent, and is drawn, with nothing dropped or
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_decodes_every_tile_of_a_six_person_room() {
    let server = start_with_client().await;
    let room = "six";
    let ada = Participant::join(&server.http, room, "Ada", "auto").await;
    let bots: Vec<KillOnDrop> = (1..=5)
        .map(|n| {
            let transport = if n % 2 == 0 { "webtransport" } else { "websocket" };
            let name = format!("Camera {n}");
            bot_camera_as(&server.http, room, transport, &name, &["--width", "320", "--height", "180", "--fps", "15"])
        })
        .collect();
    let stats = ada
        .wait_for_peers(5, Duration::from_secs(60), |p| {
            p["frames_decoded"].as_u64().unwrap_or(0) >= 45 && p["width"] == 320 && p["height"] == 180
        })
        .await;
    let peers = stats["peers"].as_array().unwrap();
    let mut names: Vec<&str> = peers.iter().map(|p| p["name"].as_str().unwrap_or_default()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Camera 1", "Camera 2", "Camera 3", "Camera 4", "Camera 5"]);
    for peer in peers {
        assert_eq!(peer["decode_errors"], 0, "{peer:#}");
        assert!(peer["fingerprint"].is_string(), "every key is shown: {peer:#}");
    }
    assert_eq!(stats["dropped"], 0, "{stats:#}");
    assert_eq!(stats["refused"], serde_json::json!({}), "{stats:#}");
    // Every tile on the page has drawn its camera (the drawing worker counts what it drew).
    let stats = ada.wait_for_peers(5, Duration::from_secs(15), |p| p["frames_drawn"].as_u64().unwrap_or(0) >= 30).await;
    let peers = stats["peers"].as_array().unwrap();
    println!(
        "six in a room: {:?} frames decoded and drawn per tile",
        peers.iter().map(|p| (p["frames_decoded"].as_u64(), p["frames_drawn"].as_u64())).collect::<Vec<_>>()
    );
    drop(bots);
    ada.quit().await;
    server.stop().await;
}

/// Simulcast through a real page: five native cameras, each sending two layers (640x360 and
/// the 320x180 thumbnail layer under it), in one page's grid. The page asks its relay for the
/// thumbnails only, so every tile decodes 320x180 (layer 0). Pinning one camera makes its tile
/// large: the page asks for that camera's large layer, and its 640x360 frames are decoded
/// within a second; the others stay small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_takes_the_small_layers_and_a_pinned_camera_its_large_one_within_a_second() {
    let server = start_with_client().await;
    let room = "simulcast";
    let ada = Participant::join(&server.http, room, "Ada", "auto").await;
    let bots: Vec<KillOnDrop> = (1..=5)
        .map(|n| {
            let transport = if n % 2 == 0 { "webtransport" } else { "websocket" };
            let name = format!("Camera {n}");
            bot_camera_as(&server.http, room, transport, &name, &["--width", "640", "--height", "360", "--fps", "15"])
        })
        .collect();
    let small = |p: &serde_json::Value| {
        p["layer"] == 0 && p["width"] == 320 && p["height"] == 180 && p["frames_decoded"].as_u64().unwrap_or(0) >= 30
    };
    let stats = ada.wait_for_peers(5, Duration::from_secs(60), small).await;
    for peer in stats["peers"].as_array().unwrap() {
        assert_eq!(peer["decode_errors"], 0, "{peer:#}");
    }
    assert_eq!(stats["dropped"], 0, "{stats:#}");

    let pinned = stats["peers"][0]["session"].as_u64().unwrap();
    let started = std::time::Instant::now();
    common::web_client::click(&ada.browser, &format!(".tile[data-session='{pinned}'] .pin")).await;
    let large = loop {
        let stats = ada.stats().await;
        let peers = stats["peers"].as_array().cloned().unwrap_or_default();
        let it = peers.iter().find(|p| p["session"] == pinned).cloned().unwrap_or_default();
        if it["layer"] == 1 && it["width"] == 640 && it["height"] == 360 {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the pinned camera never came large: {stats:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("simulcast: the pinned camera's large layer decoded {} ms after the click", large.as_millis());
    assert!(large < Duration::from_secs(1), "pinning took {large:?}");
    // The others stay on their thumbnails.
    let stats = ada.stats().await;
    for peer in stats["peers"].as_array().unwrap().iter().filter(|p| p["session"] != pinned) {
        assert!(small(peer), "{peer:#}");
    }
    drop(bots);
    ada.quit().await;
    server.stop().await;
}

/// A slow link in front of one page: its TCP connection to the relay, or the UDP path of its
/// WebTransport session.
enum SlowLink {
    Tcp(testkit::ThrottledTcp),
    Udp(testkit::LossyLink),
}

impl SlowLink {
    fn limit_down(&self, bits_per_sec: Option<u64>) {
        match self {
            Self::Tcp(link) => link.limit_down(bits_per_sec),
            Self::Udp(link) => link.limit_down(bits_per_sec),
        }
    }
}

/// Per-receiver forwarding through real pages: Ada and Bob pin the same native camera (two
/// layers: 640x360 at 1.2 Mbit/s, and the 320x180 thumbnail under it) and both take its large
/// layer. Then Bob's downlink is throttled to 500 kbit/s: the relay sees his queue back up and
/// moves him to the small layer, while Ada keeps the large one all along. With the limit
/// lifted, Bob gets the large layer back.
///
/// Over WebSocket, Bob's page reaches the relay through a TCP link that passes him only that
/// much. Over WebTransport, the relay tells browsers a UDP link's address, one that queues what
/// exceeds the rate for at most 200 ms and drops the rest, as a slow downlink's router does
/// (Ada and the camera use WebSocket: only Bob's datagrams cross it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_receiver_drops_to_the_small_layer_while_another_keeps_the_large_one() {
    let server = start_with_client().await;
    let relay: std::net::SocketAddr = server.http.trim_start_matches("http://").parse().unwrap();
    let link = testkit::ThrottledTcp::start(relay).unwrap();
    let bob_http = format!("http://{}", link.addr());
    throttled_receiver(server, "throttled", (&bob_http, "websocket"), SlowLink::Tcp(link)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_webtransport_receiver_drops_to_the_small_layer_while_another_keeps_the_large_one() {
    let (server, link) = common::web_client::start_with_client_behind_link().await;
    let http = server.http.clone();
    throttled_receiver(server, "throttled-wt", (&http, "webtransport"), SlowLink::Udp(link)).await;
}

async fn throttled_receiver(
    server: common::web_client::ClientServer,
    room: &str,
    (bob_http, bob_transport): (&str, &str),
    link: SlowLink,
) {
    let ada = Participant::join(&server.http, room, "Ada", "websocket").await;
    let bob = Participant::join(bob_http, room, "Bob", bob_transport).await;
    let camera_args = ["--width", "640", "--height", "360", "--fps", "30", "--bitrate", "1200000", "--noise", "6"];
    let _camera = bot_camera_as(&server.http, room, "websocket", "Camera", &camera_args);

    let camera = |stats: &serde_json::Value| {
        stats["peers"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "Camera")).cloned().unwrap_or_default()
    };
    let at_layer = |peer: &serde_json::Value, layer: u32| {
        let (width, height) = if layer == 1 { (640, 360) } else { (320, 180) };
        peer["layer"] == layer && peer["width"] == width && peer["height"] == height
    };
    let session = ada
        .wait_for_peers(2, Duration::from_secs(60), |p| p["name"] != "Camera" || p["frames_decoded"].as_u64() > Some(0))
        .await;
    let session = camera(&session)["session"].as_u64().unwrap();
    for page in [&ada, &bob] {
        common::web_client::click(&page.browser, &format!(".tile[data-session='{session}'] .pin")).await;
    }
    for page in [&ada, &bob] {
        page.wait_for_peers(2, Duration::from_secs(30), |p| p["name"] != "Camera" || at_layer(p, 1)).await;
    }

    // Whether Ada is held up is read from how late her frames are, against Bob's: on a loaded
    // machine the camera captures fewer frames once it encodes both layers (Bob's step down
    // asks for the small one), and that is not Bob's backlog holding Ada up.
    let decoded = |peer: &serde_json::Value| peer["frames_decoded"].as_u64().unwrap_or(0);
    link.limit_down(Some(500_000));
    let throttled = std::time::Instant::now();
    let (ada_before, bob_before) = (decoded(&camera(&ada.stats().await)), decoded(&camera(&bob.stats().await)));
    let down = loop {
        let (a, b) = (camera(&ada.stats().await), camera(&bob.stats().await));
        assert!(at_layer(&a, 1), "Ada lost the large layer while Bob was throttled: {a:#}");
        if at_layer(&b, 0) {
            break throttled.elapsed();
        }
        assert!(throttled.elapsed() < Duration::from_secs(30), "Bob never stepped down: {b:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Bob keeps decoding the small layer, and Ada the large one.
    let bob_small = decoded(&camera(&bob.stats().await));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (a, b) = (camera(&ada.stats().await), camera(&bob.stats().await));
    assert!(at_layer(&a, 1) && at_layer(&b, 0), "Ada {a:#}\nBob {b:#}");
    let ada_fps = (decoded(&a) - ada_before) as f64 / throttled.elapsed().as_secs_f64();
    let bob_fps = (decoded(&b) - bob_small) as f64 / 3.0;
    // Capture to decode of the frames each decoded since the limit began, sorted.
    let latencies = |peer: &serde_json::Value, since: u64| {
        let all: Vec<f64> =
            peer["latency_ms"].as_array().map(|l| l.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
        let mut recent = all[all.len().saturating_sub((decoded(peer) - since) as usize)..].to_vec();
        recent.sort_by(f64::total_cmp);
        recent
    };
    let (ada_ms, bob_ms) = (latencies(&a, ada_before), latencies(&b, bob_before));
    let ada_p95 = ada_ms.get(ada_ms.len() * 95 / 100).copied().unwrap_or(f64::MAX);
    let bob_worst = bob_ms.last().copied().unwrap_or(0.0);
    println!("while Bob was throttled: Ada's frames p95 {ada_p95:.0} ms late, Bob's up to {bob_worst:.0} ms");
    assert!(bob_worst > 1_000.0, "Bob's link never held his frames back: {bob_worst:.0} ms");
    assert!(
        ada_p95 < bob_worst / 2.0,
        "Bob's backlog held Ada up: her frames p95 {ada_p95:.0} ms late, Bob's up to {bob_worst:.0} ms"
    );
    assert!(ada_fps > 2.0, "Ada decoded {ada_fps:.1} frames a second of the large layer");
    assert!(bob_fps > 2.0, "Bob decoded {bob_fps:.1} frames a second of the small layer");

    link.limit_down(None);
    let lifted = std::time::Instant::now();
    let up = loop {
        if at_layer(&camera(&bob.stats().await), 1) {
            break lifted.elapsed();
        }
        assert!(lifted.elapsed() < Duration::from_secs(30), "Bob never came back up: {:#}", bob.stats().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "{bob_transport} throttled to 500 kbit/s: Bob on the small layer after {} ms ({bob_fps:.1} fps), Ada kept the large one \
         ({ada_fps:.1} fps, p95 {ada_p95:.0} ms from capture); limit lifted: Bob large again after {} ms",
        down.as_millis(),
        up.as_millis()
    );
    let expected = if bob_transport == "webtransport" { "WebTransport" } else { "WebSocket" };
    assert_eq!(bob.stats().await["transport"], expected, "Bob stayed on the same connection");
    let connected = "const c = document.querySelector('#connection'); return !!c && c.dataset.state === 'connected'";
    common::web_client::wait(&bob.browser, connected, 5).await;
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}
