//! `cargo xtask bench-client`: the web client measured in headless Chromium on loopback.
//! For each transport and camera size, two browsers join a room through kiosk links (which join
//! without a click; the benchmark issues them with `actix-api --issue-kiosk-token`):
//! - join time: from the second page starting to load to its first remote frame drawn;
//! - glass-to-glass latency: the capture wall-clock time carried in each frame's metadata
//!   against the wall-clock time the receiver draws it (same machine, same clock), both ways.

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
    #[arg(long, value_delimiter = ',', default_values_t = ["640x480".to_string(), "1280x720".to_string()])]
    resolution: Vec<String>,
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
    status(cargo().args(["build", "--release", "--locked", "-p", "actix-api"]))?;
    let root = web_root.to_string_lossy().into_owned();
    let (server, http, _) = start_server_with(None, &[("WEB_ROOT", &root), ("TOKEN_SECRET", KIOSK_SECRET)])?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut cases = Vec::new();
    for transport in &args.transport {
        for resolution in &args.resolution {
            println!("xtask: bench-client {transport} {resolution}: {} s", args.duration);
            cases.push(runtime.block_on(run_case(&http, transport, resolution, &args))?);
        }
    }
    let relay = usage(server.0.id())?;
    println!("\nmachine: {}", machine());
    println!(
        "{:<13} {:>12} {:>9} {:>8} {:>9} {:>11} {:>9} {:>11} {:>7} {:>7} {:>7} {:>8} {:>6} {:>9} {:>9}",
        "transport",
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
        "arr p50/95"
    );
    for c in &cases {
        let (p50, p95, max) = percentiles(&c.latency);
        println!(
            "{:<13} {:>12} {:>9} {:>8.0} {:>9.0} {:>11.0} {:>9.0} {:>11.0} {:>7.1} {:>7.1} {:>7.1} {:>8} {:>6.1} {:>10} {:>10}",
            c.transport,
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
            p50_95(&c.arrival)
        );
    }
    println!("join ms: from the page starting to load to the first remote frame drawn; → columns: from the join");
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

async fn stats(browser: &Browser) -> Value {
    let text = browser.eval("return window.videocallStats ? window.videocallStats() : '{}'").await.unwrap_or_default();
    serde_json::from_str(text.as_str().unwrap_or("{}")).unwrap_or(Value::Null)
}

/// Waits until the page's first peer has drawn a frame; returns the page's stats.
async fn first_frame(browser: &Browser, limit: Duration) -> Result<Value> {
    let started = Instant::now();
    loop {
        let s = stats(browser).await;
        if s["peers"][0]["first_frame_ms"].as_f64().is_some() {
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

async fn run_case(http: &str, transport: &str, resolution: &str, args: &ClientBenchArgs) -> Result<Case> {
    let room = format!("bench-{transport}-{resolution}");
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
    let bob = Browser::launch().await?;
    bob.goto(&link("Bob")).await?;
    let joined = first_frame(&bob, Duration::from_secs(20)).await?;
    let join_ms = joined["peers"][0]["first_frame_ms"].as_f64().unwrap_or(f64::NAN);
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
    let click_to_key_ms = joined["peers"][0]["key_at_ms"].as_f64().unwrap_or(f64::NAN) - clicked;
    let click_to_frame_ms = join_ms - clicked;
    first_frame(&ada, Duration::from_secs(20)).await?;

    // Samples from after the warm-up only.
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let mut skip = Vec::new();
    for b in [&ada, &bob] {
        skip.push(stats(b).await["peers"][0]["latency_ms"].as_array().map_or(0, Vec::len));
    }
    let before: Vec<u64> = [stats(&ada).await, stats(&bob).await]
        .iter()
        .map(|s| s["peers"][0]["frames_decoded"].as_u64().unwrap_or(0))
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latency = Vec::new();
    let (mut arrival, mut encode) = (Vec::new(), Vec::new());
    let mut decoded = 0;
    for (i, b) in [&ada, &bob].into_iter().enumerate() {
        let s = stats(b).await;
        let samples = s["peers"][0]["latency_ms"].as_array().cloned().unwrap_or_default();
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
        arrival.extend(recent(&s["peers"][0]["arrival_ms"]));
        encode.extend(recent(&s["encode_ms"]));
        decoded += s["peers"][0]["frames_decoded"].as_u64().unwrap_or(0) - before[i];
    }
    ada.quit().await;
    bob.quit().await;
    Ok(Case {
        transport: transport.to_owned(),
        resolution: resolution.to_owned(),
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
