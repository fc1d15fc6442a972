//! `cargo xtask bench-client`: the web client measured in headless Chromium on loopback.
//! For each transport and camera size, two browsers join a room through kiosk links (which join
//! without a click; the benchmark issues them with `actix-api --issue-kiosk-token`):
//! - join time: from the second page starting to load to its first remote frame decoded;
//! - glass-to-glass latency: the capture wall-clock time carried in each frame's metadata
//!   against the wall-clock time the receiver has it decoded and hands it to its drawing worker
//!   (same machine, same clock), both ways;
//! - the page's main thread: the share of each second it was busy (Chrome's own
//!   `Performance.getMetrics`: `TaskDuration` for any task, `ScriptDuration` for script).
//!
//! With `--participants 6`, four native participants (`bot camera` at the same size, real
//! H.264 through the call engine) join the two pages. `--senders 5,9` adds the receiving
//! scenario: one page, sending its own 640x360 camera, with N `bot camera`s at 640x360 30 fps:
//! its main thread, the frames it decodes per peer and their size, once with the cameras
//! sending one layer (`bot camera --no-simulcast`: the page gets every camera at full size,
//! as before simulcast) and once with simulcast (the page gets the layer each tile needs).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;
use testkit::Browser;

use crate::bench::{machine, start_server_with, usage};
use crate::{cargo, status, web};

#[derive(Debug, Args)]
pub struct ClientBenchArgs {
    /// Seconds of call per case, after joining.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Latency samples from the first seconds are left out (encoder and jitter start-up).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Camera sizes.
    #[arg(long, value_delimiter = ',', default_values_t = ["640x360".to_string(), "1280x720".to_string()])]
    resolution: Vec<String>,
    /// People in the room per case: two pages, and native cameras for the rest.
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 6])]
    participants: Vec<usize>,
    /// The receiving scenario: one page with this many native 640x360 senders (0: skipped).
    #[arg(long, value_delimiter = ',', default_values_t = [5usize, 9])]
    senders: Vec<usize>,
    /// In the receiving scenario, also sample the page's main thread with V8's profiler for
    /// this many seconds and print where it spends them (the functions seen most).
    #[arg(long)]
    profile: Option<u64>,
    /// Put this video codec first (avc1.42e028, vp8, vp09.00.10.08); default: the client's choice.
    #[arg(long)]
    codec: Option<String>,
    /// Transports.
    #[arg(long, value_delimiter = ',', default_values_t = ["webtransport".to_string(), "websocket".to_string()])]
    transport: Vec<String>,
}

struct Case {
    transport: String,
    resolution: String,
    participants: usize,
    /// Main-thread busy share of the two pages, per cent: any task, script.
    main_busy: f64,
    script_busy: f64,
    join_ms: f64,
    /// The same from the HTML's arrival: without the browser's own start-up.
    join_from_html_ms: f64,
    /// From the join (automatic, as soon as camera and key are ready) to: connected, the
    /// peer's media key, the first frame drawn.
    click_to_connected_ms: f64,
    click_to_key_ms: f64,
    click_to_frame_ms: f64,
    latency: Vec<f64>,
    /// Capture to arrival at the receiver (before decoding), and capture to encoded.
    arrival: Vec<f64>,
    encode: Vec<f64>,
    fps: f64,
    codec: String,
}

pub fn run(args: ClientBenchArgs) -> Result<()> {
    let web_root = web::build()?;
    status(cargo().args(["build", "--release", "--locked", "-p", "actix-api", "-p", "bot"]))?;
    let root = web_root.to_string_lossy().into_owned();
    let (server, http, _) = start_server_with(None, &[("WEB_ROOT", &root), ("TOKEN_SECRET", KIOSK_SECRET)])?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut cases = Vec::new();
    for &participants in &args.participants {
        for transport in &args.transport {
            for resolution in &args.resolution {
                println!("xtask: bench-client {transport} {resolution}, {participants} people: {} s", args.duration);
                cases.push(runtime.block_on(run_case(&http, transport, resolution, participants, &args))?);
            }
        }
    }
    let mut receiving = Vec::new();
    for &n in args.senders.iter().filter(|&&n| n > 0) {
        for simulcast in [false, true] {
            let how = if simulcast { "simulcast, subscribed by tile" } else { "one layer each" };
            println!("xtask: bench-client: one page receiving {n} native 640x360 senders ({how}): {} s", args.duration);
            receiving.push(runtime.block_on(run_senders(&http, n, simulcast, &args))?);
        }
    }
    let relay = usage(server.0.id())?;
    println!("\nmachine: {}", machine());
    println!(
        "{:<13} {:>6} {:>12} {:>9} {:>8} {:>9} {:>11} {:>9} {:>11} {:>7} {:>7} {:>7} {:>8} {:>6} {:>9} {:>9} {:>7} {:>8}",
        "transport",
        "people",
        "codec",
        "camera",
        "join ms",
        "from html",
        "→connected",
        "→key",
        "→1st frame",
        "p50 ms",
        "p95 ms",
        "max ms",
        "samples",
        "fps",
        "enc p50/95",
        "arr p50/95",
        "main %",
        "script %"
    );
    for c in &cases {
        let (p50, p95, max) = percentiles(&c.latency);
        println!(
            "{:<13} {:>6} {:>12} {:>9} {:>8.0} {:>9.0} {:>11.0} {:>9.0} {:>11.0} {:>7.1} {:>7.1} {:>7.1} {:>8} {:>6.1} {:>10} {:>10} {:>7.1} {:>8.1}",
            c.transport,
            c.participants,
            c.codec,
            c.resolution,
            c.join_ms,
            c.join_from_html_ms,
            c.click_to_connected_ms,
            c.click_to_key_ms,
            c.click_to_frame_ms,
            p50,
            p95,
            max,
            c.latency.len(),
            c.fps,
            p50_95(&c.encode),
            p50_95(&c.arrival),
            c.main_busy,
            c.script_busy
        );
    }
    if !receiving.is_empty() {
        println!("\none page (its own 640x360 camera) receiving N native 640x360 30 fps senders:");
        println!(
            "{:>7} {:>10} {:>7} {:>8} {:>14} {:>21}  sizes decoded",
            "senders", "simulcast", "main %", "script %", "browser cores", "fps per peer min/mean"
        );
        for r in &receiving {
            println!(
                "{:>7} {:>10} {:>7.1} {:>8.1} {:>14.2} {:>14.1}/{:<6.1}  {}",
                r.senders,
                if r.simulcast { "yes" } else { "no" },
                r.main_busy,
                r.script_busy,
                r.browser_cores,
                r.fps_min,
                r.fps_mean,
                r.sizes
            );
        }
    }
    println!(
        "main %, script %: the page's main thread, share of each second busy (Chrome's TaskDuration, ScriptDuration)"
    );
    println!("join ms: from the page starting to load to the first remote frame decoded; → columns: from the join");
    println!("relay: {:.1} CPU s, peak {:.1} MB", relay.cpu_seconds, relay.peak_rss_mb);
    drop(server);
    Ok(())
}

fn p50_95(samples: &[f64]) -> String {
    let (p50, p95, _) = percentiles(samples);
    format!("{p50:.0}/{p95:.0}")
}

/// (p50, p95, max) of `samples`.
fn percentiles(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), sorted[sorted.len() - 1])
}

/// The figures of the peer called `name` on a page.
fn peer<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["peers"].as_array().and_then(|p| p.iter().find(|p| p["name"] == name)).unwrap_or(&Value::Null)
}

/// Chrome's busy counters of a page's main thread: (timestamp, task, script), seconds.
async fn busy(browser: &Browser) -> Result<(f64, f64, f64)> {
    let m = browser.performance_metrics().await?;
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    Ok((get("Timestamp"), get("TaskDuration"), get("ScriptDuration")))
}

/// Per cent of the time between two [`busy`] readings: (any task, script).
fn busy_share(before: (f64, f64, f64), after: (f64, f64, f64)) -> (f64, f64) {
    let span = (after.0 - before.0).max(1e-9);
    (100.0 * (after.1 - before.1) / span, 100.0 * (after.2 - before.2) / span)
}

/// `bot camera`s sending `width`x`height` at 30 fps into `room` (killed when dropped); with
/// `simulcast`, in layers as the page subscribes, else as one.
fn cameras(http: &str, room: &str, n: usize, resolution: &str, simulcast: bool) -> Result<Vec<testkit::KillOnDrop>> {
    let (width, height) = resolution.split_once('x').context("a resolution is WIDTHxHEIGHT")?;
    (0..n)
        .map(|i| {
            let child = std::process::Command::new(crate::target_dir().join("release/bot"))
                .args(["camera", "--server", http, "--room", room, "--name", &format!("Camera {}", i + 1)])
                .args(["--width", width, "--height", height, "--fps", "30", "--noise", "6", "--bitrate", "600000"])
                .args((!simulcast).then_some("--no-simulcast"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting bot camera")?;
            Ok(testkit::KillOnDrop(child))
        })
        .collect()
}

struct Receiving {
    senders: usize,
    simulcast: bool,
    /// The sizes of the cameras the page decoded, and how many of each ("320x180 ×5").
    sizes: String,
    /// CPU the whole browser used (its page, the call's worker, decoders, GPU process), cores.
    browser_cores: f64,
    main_busy: f64,
    script_busy: f64,
    fps_min: f64,
    fps_mean: f64,
}

/// One page, its own 640x360 camera on, receiving `n` native 640x360 cameras.
async fn run_senders(http: &str, n: usize, simulcast: bool, args: &ClientBenchArgs) -> Result<Receiving> {
    let room = format!("bench-senders-{n}-{}", if simulcast { "simulcast" } else { "one-layer" });
    let kiosk = kiosk_token(&room)?;
    let ada = Browser::launch().await?;
    ada.goto(&format!("{http}/room/{room}?name=Ada&kiosk={kiosk}&resolution=640x360")).await?;
    let _cameras = cameras(http, &room, n, "640x360", simulcast)?;
    let started = Instant::now();
    loop {
        let s = stats(&ada).await;
        let drawing =
            s["peers"].as_array().map_or(0, |p| p.iter().filter(|p| p["frames_decoded"].as_u64() > Some(0)).count());
        if drawing >= n {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the page decodes {drawing} of {n} senders after 30 s: {s}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let frames = |s: &Value| -> Vec<u64> {
        s["peers"].as_array().map_or(vec![], |p| p.iter().map(|p| p["frames_decoded"].as_u64().unwrap_or(0)).collect())
    };
    let (before, t0, cpu0) = (frames(&stats(&ada).await), busy(&ada).await?, ada.cpu_seconds());
    let clock = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let last = stats(&ada).await;
    let (after, t1, cpu1) = (frames(&last), busy(&ada).await?, ada.cpu_seconds());
    let elapsed = clock.elapsed().as_secs_f64();
    let mut sizes = std::collections::BTreeMap::new();
    for p in last["peers"].as_array().into_iter().flatten() {
        *sizes.entry((p["width"].as_u64().unwrap_or(0), p["height"].as_u64().unwrap_or(0))).or_insert(0) += 1;
    }
    let sizes = sizes.iter().map(|((w, h), n)| format!("{w}x{h} ×{n}")).collect::<Vec<_>>().join(", ");
    if let Some(seconds) = args.profile {
        let profile = ada.cpu_profile(Duration::from_secs(seconds)).await?;
        println!("xtask:   where the main thread is, {n} senders ({seconds} s of samples, idle included):");
        for (name, share) in profile.iter().take(25) {
            println!("xtask:     {:5.1} %  {name}", share * 100.0);
        }
    }
    let fps: Vec<f64> = after.iter().zip(&before).map(|(a, b)| (a - b) as f64 / elapsed).collect();
    let (main_busy, script_busy) = busy_share(t0, t1);
    ada.quit().await;
    Ok(Receiving {
        senders: n,
        simulcast,
        sizes,
        browser_cores: (cpu1 - cpu0) / elapsed,
        main_busy,
        script_busy,
        fps_min: fps.iter().copied().fold(f64::INFINITY, f64::min),
        fps_mean: fps.iter().sum::<f64>() / fps.len().max(1) as f64,
    })
}

async fn stats(browser: &Browser) -> Value {
    let text = browser.eval("return window.videocallStats ? window.videocallStats() : '{}'").await.unwrap_or_default();
    serde_json::from_str(text.as_str().unwrap_or("{}")).unwrap_or(Value::Null)
}

/// Waits until the page has drawn a frame of `from`; returns the page's stats.
async fn first_frame(browser: &Browser, from: &str, limit: Duration) -> Result<Value> {
    let started = Instant::now();
    loop {
        let s = stats(browser).await;
        if peer(&s, from)["first_frame_ms"].as_f64().is_some() {
            return Ok(s);
        }
        if started.elapsed() > limit {
            bail!("no remote frame within {limit:?}: {s}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The benchmark server's token secret, so that it can issue kiosk tokens for it.
const KIOSK_SECRET: &str = "bench secret that is long enough for HS256";

/// A kiosk token for `room`, from the server binary itself.
fn kiosk_token(room: &str) -> Result<String> {
    let output = std::process::Command::new(crate::target_dir().join("release/actix-api"))
        .args(["--issue-kiosk-token", room])
        .env("TOKEN_SECRET", KIOSK_SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .context("running actix-api --issue-kiosk-token")?;
    if !output.status.success() {
        bail!("actix-api --issue-kiosk-token failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

async fn run_case(
    http: &str,
    transport: &str,
    resolution: &str,
    participants: usize,
    args: &ClientBenchArgs,
) -> Result<Case> {
    let room = format!("bench-{transport}-{resolution}-{participants}");
    let codec = args.codec.as_deref().map(|c| format!("&codec={c}")).unwrap_or_default();
    let kiosk = kiosk_token(&room)?;
    let link = |name: &str| {
        format!("{http}/room/{room}?name={name}&kiosk={kiosk}&transport={transport}&resolution={resolution}{codec}")
    };
    let ada = Browser::launch().await?;
    ada.goto(&link("Ada")).await?;
    ada.wait_for(
        "const c = document.querySelector('#connection'); return !!c && c.dataset.state === 'connected'",
        Duration::from_secs(20),
        |v| v == &Value::Bool(true),
    )
    .await
    .context("the first participant never connected")?;
    let _cameras = cameras(http, &room, participants.saturating_sub(2), resolution, true)?;
    let bob = Browser::launch().await?;
    bob.goto(&link("Bob")).await?;
    let joined = first_frame(&bob, "Ada", Duration::from_secs(20)).await?;
    let join_ms = peer(&joined, "Ada")["first_frame_ms"].as_f64().unwrap_or(f64::NAN);
    let marks = bob
        .eval("return performance.getEntriesByType('mark').map(m => m.name.replace('videocall:', '') + ' ' + Math.round(m.startTime)).join(', ')")
        .await
        .unwrap_or_default();
    let response_end = bob
        .eval("return Math.round(performance.getEntriesByType('navigation')[0].responseEnd)")
        .await
        .unwrap_or_default();
    println!(
        "xtask:   page timeline (ms): html {response_end}, {}, first frame {join_ms:.0}",
        marks.as_str().unwrap_or("")
    );
    let join_from_html_ms = join_ms - response_end.as_f64().unwrap_or(f64::NAN);
    let clicked = joined["joined_at_ms"].as_f64().unwrap_or(f64::NAN);
    let click_to_connected_ms = joined["connected_at_ms"].as_f64().unwrap_or(f64::NAN) - clicked;
    let click_to_key_ms = peer(&joined, "Ada")["key_at_ms"].as_f64().unwrap_or(f64::NAN) - clicked;
    let click_to_frame_ms = join_ms - clicked;
    first_frame(&ada, "Bob", Duration::from_secs(20)).await?;

    // Samples from after the warm-up only.
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let pages = [(&ada, "Bob"), (&bob, "Ada")];
    let mut skip = Vec::new();
    for (b, other) in pages {
        skip.push(peer(&stats(b).await, other)["latency_ms"].as_array().map_or(0, Vec::len));
    }
    let mut before = Vec::new();
    for (b, other) in pages {
        before.push(peer(&stats(b).await, other)["frames_decoded"].as_u64().unwrap_or(0));
    }
    let busy_before = [busy(&ada).await?, busy(&bob).await?];
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let busy_after = [busy(&ada).await?, busy(&bob).await?];
    let shares: Vec<(f64, f64)> = busy_before.iter().zip(&busy_after).map(|(b, a)| busy_share(*b, *a)).collect();
    let mut latency = Vec::new();
    let (mut arrival, mut encode) = (Vec::new(), Vec::new());
    let mut decoded = 0;
    for (i, (b, other)) in pages.into_iter().enumerate() {
        let s = stats(b).await;
        let from = peer(&s, other);
        let samples = from["latency_ms"].as_array().cloned().unwrap_or_default();
        latency.extend(samples.iter().skip(skip[i]).filter_map(Value::as_f64));
        let recent = |v: &Value| {
            v.as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .rev()
                .take(200)
                .filter_map(|x| x.as_f64())
                .collect::<Vec<_>>()
        };
        arrival.extend(recent(&from["arrival_ms"]));
        encode.extend(recent(&s["encode_ms"]));
        decoded += from["frames_decoded"].as_u64().unwrap_or(0).saturating_sub(before[i]);
    }
    ada.quit().await;
    bob.quit().await;
    Ok(Case {
        transport: transport.to_owned(),
        resolution: resolution.to_owned(),
        participants,
        main_busy: shares.iter().map(|s| s.0).sum::<f64>() / 2.0,
        script_busy: shares.iter().map(|s| s.1).sum::<f64>() / 2.0,
        join_ms,
        join_from_html_ms,
        click_to_connected_ms,
        click_to_key_ms,
        click_to_frame_ms,
        latency,
        arrival,
        encode,
        fps: decoded as f64 / elapsed / 2.0,
        codec: joined["codec"].as_str().unwrap_or_default().to_owned(),
    })
}
