//! `cargo xtask bench`: starts the server(s) as separate processes, runs `bot load` against
//! them, and prints delivery, loss, latency, and the servers' CPU time and peak memory.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use testkit::{KillOnDrop, LinkConfig, LossyLink, NatsServer, free_port};

use crate::{cargo, setup, status, target_dir};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// One actix-api with the in-process bus.
    Local,
    /// One actix-api publishing through a real nats-server.
    Nats,
    /// Everyone over WebTransport, to the same single-node process.
    Webtransport,
    /// Half the room over WebSocket, half over WebTransport.
    Mixed,
    /// WebTransport through a lossy, delaying link, for each stream mode and loss rate.
    Loss,
    /// `bot flood` (sessions beginning packets on every stream, never finishing) beside a
    /// WebTransport room: the relay's memory and the room's delivery.
    Flood,
    /// The `local` room with one hostile participant flooding it (`bot load --flooders 1`):
    /// compare its loss and p99 with `local`'s.
    Flooder,
    /// The `local` room with simulcast (`bot load --simulcast`): three layers per sender. Each
    /// receiver takes the small layer of all but the speaker's large one (everyone talking, then
    /// three talkers), then shows the web client's speaker view and grid page (three talkers).
    Simulcast,
    /// `simulcast` through a real nats-server.
    SimulcastNats,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Local => "ws, local bus",
            Self::Nats => "ws, nats",
            Self::Webtransport => "wt, local bus",
            Self::Mixed => "ws+wt, local",
            Self::Loss => "wt, lossy link",
            Self::Flood => "wt, beside a flood",
            Self::Flooder => "ws, with a flooder",
            Self::Simulcast => "ws, simulcast",
            Self::SimulcastNats => "ws, simulcast, nats",
        }
    }

    fn transport(self) -> &'static str {
        match self {
            Self::Local | Self::Nats | Self::Flooder | Self::Simulcast | Self::SimulcastNats => "websocket",
            Self::Webtransport | Self::Loss | Self::Flood => "webtransport",
            Self::Mixed => "mixed",
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which scenarios (default: all).
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,
    /// Participants in the room.
    #[arg(long, default_value_t = 25)]
    participants: usize,
    /// Seconds of publishing per scenario.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Loss scenario: loss rates in percent, each way.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.5, 2.0])]
    loss: Vec<f64>,
    /// Loss scenario: delay added each way, milliseconds.
    #[arg(long, default_value_t = 20)]
    one_way_delay_ms: u64,
    /// Loss scenario: participants (the link is a userspace proxy, so fewer than the others).
    #[arg(long, default_value_t = 4)]
    loss_participants: usize,
    /// Loss scenario: video bitrate per participant, bits/s.
    #[arg(long, default_value_t = 600_000)]
    loss_video_bitrate: u64,
}

/// The simulcast scenario's rows: (name, `bot load --view`, `--talkers`). The first is the
/// room `simulcast-nats` repeats through NATS; three talkers is a meeting where the others are
/// muted.
const SIMULCAST_MIXES: [(&str, &str, Option<usize>); 4] = [
    ("ws, simulcast", "thumbnails", None),
    ("ws, simulcast, 3 talk", "thumbnails", Some(3)),
    ("ws, speaker view, 3 talk", "speaker", Some(3)),
    ("ws, grid page, 3 talk", "grid", Some(3)),
];

/// The stream modes compared under loss.
const STREAM_MODES: [&str; 3] = ["per-packet", "per-sender", "single"];

/// CPU seconds and peak resident memory of a process, from /proc.
pub struct ProcUsage {
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
}

pub fn usage(pid: u32) -> Result<ProcUsage> {
    let stat = testkit::proc_stat(pid).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(ProcUsage { cpu_seconds: stat.cpu_seconds, peak_rss_mb: hwm_kb / 1024.0 })
}

pub fn wait_ready(http: &str) -> Result<()> {
    let started = Instant::now();
    let address = http.trim_start_matches("http://");
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            use std::io::{Read, Write};
            let _ = write!(stream, "GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("server at {http} not ready within 15 s")
}

struct Row {
    name: String,
    report: serde_json::Value,
    server: ProcUsage,
    nats: Option<ProcUsage>,
    wall: f64,
}

/// One run of `bot load` against a fresh server.
struct Run<'a> {
    scenario: Scenario,
    name: String,
    participants: usize,
    duration: u64,
    /// More `bot load` arguments.
    bot_args: Vec<String>,
    /// Put WebTransport behind a lossy link.
    link: Option<LinkConfig>,
    nats: Option<&'a NatsServer>,
}

/// A release actix-api on free ports: (process, http base URL, WebTransport address).
fn start_server(nats: Option<&NatsServer>) -> Result<(KillOnDrop, String, SocketAddr)> {
    start_server_with(nats, &[])
}

/// The same with more environment (`WEB_ROOT` for the browser benchmark).
pub fn start_server_with(nats: Option<&NatsServer>, env: &[(&str, &str)]) -> Result<(KillOnDrop, String, SocketAddr)> {
    let port = free_port();
    let http = format!("http://127.0.0.1:{port}");
    let webtransport: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let mut server = Command::new(target_dir().join("release/actix-api"));
    server
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("WEBTRANSPORT_LISTEN", webtransport.to_string())
        .env("METRICS_LISTEN_ADDR", "127.0.0.1:0")
        // One load generator stands in for a room of people at as many addresses.
        .env("RATE_LIMIT_TOKENS_PER_MINUTE", "6000")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    if let Some(nats) = nats {
        server.env("NATS_URL", nats.url()).env("TOKEN_SECRET", "bench secret that is long enough for HS256");
    }
    let server = KillOnDrop(server.spawn().context("starting actix-api")?);
    wait_ready(&http)?;
    Ok((server, http, webtransport))
}

fn run_once(run: Run<'_>) -> Result<Row> {
    let (server, http, webtransport) = start_server(run.nats)?;
    let link = run.link.map(|config| LossyLink::start(webtransport, config)).transpose()?;
    let server_before = usage(server.0.id())?;
    let nats_before = run.nats.and_then(|n| n.pid()).map(usage).transpose()?;
    let started = Instant::now();
    let mut bot = Command::new(target_dir().join("release/bot"));
    bot.args(["load", "--json", "--server", &http, "--participants", &run.participants.to_string()])
        .args(["--transport", run.scenario.transport()])
        .args(["--duration", &run.duration.to_string()])
        .args(&run.bot_args)
        .stderr(Stdio::inherit());
    if let Some(link) = &link {
        bot.args(["--webtransport-url", &format!("https://{}/", link.addr())]);
    }
    let output = bot.output().context("running bot load")?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("bot load failed: {}", output.status);
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).context("reading bot load's JSON")?;
    let server_after = usage(server.0.id())?;
    let nats_usage = match (run.nats, nats_before) {
        (Some(n), Some(before)) => {
            let after = usage(n.pid().context("nats pid")?)?;
            Some(ProcUsage { cpu_seconds: after.cpu_seconds - before.cpu_seconds, peak_rss_mb: after.peak_rss_mb })
        }
        _ => None,
    };
    Ok(Row {
        name: run.name,
        report,
        server: ProcUsage {
            cpu_seconds: server_after.cpu_seconds - server_before.cpu_seconds,
            peak_rss_mb: server_after.peak_rss_mb,
        },
        nats: nats_usage,
        wall,
    })
}

/// A WebTransport room publishing while `bot flood` runs against the same relay.
fn run_flood(args: &BenchArgs) -> Result<Row> {
    let (server, http, _) = start_server(None)?;
    let before = usage(server.0.id())?;
    let started = Instant::now();
    let load = Command::new(target_dir().join("release/bot"))
        .args(["load", "--json", "--quiet", "--server", &http, "--transport", "webtransport"])
        .args(["--participants", "6", "--duration", &args.duration.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("running bot load")?;
    let flood = Command::new(target_dir().join("release/bot"))
        .args(["flood", "--server", &http])
        .output()
        .context("running bot flood")?;
    let load = load.wait_with_output()?;
    let wall = started.elapsed().as_secs_f64();
    if !flood.status.success() || !load.status.success() {
        bail!("bot flood ({}) or bot load ({}) failed", flood.status, load.status);
    }
    let after = usage(server.0.id())?;
    println!("xtask: relay RSS before the flood {:.1} MB, peak {:.1} MB", before.peak_rss_mb, after.peak_rss_mb);
    println!("xtask: bot flood: {}", String::from_utf8_lossy(&flood.stdout));
    Ok(Row {
        name: Scenario::Flood.name().to_owned(),
        report: serde_json::from_slice(&load.stdout).context("reading bot load's JSON")?,
        server: ProcUsage { cpu_seconds: after.cpu_seconds - before.cpu_seconds, peak_rss_mb: after.peak_rss_mb },
        nats: None,
        wall,
    })
}

fn run_scenario(scenario: Scenario, args: &BenchArgs) -> Result<Vec<Row>> {
    let nats = match scenario {
        Scenario::Nats | Scenario::SimulcastNats => Some(NatsServer::start()?),
        _ => None,
    };
    if scenario == Scenario::Flood {
        return Ok(vec![run_flood(args)?]);
    }
    if scenario == Scenario::Simulcast {
        let mut rows = Vec::new();
        for (name, view, talkers) in SIMULCAST_MIXES {
            println!("xtask: bench simulcast: {name}");
            let mut bot_args = vec!["--simulcast".into(), "--view".into(), view.into()];
            if let Some(talkers) = talkers {
                bot_args.extend(["--talkers".into(), talkers.to_string()]);
            }
            rows.push(run_once(Run {
                scenario,
                name: name.to_owned(),
                participants: args.participants,
                duration: args.duration,
                bot_args,
                link: None,
                nats: None,
            })?);
        }
        return Ok(rows);
    }
    if scenario != Scenario::Loss {
        let run = Run {
            scenario,
            name: scenario.name().to_owned(),
            participants: args.participants,
            duration: args.duration,
            bot_args: match scenario {
                Scenario::Flooder => vec!["--flooders".into(), "1".into()],
                Scenario::SimulcastNats => vec!["--simulcast".into()],
                _ => Vec::new(),
            },
            link: None,
            nats: nats.as_ref(),
        };
        let row = run_once(run)?;
        if let Some(flood) = row.report.get("flood") {
            println!("xtask: the flooder: {flood}");
        }
        return Ok(vec![row]);
    }
    let mut rows = Vec::new();
    for &loss in &args.loss {
        for mode in STREAM_MODES {
            println!("xtask: bench loss {loss} % each way, {} ms each way, streams {mode}", args.one_way_delay_ms);
            let link = LinkConfig {
                one_way_delay: Duration::from_millis(args.one_way_delay_ms),
                loss: loss / 100.0,
                seed: 0x5eed,
            };
            rows.push(run_once(Run {
                scenario,
                name: format!("{mode}, {loss}%"),
                participants: args.loss_participants,
                duration: args.duration,
                bot_args: vec![
                    "--streams".into(),
                    mode.into(),
                    "--video-bitrate".into(),
                    args.loss_video_bitrate.to_string(),
                ],
                link: Some(link),
                nats: None,
            })?);
        }
    }
    Ok(rows)
}

/// "2 cores, <CPU model>": figures mean little without it.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default();
    format!("{cpus} cores, {model}")
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.scenario.is_empty() || args.scenario.iter().any(|s| matches!(s, Scenario::Nats | Scenario::SimulcastNats)) {
        setup::ensure_commands(&[("nats-server", "nats-server")])?;
    }
    status(cargo().args(["build", "--release", "--locked", "-p", "actix-api", "-p", "bot"]))?;
    let scenarios = if args.scenario.is_empty() {
        vec![
            Scenario::Local,
            Scenario::Flooder,
            Scenario::Nats,
            Scenario::Simulcast,
            Scenario::SimulcastNats,
            Scenario::Webtransport,
            Scenario::Mixed,
            Scenario::Loss,
            Scenario::Flood,
        ]
    } else {
        args.scenario.clone()
    };
    let mut rows = Vec::new();
    for scenario in scenarios {
        println!("xtask: bench {scenario:?}: {} s each", args.duration);
        rows.extend(run_scenario(scenario, &args)?);
    }
    println!("\nmachine: {}", machine());
    println!(
        "{:<24} {:>12} {:>8} {:>11} {:>8} {:>10} {:>7} {:>7} {:>7} {:>7} {:>16} {:>9} {:>12} {:>14}",
        "scenario",
        "delivered/s",
        "MB/s",
        "Mbit/s/rcv",
        "loss %",
        "reordered",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "relay CPU s (cores)",
        "µs/pkt",
        "relay RSS MB",
        "nats CPU s"
    );
    for row in &rows {
        let r = &row.report;
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let l = |k: &str| r["latency_ms"][k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<24} {:>12.0} {:>8.1} {:>11.2} {:>8.3} {:>10} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>11.1} ({:>4.2}) {:>9.2} {:>12.1} {:>14}",
            row.name,
            f("delivered_packets_per_sec"),
            f("delivered_mbytes_per_sec"),
            f("downlink_mbit_per_receiver"),
            f("loss_percent"),
            r["reordered"].as_u64().unwrap_or(0),
            l("p50"),
            l("p95"),
            l("p99"),
            l("max"),
            row.server.cpu_seconds,
            row.server.cpu_seconds / row.wall,
            // Relay CPU per delivered packet: what forwarding one packet to one receiver costs.
            row.server.cpu_seconds * 1e6 / f("delivered_packets").max(1.0),
            row.server.peak_rss_mb,
            row.nats.as_ref().map_or("-".into(), |n| format!("{:.1}", n.cpu_seconds)),
        );
    }
    Ok(())
}
