//! `cargo xtask run | test | bench`: the project's own commands.

mod bench;
mod bench_bot;
mod bench_client;
mod compose;
mod dist;
mod selfhost;
mod setup;
mod vm;
mod web;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and benchmark the platform")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the platform on this machine: one process, in-process bus, meetings in a SQLite file,
    /// no NATS and no database server.
    /// Extra arguments go to actix-api (see `cargo xtask run -- --help`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the web client into target/web (wasm, its JavaScript glue, static files).
    Web,
    /// The bot's V4L2 capture (vivid) and memory-to-memory encoding (vicodec) against real
    /// kernel drivers, in a QEMU VM (part of `test`).
    VmTest,
    /// Run every test (installs missing system packages with apt when run as root on Debian). In
    /// CI (`CI` set) a part that cannot run fails the run instead of being skipped.
    Test,
    /// The release build of what ships (actix-api, webtransport-server, bot, the web client)
    /// into one directory: what the container images run, and what CI builds.
    Dist {
        /// Where to put bin/ and web/ (default: target/dist).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Lint the Dockerfile, validate docker-compose.yaml, and lint, render, validate and check
    /// the wiring of the helm chart, offline (part of `test`).
    SelfhostCheck,
    /// docker-compose.yaml brought up with podman from images built from the Dockerfile (the
    /// base images it names made from Debian's packages where they cannot be pulled), and calls
    /// held through it (part of `test`).
    ComposeTest {
        /// Build the images from source in the Dockerfile's build stage (the default packages
        /// the release build `cargo xtask dist` makes here).
        #[arg(long)]
        from_source: bool,
    },
    /// Start the server(s) and run the standard load scenarios, printing figures.
    Bench(bench::BenchArgs),
    /// The web client in headless Chromium: join time and glass-to-glass latency, printed.
    BenchClient(bench_client::ClientBenchArgs),
    /// The camera bot: software encoder throughput and CPU per frame, then capture-to-send
    /// latency publishing into a local relay, at 640x480 and 1280x720.
    BenchBot(bench_bot::BotBenchArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Run { args } => run(args),
        Task::Web => web::build().map(drop),
        Task::Test => test(),
        Task::VmTest => vm::prerequisites().and_then(|()| vm::run()),
        Task::Dist { out } => dist::build(&out.unwrap_or_else(|| target_dir().join("dist"))).map(drop),
        Task::SelfhostCheck => selfhost::run(),
        Task::ComposeTest { from_source } => compose::run(from_source),
        Task::Bench(args) => bench::run(args),
        Task::BenchClient(args) => bench_client::run(args),
        Task::BenchBot(args) => bench_bot::run(args),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where cargo puts build output.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command to completion; fails with its name if it fails.
pub fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    println!("xtask: {shown}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn run(args: Vec<String>) -> Result<()> {
    let web_root = web::build()?;
    status(cargo().args(["build", "--release", "--locked", "-p", "actix-api"]))?;
    // Every interface, so that other computers can join: plain HTTP for this computer, HTTPS
    // (a self-signed certificate kept beside the database) for the others. With a domain, the
    // standard ports: the CA checks the name on port 80, and links carry no port on 443.
    let domain = std::env::var_os("DOMAIN").is_some_and(|d| !d.is_empty())
        || args.iter().any(|a| a == "--domain" || a.starts_with("--domain="));
    let (http_default, https_default) =
        if domain { ("0.0.0.0:80", "0.0.0.0:443") } else { ("0.0.0.0:8080", "0.0.0.0:8443") };
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| http_default.into());
    let https = std::env::var("HTTPS_LISTEN").unwrap_or_else(|_| https_default.into());
    let webtransport = std::env::var("WEBTRANSPORT_LISTEN").unwrap_or_else(|_| "[::]:4433".into());
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite:{}", target_dir().join("videocall.db").display()));
    let metrics = std::env::var("METRICS_LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:9090".into());
    println!("\nxtask: single node (in-process bus, no NATS, SQLite in a file)");
    println!("xtask:   database {database}");
    println!("xtask:   HTTP on tcp {listen}, HTTPS on tcp {https}, WebTransport on udp {webtransport}");
    println!("xtask:   metrics  http://{metrics}/metrics");
    let port = listen.rsplit(':').next().unwrap_or("8080");
    println!("xtask:   load     cargo run --release -p bot -- load --server http://127.0.0.1:{port}");
    println!("xtask: the server prints the addresses to open, here and on other computers of this network\n");
    let server = target_dir().join("release/actix-api");
    status(
        Command::new(server)
            .env("LISTEN_ADDR", &listen)
            .env("HTTPS_LISTEN", &https)
            .env("WEBTRANSPORT_LISTEN", &webtransport)
            .env("WEB_ROOT", &web_root)
            .env("DATABASE_URL", &database)
            .args(args),
    )
}

fn test() -> Result<()> {
    let mut skipped = setup::Skipped::default();
    // NATS for the bus and cluster tests, Chromium for the browser tests, Pebble (an ACME test
    // CA), certutil (a test CA in a browser's trust store) and iproute2 (network namespaces: a
    // second computer) for the HTTPS tests, PostgreSQL's binaries for the tests' own throwaway
    // servers, ffmpeg (ffprobe too) to judge the recordings.
    setup::ensure_commands(&[
        ("nats-server", "nats-server"),
        ("ffprobe", "ffmpeg"),
        ("chromium", "chromium"),
        ("pebble", "pebble"),
        ("certutil", "libnss3-tools"),
        ("ip", "iproute2"),
    ])?;
    setup::ensure_postgres()?;
    setup::ensure_bot_build()?;
    match setup::ensure_rustfmt() {
        Ok(()) => status(cargo().args(["fmt", "--all", "--check"]))?,
        Err(e) => skipped.skip("the formatting check", e)?,
    }
    // Tests that run a server as a separate process need the binaries built beforehand.
    status(cargo().args(["build", "--workspace", "--bins", "--locked"]))?;
    // The browser tests load the web client from WEB_ROOT.
    let web_root = web::build()?;
    status(cargo().args(["test", "--workspace", "--locked"]).env("WEB_ROOT", &web_root))?;
    selfhost::check(&target_dir().join("debug"))?;
    // The container images' build step (`cargo xtask dist`), then the images themselves and the
    // compose file brought up with them.
    match compose::prerequisites() {
        Ok(tool) => compose::test(&tool, false)?,
        Err(e) => {
            dist::build(&target_dir().join("dist"))?;
            skipped.skip("the docker-compose test", e)?;
        }
    }
    match vm::prerequisites() {
        Ok(()) => vm::run()?,
        Err(e) => skipped.skip("the V4L2 VM test", e)?,
    }
    println!("{}", skipped.summary());
    Ok(())
}
