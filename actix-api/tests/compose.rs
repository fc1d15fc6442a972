//! docker-compose.yaml brought up for real with podman-compose, from the images the Dockerfile
//! builds (`cargo xtask compose-test` makes them, and the base images that cannot be pulled,
//! and writes the settings: .env.example's with the secrets filled in; then runs this); every health
//! check must pass; two browsers call each other across the two composed relays (one over
//! WebSocket, one over WebTransport, NATS between them); a browser decodes the demo bot; a
//! meeting is kept in the composed PostgreSQL across a restart of actix-api; the relays are
//! ready again soon after NATS is killed and started. Then `down -v`.
//!
//! Ignored by a plain `cargo test` (it needs those images); `cargo xtask test` runs it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::api::Api;
use common::web_client::Participant;
use serde_json::json;

/// The name the stack runs under: its containers, network and volumes carry it.
const PROJECT: &str = "videocall-compose-test";

/// How long the stack may take to pass every health check (images present, on two cores).
const HEALTHY_WITHIN: Duration = Duration::from_secs(120);

/// The bar for the relays after NATS comes back.
const READY_AFTER_NATS: Duration = Duration::from_secs(10);

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The stack; brought down with its volumes when dropped, whatever the test did.
struct Stack {
    tool: PathBuf,
    settings: PathBuf,
    http: String,
}

impl Stack {
    /// Brings the stack up with the settings `cargo xtask compose-test` wrote.
    fn up() -> Self {
        let tool =
            PathBuf::from(std::env::var_os("PODMAN_COMPOSE").expect("PODMAN_COMPOSE: run `cargo xtask compose-test`"));
        let settings = PathBuf::from(
            std::env::var_os("COMPOSE_SETTINGS").expect("COMPOSE_SETTINGS: run `cargo xtask compose-test`"),
        );
        let text = std::fs::read_to_string(&settings).unwrap();
        let http =
            text.lines().find_map(|l| l.strip_prefix("PUBLIC_URL=")).expect("PUBLIC_URL in the settings").to_owned();
        let stack = Self { tool, settings, http };
        // Whatever an interrupted run left.
        let _ = stack.compose(&["--profile", "demo", "down", "-v"]).output();
        stack.run(&["up", "-d"]);
        stack
    }

    fn compose(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tool);
        cmd.current_dir(repository())
            .args(["-f", "docker-compose.yaml", "-p", PROJECT, "--env-file"])
            .arg(&self.settings)
            .args(args);
        cmd
    }

    /// A podman-compose command that must succeed.
    fn run(&self, args: &[&str]) -> Output {
        let out = self.compose(args).output().unwrap();
        assert!(out.status.success(), "podman-compose {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// The container of `service`.
    fn container(&self, service: &str) -> String {
        let out = podman(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={PROJECT}"),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
            "--format",
            "{{.Names}}",
        ]);
        let name = String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_owned);
        name.unwrap_or_else(|| panic!("no container for {service}"))
    }

    /// Runs the health checks of `services` (the images' and the compose file's own) until
    /// every one passes.
    fn wait_healthy(&self, services: &[&str], within: Duration) {
        let started = Instant::now();
        for service in services {
            let container = self.container(service);
            loop {
                let out = Command::new("podman").args(["healthcheck", "run", &container]).output().unwrap();
                if out.status.success() {
                    break;
                }
                if started.elapsed() > within {
                    let logs = podman(&["logs", "--tail", "40", &container]);
                    panic!(
                        "{service} not healthy within {within:?}: {}{}\n{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr),
                        String::from_utf8_lossy(&logs.stderr)
                    );
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    /// The two relays' containers and the port of their `/readyz`, looked up once for polling.
    fn relays(&self) -> [(String, u16); 2] {
        [(self.container("actix-api"), 8080), (self.container("webtransport-server"), 4434)]
    }

    /// One value from the composed PostgreSQL.
    fn sql(&self, query: &str) -> String {
        let out =
            podman(&["exec", &self.container("postgres"), "psql", "-U", "videocall", "-d", "videocall", "-tAc", query]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Whether both relays say they are ready (bus and database).
fn relays_ready(relays: &[(String, u16)]) -> bool {
    relays.iter().all(|(container, port)| {
        Command::new("podman")
            .args(["exec", container, "curl", "-fsS", &format!("http://127.0.0.1:{port}/readyz")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["--profile", "demo", "down", "-v"]).output();
    }
}

/// A podman command that must succeed.
fn podman(args: &[&str]) -> Output {
    let out = Command::new("podman").args(args).output().unwrap();
    assert!(out.status.success(), "podman {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn receiving(peer: &serde_json::Value) -> bool {
    peer["frames_decoded"].as_u64().unwrap_or(0) >= 60 && peer["audio_frames"].as_u64().unwrap_or(0) > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the images: cargo xtask compose-test"]
async fn the_compose_file_runs_a_call() {
    let started = Instant::now();
    let stack = Stack::up();
    stack.wait_healthy(&["nats", "postgres", "actix-api", "webtransport-server"], HEALTHY_WITHIN);
    println!("compose: up and every health check passing in {:.1} s", started.elapsed().as_secs_f64());
    assert!(relays_ready(&stack.relays()), "healthy but not ready");

    // Two people, one on each relay: NATS carries the room between them.
    let ada = Participant::join(&stack.http, "compose", "Ada", "websocket").await;
    let bob = Participant::join(&stack.http, "compose", "Bob", "webtransport").await;
    for (p, transport) in [(&ada, "WebSocket"), (&bob, "WebTransport")] {
        let stats = p.wait_for_peers(1, Duration::from_secs(30), receiving).await;
        assert_eq!(stats["transport"], transport, "{}", p.name);
        assert_eq!(stats["dropped"], 0, "{}: {stats:#}", p.name);
    }
    println!("compose: Ada (WebSocket) and Bob (WebTransport) see and hear each other");
    ada.quit().await;
    bob.quit().await;

    // The demo camera (the compose file's `demo` profile), decoded by a browser.
    stack.run(&["--profile", "demo", "up", "-d", "bot"]);
    let viewer = Participant::join(&stack.http, "demo", "Viewer", "auto").await;
    let stats = viewer
        .wait_for_peers(1, Duration::from_secs(30), |p| {
            p["name"] == "Demo camera" && p["frames_decoded"].as_u64().unwrap_or(0) >= 60
        })
        .await;
    println!("compose: the demo bot decoded ({} frames)", stats["peers"][0]["frames_decoded"]);
    viewer.quit().await;

    // A meeting, kept in PostgreSQL across a restart of actix-api.
    let mut host = Api::new(&stack.http);
    let (status, _) = host.post("/api/v1/session", json!({"display_name": "Hannah Host"})).await;
    assert_eq!(status.as_u16(), 201);
    let (status, meeting) = host.post("/api/v1/meetings", json!({"name": "Compose standup"})).await;
    assert_eq!(status.as_u16(), 201, "{meeting}");
    let id = meeting["id"].as_str().unwrap().to_owned();
    assert_eq!(stack.sql(&format!("SELECT name FROM meetings WHERE id = '{id}'")), "Compose standup");
    stack.run(&["restart", "actix-api"]);
    stack.wait_healthy(&["actix-api"], HEALTHY_WITHIN);
    let (status, again) = host.get(&format!("/api/v1/meetings/{id}")).await;
    assert_eq!((status.as_u16(), again["name"].as_str()), (200, Some("Compose standup")), "{again}");
    println!("compose: the meeting survived a restart of actix-api");

    // NATS killed and started again: both relays ready again soon after.
    let nats = stack.container("nats");
    let relays = stack.relays();
    podman(&["kill", &nats]);
    let down = Instant::now();
    while relays_ready(&relays) {
        assert!(down.elapsed() < Duration::from_secs(10), "the relays never noticed NATS was gone");
        std::thread::sleep(Duration::from_millis(200));
    }
    podman(&["start", &nats]);
    let restarted = Instant::now();
    while !relays_ready(&relays) {
        assert!(
            restarted.elapsed() < READY_AFTER_NATS,
            "the relays were not ready within {READY_AFTER_NATS:?} of NATS"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("compose: relays ready {:.1} s after NATS started again", restarted.elapsed().as_secs_f64());
    drop(stack);
}
