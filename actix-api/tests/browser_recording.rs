//! Recording a meeting from the real web client (headless Chromium, fake camera and
//! microphone): the host and a guest in browsers and a `bot camera` in the meeting; the host
//! starts recording from the host panel, everyone's page shows the recorder (the badge, its
//! fingerprint in the people list), ten seconds later the host stops it, and the files hold
//! each participant's video and audio as sent, for as long as it ran, judged by ffprobe and
//! ffmpeg.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::api::Api;
use common::web_client::{Participant, click, start_with_client_and, type_into, wait};
use serde_json::{Value, json};
use testkit::{Browser, KillOnDrop, media};

const CONNECTED: &str =
    "const c = document.querySelector('#connection'); return !!c && c.dataset.state === 'connected'";
const JOIN_READY: &str = "const b = document.querySelector('#join-button'); return !!b && !b.disabled";
const BADGE: &str = "return !!document.querySelector('#recording-badge')";
/// The recorder's line in the people list (an expression): its name and fingerprint.
const RECORDER_LINE: &str = "(() => { const li = [...document.querySelectorAll('.participants li')]
    .find(li => li.querySelector('.badge.recorder'));
    return li ? li.querySelector('.who').firstChild.textContent.trim() + ' ' + li.querySelector('.fingerprint').textContent : ''; })()";

/// Opens `link`, gives `name` in the lobby, joins, and waits until connected.
async fn enter(browser: &Browser, link: &str, name: &str) {
    browser.goto(link).await.unwrap();
    wait(browser, JOIN_READY, 30).await;
    type_into(browser, "#lobby-name", name).await;
    click(browser, "#join-button").await;
    wait(browser, CONNECTED, 20).await;
}

fn decoding(peer: &Value) -> bool {
    peer["frames_decoded"].as_u64().unwrap_or(0) >= 10
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_records_from_the_ui_and_everyone_sees_the_recorder() {
    let dir = std::env::temp_dir().join(format!("browser-recording-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let recordings = dir.clone();
    let server = start_with_client_and(move |config| {
        config.recorder_bin = testkit::workspace_binary("bot").unwrap();
        config.recordings_dir = Some(recordings);
    })
    .await;
    let http = server.http.clone();

    // The host: a session from the home page, a meeting without a waiting room, then in.
    let host = Participant { browser: Browser::launch().await.unwrap(), name: "the host".into() };
    host.browser.goto(&format!("{http}/")).await.unwrap();
    let id = host
        .browser
        .eval(
            "return (async () => {
                await fetch('/api/v1/session', {method: 'POST', headers: {'content-type': 'application/json'},
                    body: JSON.stringify({display_name: 'Hannah Host'})});
                const r = await fetch('/api/v1/meetings', {method: 'POST', headers: {'content-type': 'application/json'},
                    body: JSON.stringify({name: 'Recorded', waiting_room: false})});
                return (await r.json()).id;
            })()",
        )
        .await
        .unwrap();
    let id = id.as_str().expect("a meeting id").to_owned();
    let link = format!("{http}/meeting/{id}");
    enter(&host.browser, &link, "Hannah Host").await;
    wait(&host.browser, "return !!document.querySelector('#host-panel')", 10).await;
    let guest = Participant { browser: Browser::launch().await.unwrap(), name: "the guest".into() };
    enter(&guest.browser, &link, "Gus Guest").await;

    // The lobby camera joins through the API as a guest would, with the token it is given.
    let mut camera_guest = Api::new(&http);
    let (status, joined) =
        camera_guest.post(&format!("/api/v1/meetings/{id}/join"), json!({"display_name": "Lobby camera"})).await;
    assert_eq!(status, 200, "{joined}");
    let _camera = KillOnDrop(
        Command::new(testkit::workspace_binary("bot").unwrap())
            .args([
                "camera",
                "--server",
                &http,
                "--room",
                &id,
                "--width",
                "640",
                "--height",
                "360",
                "--duration",
                "120",
            ])
            .env("BOT_ROOM_TOKEN", joined["token"].to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    host.wait_for_peers(2, Duration::from_secs(40), decoding).await;
    guest.wait_for_peers(2, Duration::from_secs(40), decoding).await;
    assert_eq!(guest.browser.eval(BADGE).await.unwrap(), Value::Bool(false), "nobody records yet");

    // Start: every page shows it, and the recorder with its key's fingerprint.
    wait(
        &host.browser,
        "const b = document.querySelector('#record-toggle'); return !!b && b.innerText.includes('Start')",
        10,
    )
    .await;
    click(&host.browser, "#record-toggle").await;
    let started = Instant::now();
    let started_ms = wall_ms();
    for page in [&host, &guest] {
        wait(&page.browser, BADGE, 15).await;
        let shown = format!("const line = {RECORDER_LINE}; return line.length > 0 && !line.includes('waiting')");
        wait(&page.browser, &shown, 15).await;
        let line = page.browser.eval(&format!("return {RECORDER_LINE}")).await.unwrap();
        assert!(line.as_str().unwrap().starts_with("Recorder "), "{}: {line}", page.name);
    }
    wait(&host.browser, "return document.querySelector('#record-toggle').innerText.includes('Stop')", 10).await;

    // Ten seconds of the call, then stop from the panel: the files are listed there.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(started.elapsed())).await;
    click(&host.browser, "#record-toggle").await;
    let stopped_ms = wall_ms();
    wait(&host.browser, "return document.querySelectorAll('#recordings li').length >= 3", 20).await;
    wait(&guest.browser, "return !document.querySelector('#recording-badge')", 15).await;

    // The files: each participant's tracks as sent, playing as long as it was recorded.
    let meeting_dir = dir.join(&id);
    let mut files: Vec<(PathBuf, Value)> = std::fs::read_dir(&meeting_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .map(|p| {
            let listing = serde_json::from_slice(&std::fs::read(p.with_extension("mp4.json")).unwrap()).unwrap();
            (p, listing)
        })
        .collect();
    files.sort_by_key(|(_, l)| l["participant"].as_str().unwrap_or_default().to_owned());
    let names: Vec<&str> = files.iter().map(|(_, l)| l["participant"].as_str().unwrap()).collect();
    assert_eq!(names, ["Gus Guest", "Hannah Host", "Lobby camera"], "{files:?}");
    let recorded_s = (stopped_ms - started_ms) as f64 / 1000.0;
    for (path, listing) in &files {
        let probe = media::ffprobe(path).unwrap();
        let codecs: Vec<&str> =
            probe["streams"].as_array().unwrap().iter().map(|s| s["codec_name"].as_str().unwrap()).collect();
        let browser = listing["participant"] != "Lobby camera";
        let expected: &[&str] = if browser { &["h264", "opus"] } else { &["h264"] };
        assert_eq!(codecs, expected, "{}: {probe}", path.display());
        assert_eq!(listing["complete"], true, "{listing}");
        // From its first keyframe (joining, keys, a keyframe asked for) to the stop.
        let expected_s = (stopped_ms - listing["started_ms"].as_u64().unwrap()) as f64 / 1000.0;
        let seconds = media::duration_seconds(&probe).unwrap();
        assert!(
            (seconds - expected_s).abs() <= expected_s * 0.1,
            "{}: {seconds:.2} s, expected {expected_s:.2}",
            path.display()
        );
        assert!(expected_s >= recorded_s - 4.0, "{}: began {:.1} s late", path.display(), recorded_s - expected_s);
        media::decodes_cleanly(path).unwrap();
        let level = if browser { media::audio_rms_db(path).unwrap() } else { f64::NAN };
        assert!(
            !browser || level > -60.0,
            "{}: the fake microphone's tone is recorded (RMS {level:.1} dB)",
            path.display()
        );
        eprintln!(
            "{}: {codecs:?}, {seconds:.2} s of {expected_s:.2} s since its first keyframe ({recorded_s:.2} s recorded), audio RMS {level:.1} dB",
            listing["participant"]
        );
    }
    host.quit().await;
    guest.quit().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
