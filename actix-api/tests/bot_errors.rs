//! `bot camera`'s fatal errors: each exits nonzero with a message saying what is wrong, before
//! or instead of joining, against a real server.

mod common;

use std::process::Command;

use common::{Config, http_url, start};

/// Runs `bot camera` with `args` against `http`; (exit code, stderr).
fn bot_camera(http: &str, args: &[&str]) -> (Option<i32>, String) {
    let binary = testkit::workspace_binary("bot").unwrap();
    let out = Command::new(binary)
        .args(["camera", "--server", http, "--name", "Camera"])
        .args(args)
        .output()
        .expect("running bot camera");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_fails(http: &str, args: &[&str], says: &str) {
    let (code, stderr) = bot_camera(http, &[args, &["--duration", "5"]].concat());
    assert!(code.is_some_and(|c| c != 0), "{args:?} exited {code:?}:\n{stderr}");
    assert!(stderr.contains(says), "{args:?} should say {says:?}:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_errors_exit_nonzero_and_say_why() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    // No such camera.
    assert_fails(&http, &["--room", "standup", "--device", "/dev/video-none"], "opening /dev/video-none");
    // Not a camera.
    assert_fails(&http, &["--room", "standup", "--device", "/dev/null"], "not a V4L2 device");
    // A hardware encoder asked for where there is none.
    assert_fails(&http, &["--room", "standup", "--encoder", "v4l2"], "no V4L2 encoder of H264");
    // A codec with no software encoder.
    assert_fails(&http, &["--room", "standup", "--codec", "fwht", "--encoder", "software"], "no software encoder");
    // The server refuses the token (a room name it does not accept).
    assert_fails(&http, &["--room", "no spaces allowed"], "joining no spaces allowed");
    // No server at all.
    assert_fails("http://127.0.0.1:9", &["--room", "standup"], "joining standup at http://127.0.0.1:9");
    // And the same bot with nothing wrong runs its time and exits 0.
    let (code, stderr) = bot_camera(&http, &["--room", "standup", "--duration", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stopped: sent"), "{stderr}");
    server.stop().await;
}
