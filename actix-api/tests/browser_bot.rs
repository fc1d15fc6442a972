//! `bot camera` publishes into a room and a browser in the room decodes it: the bot speaks the
//! browser's end-to-end encryption and sends H.264 a browser's WebCodecs decoder takes.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::web_client::{Participant, start_with_client};
use testkit::KillOnDrop;

fn bot_camera(http: &str, room: &str, transport: &str) -> KillOnDrop {
    let binary = testkit::workspace_binary("bot").unwrap();
    let child = Command::new(binary)
        .args(["camera", "--server", http, "--room", room, "--name", "Camera", "--transport", transport])
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
