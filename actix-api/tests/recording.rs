//! `bot record` and `bot snapshot` against a real server, with `bot camera` (the test pattern,
//! H.264) in the room, judged by Debian's ffprobe and ffmpeg: the files play, hold what was
//! sent for as long as it was sent, survive the recorder being killed, and a snapshot shows the
//! pattern's colour bars where it draws them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::api::{Api, assert_error};
use common::{Config, http_url, start};
use serde_json::json;
use testkit::{KillOnDrop, media};

fn bot(args: &[&str]) -> Command {
    let mut command = Command::new(testkit::workspace_binary("bot").unwrap());
    command.args(args);
    command
}

fn spawn(mut command: Command) -> KillOnDrop {
    KillOnDrop(command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the bot starts"))
}

/// `bot record` into `out`, with `extra` arguments.
fn record(http: &str, room: &str, out: &Path, extra: &[&str]) -> KillOnDrop {
    spawn(bot(&[&["record", "--server", http, "--room", room, "--out", path_str(out)], extra].concat()))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recording-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The recordings in `dir`: (file, its listing).
fn recordings(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .map(|p| {
            let side = std::fs::read(p.with_extension("mp4.json")).expect("a listing beside each file");
            (p, serde_json::from_slice(&side).unwrap())
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Waits for `child` to exit within `limit`; (exit code, stderr).
fn wait(mut child: KillOnDrop, limit: Duration) -> (Option<i32>, String) {
    use std::io::Read as _;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status.code(), stderr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("still running after {limit:?}");
}

/// (R, G, B) of the test pattern's eight bars, left to right (bot/src/camera/pattern.rs draws
/// them in BT.601 limited-range YCbCr): white, yellow, cyan, green, magenta, red, blue, black.
const BARS_RGB: [[u8; 3]; 8] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
    [16, 16, 16],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_is_recorded_into_files_players_open_and_snapshotted() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let room = "recorded";
    let camera = spawn(bot(&[
        "camera",
        "--server",
        &http,
        "--room",
        room,
        "--name",
        "Lobby camera",
        "--width",
        "640",
        "--height",
        "360",
        // Camera-like noise: the clean pattern compresses to almost nothing, a real picture
        // fills the small disk below in seconds.
        "--noise",
        "6",
        "--duration",
        "120",
    ]));

    // A snapshot first: the pattern at its size, the bars where they are drawn.
    let dir = scratch("snapshot");
    let jpeg = dir.join("lobby.jpg");
    let (code, stderr) = wait(
        spawn(bot(&[
            "snapshot",
            "--server",
            &http,
            "--room",
            room,
            "--participant",
            "Lobby camera",
            "--out",
            path_str(&jpeg),
        ])),
        Duration::from_secs(40),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (width, height, rgb) = media::first_picture_rgb(&jpeg).unwrap();
    assert_eq!((width, height), (640, 360));
    let y = height * 3 / 4;
    let in_place = BARS_RGB
        .iter()
        .enumerate()
        .filter(|(i, want)| {
            let x = (2 * i + 1) * width / 16;
            let got = &rgb[(y * width + x) * 3..][..3];
            got.iter().zip(want.iter()).all(|(g, w)| g.abs_diff(*w) <= 48)
        })
        .count();
    // The sweeping dark bar hides at most two.
    assert!(in_place >= 6, "{in_place} of 8 colour bars where the pattern draws them");

    // Recorded for 8 s, stopped by --duration: one file, complete, playing for as long as it ran.
    let out = scratch("files");
    let (code, stderr) = wait(record(&http, room, &out, &["--duration", "8"]), Duration::from_secs(40));
    let stopped_ms = wall_ms();
    assert_eq!(code, Some(0), "{stderr}");
    let files = recordings(&out);
    assert_eq!(files.len(), 1, "one participant, one file: {files:?}\n{stderr}");
    let (path, listing) = &files[0];
    assert_eq!(listing["participant"], "Lobby camera");
    assert_eq!(listing["codec"], "h264");
    assert_eq!(listing["complete"], true);
    assert_eq!(listing["bytes"].as_u64(), Some(std::fs::metadata(path).unwrap().len()));
    let probe = media::ffprobe(path).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "the camera bot sends no audio: {probe}");
    assert_eq!(streams[0]["codec_name"], "h264");
    assert_eq!((streams[0]["width"].as_u64(), streams[0]["height"].as_u64()), (Some(640), Some(360)));
    let seconds = media::duration_seconds(&probe).unwrap();
    let ran = (stopped_ms - listing["started_ms"].as_u64().unwrap()) as f64 / 1000.0;
    assert!((seconds - ran).abs() <= ran * 0.1, "the file plays {seconds:.2} s of {ran:.2} s recorded");
    assert!(ran >= 5.0, "recording began within 3 s of joining: {ran:.2} s of 8");
    media::decodes_cleanly(path).unwrap();

    // Killed mid-recording: what was written plays.
    let out = scratch("killed");
    let mut recorder = record(&http, room, &out, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = loop {
        assert!(Instant::now() < deadline, "no recording grew to 4 fragments");
        if let Some((path, _)) = recordings(&out).into_iter().next()
            && std::fs::metadata(&path).unwrap().len() > 150_000
        {
            break path;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    recorder.0.kill().unwrap();
    let _ = recorder.0.wait();
    let probe = media::ffprobe(&path).unwrap();
    assert!(media::duration_seconds(&probe).unwrap() >= 2.0, "{probe}");
    media::decodes_cleanly(&path).unwrap();

    // Not enough free space: it says so and records nothing.
    let out = scratch("full");
    let (code, stderr) = wait(record(&http, room, &out, &["--min-free-mb", "1000000000"]), Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("MiB free, less than the 1000000000 MiB recording keeps free"), "{stderr}");
    assert!(recordings(&out).is_empty());

    // A disk that fills while recording: the recorder ends its files properly, tells the room
    // and exits 1; what it wrote plays.
    match testkit::SmallDisk::mount("recording", 3 * 1024) {
        Ok(disk) => {
            let (code, stderr) =
                wait(record(&http, room, disk.path(), &["--min-free-mb", "2"]), Duration::from_secs(60));
            assert_eq!(code, Some(1), "{stderr}");
            assert!(stderr.contains("the disk is nearly full"), "{stderr}");
            let files = recordings(disk.path());
            assert_eq!(files.len(), 1, "{files:?}");
            assert_eq!(files[0].1["complete"], true);
            media::decodes_cleanly(&files[0].0).unwrap();
            assert!(media::duration_seconds(&media::ffprobe(&files[0].0).unwrap()).unwrap() >= 2.0);
        }
        Err(e) if std::env::var_os("CI").is_none() => eprintln!("SKIPPED the full disk: {e:#}"),
        Err(e) => panic!("a small disk is needed in CI: {e:#}"),
    }

    // The server goes away mid-recording: every file is ended properly, and the recorder says
    // it did not stop by choice (exit 1).
    let out = scratch("lost");
    let recorder = record(&http, room, &out, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while recordings(&out).first().is_none_or(|(path, _)| std::fs::metadata(path).unwrap().len() < 100_000) {
        assert!(Instant::now() < deadline, "nothing recorded");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(camera);
    server.stop().await;
    let (code, stderr) = wait(recorder, Duration::from_secs(30));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("recording stopped: the"), "{stderr}");
    let files = recordings(&out);
    assert!(files.iter().all(|(_, listing)| listing["complete"] == true), "{files:?}");
    media::decodes_cleanly(&files[0].0).unwrap();
}

/// A server whose host records through the API: the recorder is this workspace's `bot`.
fn recording_config(dir: &Path) -> Config {
    let mut config = Config::for_tests();
    config.recorder_bin = testkit::workspace_binary("bot").unwrap();
    config.recordings_dir = Some(dir.to_owned());
    config.recording_link_ttl_secs = 3;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_records_a_meeting_lists_downloads_and_snapshots_it() {
    let dir = scratch("api");
    let server = start(recording_config(&dir)).await;
    let http = http_url(&server);
    let mut host = Api::new(&http);
    host.post("/api/v1/session", json!({"display_name": "Hannah Host"})).await;
    let (status, meeting) = host.post("/api/v1/meetings", json!({"name": "Lobby", "waiting_room": false})).await;
    assert_eq!(status, 201, "{meeting}");
    let id = meeting["id"].as_str().unwrap().to_owned();

    // The lobby camera joins the meeting as a guest; the bot takes the token the API gave.
    let mut camera_guest = host.anonymous();
    let (status, joined) =
        camera_guest.post(&format!("/api/v1/meetings/{id}/join"), json!({"display_name": "Lobby camera"})).await;
    assert_eq!(status, 200, "{joined}");
    let camera_user = joined["user"]["id"].as_str().unwrap().to_owned();
    let mut camera =
        bot(&["camera", "--server", &http, "--room", &id, "--width", "640", "--height", "360", "--duration", "60"]);
    camera.env("BOT_ROOM_TOKEN", joined["token"].to_string());
    let camera = spawn(camera);

    // Only the host starts a recording.
    assert_error(camera_guest.post(&format!("/api/v1/meetings/{id}/recording"), json!({})).await, 403, "not_host");
    let (status, body) = host.post(&format!("/api/v1/meetings/{id}/recording"), json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_error(host.post(&format!("/api/v1/meetings/{id}/recording"), json!({})).await, 409, "already_recording");
    assert_eq!(host.get(&format!("/api/v1/meetings/{id}/recording")).await.1["recording"], true);

    // A snapshot of the camera through the API, while it records.
    let response = reqwest::Client::new()
        .get(format!("{http}/api/v1/meetings/{id}/participants/{camera_user}/snapshot"))
        .header("cookie", host.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let jpeg = dir.join("snapshot.jpg");
    std::fs::write(&jpeg, response.bytes().await.unwrap()).unwrap();
    let (width, height, _) = media::first_picture_rgb(&jpeg).unwrap();
    assert_eq!((width, height), (640, 360));
    let (status, _) = camera_guest.get(&format!("/api/v1/meetings/{id}/participants/{camera_user}/snapshot")).await;
    assert_eq!(status, 403, "only the host takes snapshots");

    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, files) = host.delete(&format!("/api/v1/meetings/{id}/recording")).await;
    assert_eq!(status, 200, "{files}");
    assert_error(host.delete(&format!("/api/v1/meetings/{id}/recording")).await, 409, "not_recording");
    // The camera, and the snapshot taker (a participant while it looked) had no camera.
    let files = files.as_array().unwrap();
    let recorded: Vec<_> = files.iter().filter(|f| f["participant"] == "Lobby camera").collect();
    assert_eq!(recorded.len(), 1, "{files:?}");
    let file = recorded[0];
    assert_eq!((file["complete"].as_bool(), file["codec"].as_str()), (Some(true), Some("h264")), "{file}");
    assert!(file["duration_ms"].as_u64().unwrap() >= 3_000, "{file}");

    // The link downloads the file, to anyone holding it, until it expires.
    let url = format!("{http}{}", file["url"].as_str().unwrap());
    let download = reqwest::get(&url).await.unwrap();
    assert_eq!(download.status(), 200);
    let bytes = download.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, file["bytes"].as_u64().unwrap());
    let copy = dir.join("download.mp4");
    std::fs::write(&copy, &bytes).unwrap();
    media::decodes_cleanly(&copy).unwrap();
    let tampered = url.replace("token=", "token=x");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    let other = url.replace(&id, "someone-else");
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 403);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 403, "an expired link");
    let (status, listed) = host.get(&format!("/api/v1/meetings/{id}/recordings")).await;
    assert_eq!((status.as_u16(), listed.as_array().map(Vec::len)), (200, Some(files.len())));
    assert_eq!(camera_guest.get(&format!("/api/v1/meetings/{id}/recordings")).await.0, 403);

    drop(camera);
    server.stop().await;

    // A disk without the space recording keeps free: a clear refusal, nothing started.
    let mut config = recording_config(&dir);
    config.recordings_min_free_mb = 1_000_000_000;
    let server = start(config).await;
    let mut host = Api::new(&http_url(&server));
    host.post("/api/v1/session", json!({"display_name": "Hannah Host"})).await;
    let (_, meeting) = host.post("/api/v1/meetings", json!({"name": "Full"})).await;
    let id = meeting["id"].as_str().unwrap();
    let said = assert_error(host.post(&format!("/api/v1/meetings/{id}/recording"), json!({})).await, 507, "disk_full");
    assert!(said.contains("less than the 1000000000 MiB recording keeps free"), "{said}");
    assert_eq!(host.get(&format!("/api/v1/meetings/{id}/recording")).await.1["recording"], false);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
