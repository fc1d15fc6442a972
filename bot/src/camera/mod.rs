//! `bot camera`: joins a room and publishes a camera, end-to-end encrypted exactly as the
//! browser does, so a browser in the room decodes it. The source is a V4L2 camera or the
//! synthetic test pattern; the encoder a V4L2 memory-to-memory hardware encoder when there is
//! one, OpenH264 in software otherwise.
//!
//! - `frame.rs`: I420 frames and conversions from capture formats.
//! - `pattern.rs`: the synthetic camera; `v4l2.rs`: a real one.
//! - `coded.rs`: what coded frames look like (keyframes, well-formedness).
//! - `encode.rs`: the encoders and the choice between them; `m2m.rs`: the hardware one.
//! - `capture.rs`: the capture thread (hotplug, pacing, drain on stop).
//! - `session.rs`: the room: key exchange, sealing, keyframe requests, heartbeats.

mod bench;
mod capture;
pub mod coded;
pub mod encode;
mod frame;
pub mod m2m;
pub mod pattern;
mod session;
mod v4l2;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use rand_core::OsRng;
use tokio::sync::mpsc;
use videocall_client::crypto::LocalIdentity;

use crate::load::link::{self, LinkSender, Transport};
pub use bench::{EncodeBenchArgs, run as run_encode_bench, thread_cpu_seconds};
use coded::Codec;
use encode::EncoderChoice;
pub use session::{JoinArgs, connect, wall_ms};
use session::{OutFrame, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Websocket,
    Webtransport,
}

impl From<TransportArg> for Transport {
    fn from(arg: TransportArg) -> Self {
        match arg {
            TransportArg::Websocket => Transport::Websocket,
            TransportArg::Webtransport => Transport::Webtransport,
        }
    }
}

/// A capture format to insist on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Yuyv,
    Nv12,
    Yu12,
    Mjpeg,
}

impl FormatArg {
    fn fourcc(self) -> [u8; 4] {
        match self {
            Self::Yuyv => *b"YUYV",
            Self::Nv12 => *b"NV12",
            Self::Yu12 => *b"YU12",
            Self::Mjpeg => *b"MJPG",
        }
    }
}

#[derive(Debug, Args)]
pub struct CameraArgs {
    #[command(flatten)]
    join: JoinArgs,
    /// Display name.
    #[arg(long, env = "BOT_NAME", default_value = "Camera bot")]
    name: String,
    /// A V4L2 camera (`/dev/video0`); without one, the synthetic test pattern.
    #[arg(long, env = "BOT_DEVICE")]
    device: Option<std::path::PathBuf>,
    /// Capture format (default: the best the camera offers: YU12, NV12, YUYV, then MJPEG).
    #[arg(long, value_enum, env = "BOT_FORMAT")]
    format: Option<FormatArg>,
    /// Codec: H.264 for browsers; VP8 where a hardware encoder has it; FWHT (the kernel's test
    /// codec, hardware only) to check a V4L2 encoder.
    #[arg(long, value_enum, env = "BOT_CODEC", default_value_t = Codec::H264)]
    codec: Codec,
    /// Encoder: a V4L2 hardware encoder found on this machine, software, or auto (hardware
    /// when one opens, else software).
    #[arg(long, value_enum, env = "BOT_ENCODER", default_value_t = EncoderChoice::Auto)]
    encoder: EncoderChoice,
    #[arg(long, default_value_t = 640)]
    width: usize,
    #[arg(long, default_value_t = 480)]
    height: usize,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video bitrate, bits per second.
    #[arg(long, default_value_t = 800_000)]
    bitrate: u32,
    /// Luma noise (±) on the test pattern, as a real sensor adds (for benchmarks).
    #[arg(long, default_value_t = 0)]
    noise: u8,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    duration: Option<u64>,
    /// Send the camera as one layer, as a client without simulcast does: every receiver gets
    /// it at full size whatever it shows (to compare against).
    #[arg(long, env = "BOT_NO_SIMULCAST")]
    no_simulcast: bool,
}

/// Encoded frames waiting for the network: beyond this the newest is dropped at the encoder.
const OUT_QUEUE: usize = 8;
/// How long the encoder's last frames may take to go out when stopping.
const DRAIN: Duration = Duration::from_secs(3);

/// What the status line and the summary show.
struct Counters {
    sent: u64,
    bytes: u64,
    /// Capture (the driver's timestamp) to handed to the transport, microseconds.
    latency: Histogram<u64>,
    window: Vec<f64>,
}

impl Counters {
    fn new() -> Result<Self> {
        Ok(Self { sent: 0, bytes: 0, latency: Histogram::new_with_bounds(1, 60_000_000, 3)?, window: Vec::new() })
    }

    fn sent(&mut self, bytes: usize, capture_ms: f64) {
        self.sent += 1;
        self.bytes += bytes as u64;
        let ms = (wall_ms() - capture_ms).max(0.0);
        let _ = self.latency.record((ms * 1000.0) as u64 + 1);
        self.window.push(ms);
    }

    /// (p50, p95) of the frames since the last call, ms.
    fn window(&mut self) -> (f64, f64) {
        self.window.sort_by(f64::total_cmp);
        let at =
            |q: f64| self.window.get(((self.window.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        let figures = (at(0.5), at(0.95));
        self.window.clear();
        figures
    }
}

/// Seals and sends one frame.
async fn send(session: &mut Session, sender: &mut LinkSender, counters: &mut Counters, frame: OutFrame) -> Result<()> {
    let (bytes, capture_ms) = (frame.data.len(), frame.capture_ms);
    session.send_frame(frame)?;
    session.flush(sender).await?;
    counters.sent(bytes, capture_ms);
    Ok(())
}

/// Stopping: the capture thread drains its encoder; what comes out goes to the room.
async fn drain(
    frames: &mut mpsc::Receiver<OutFrame>,
    session: &mut Session,
    sender: &mut LinkSender,
    counters: &mut Counters,
) -> usize {
    let deadline = tokio::time::Instant::now() + DRAIN;
    let mut drained = 0;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, frames.recv()).await {
        if send(session, sender, counters, frame).await.is_err() {
            break;
        }
        drained += 1;
    }
    drained
}

pub async fn run(args: CameraArgs) -> Result<()> {
    link::check_server(&args.join.server)?;
    let transport = Transport::from(args.join.transport);
    let shared = Arc::new(capture::Shared::default());
    let (frames_tx, mut frames) = mpsc::channel::<OutFrame>(OUT_QUEUE);
    let config = capture::Config {
        device: args.device.clone(),
        format: args.format.map(FormatArg::fourcc),
        width: args.width,
        height: args.height,
        fps: args.fps,
        noise: args.noise,
        codec: args.codec,
        encoder: args.encoder,
        bitrate: args.bitrate,
    };
    let opened = capture::spawn(config, shared.clone(), frames_tx)?;
    eprintln!("bot camera: capturing {}", opened.source);
    eprintln!("bot camera: encoding {} with {}", opened.codec, opened.encoder);

    let identity = tokio::task::spawn_blocking(|| LocalIdentity::generate(&mut OsRng))
        .await?
        .context("generating the identity key")?;
    let size = (opened.size.0 as u32, opened.size.1 as u32);
    let simulcast = opened.simulcast && !args.no_simulcast;
    let mut session = Session::new(identity, &args.name, &opened.codec, size, simulcast, shared.layers.clone());
    // CPU from here on is the camera's, not the one-off RSA key.
    let cpu_before = cpu_seconds();
    eprintln!("bot camera: key fingerprint {}", session.fingerprint());
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }
    let http = reqwest::Client::new();
    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let stop_now = || interrupted.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
    let mut first = true;
    let mut counters = Counters::new()?;
    let encoder_name = opened.encoder.split(" (").next().unwrap_or_default().to_owned();
    loop {
        // The call engine says when: at once, then after its backoff.
        let generation = tokio::select! {
            g = session.next_attempt() => g,
            _ = wait_until(&stop_now) => {
                shared.stop.store(true, Ordering::Relaxed);
                bail!("stopping while reconnecting");
            }
        };
        let (user, room, mut sender, mut receiver) = match args.join.connect(&http, &args.name, false).await {
            Ok(link) => link,
            Err(e) if first => {
                return Err(e.context(format!("joining {} at {}", args.join.room, args.join.server)));
            }
            Err(e) => {
                eprintln!("\nbot camera: reconnecting: {e:#}");
                session.connect_failed(generation, format!("{e:#}"));
                continue;
            }
        };
        first = false;
        session.connected(generation, transport, &user, &room);
        shared.layers.request_keyframes();
        eprintln!("bot camera: in room {} as {user} ({encoder_name}, {})", args.join.room, opened.codec);
        // Frames encoded while we were away are stale: start from the next one.
        while frames.try_recv().is_ok() {}
        let mut timers = tokio::time::interval(Duration::from_millis(100));
        let mut status_at = Instant::now();
        let mut last = (shared.captured.load(Ordering::Relaxed), counters.sent, counters.bytes);
        let lost = loop {
            if stop_now() {
                shared.stop.store(true, Ordering::Relaxed);
                let drained = drain(&mut frames, &mut session, &mut sender, &mut counters).await;
                link::close(sender, receiver).await;
                summary(&counters, drained, cpu_seconds() - cpu_before);
                if let Some(failure) = shared.failure() {
                    bail!("stopping the capture: {failure}");
                }
                return Ok(());
            }
            tokio::select! {
                packet = receiver.recv() => match packet {
                    Some(Ok(bytes)) => session.handle(generation, &bytes),
                    Some(Err(e)) => break format!("{e:#}"),
                    None => break "the relay closed the connection".to_owned(),
                },
                frame = frames.recv() => {
                    let Some(frame) = frame else {
                        let why = shared.failure().unwrap_or_else(|| "no reason given".into());
                        bail!("the capture thread stopped: {why}")
                    };
                    if let Err(e) = send(&mut session, &mut sender, &mut counters, frame).await {
                        break format!("{e:#}");
                    }
                }
                _ = timers.tick() => {
                    session.tick(shared.camera_on.load(Ordering::Relaxed));
                    if status_at.elapsed() >= Duration::from_secs(1) {
                        let captured = shared.captured.load(Ordering::Relaxed);
                        let secs = status_at.elapsed().as_secs_f64().max(0.001);
                        let (p50, p95) = counters.window();
                        eprint!(
                            "\rbot camera: captured {:.1} fps, sent {:.1} fps, {:.0} kb/s, capture to send p50 {p50:.1} / p95 {p95:.1} ms, {encoder_name}, {} peer(s), connected over {transport:?}   ",
                            (captured - last.0) as f64 / secs,
                            (counters.sent - last.1) as f64 / secs,
                            (counters.bytes - last.2) as f64 * 8.0 / secs / 1000.0,
                            session.peers(),
                        );
                        let _ = std::io::stderr().flush();
                        last = (captured, counters.sent, counters.bytes);
                        status_at = Instant::now();
                    }
                }
            }
            if let Err(e) = session.flush(&mut sender).await {
                break format!("{e:#}");
            }
        };
        eprintln!("\nbot camera: connection lost ({lost}); reconnecting");
        drop((sender, receiver));
        session.lost(generation, &lost);
    }
}

/// Resolves once `stop_now` says so (checked ten times a second).
async fn wait_until(stop_now: &impl Fn() -> bool) {
    while !stop_now() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// This process's CPU time so far, seconds.
fn cpu_seconds() -> f64 {
    bench::cpu_seconds("/proc/self/stat")
}

/// The figures of the whole run, on stopping.
fn summary(counters: &Counters, drained: usize, cpu: f64) {
    let ms = |q: f64| counters.latency.value_at_quantile(q) as f64 / 1000.0;
    eprintln!(
        "\nbot camera: stopped: sent {} frames ({drained} while stopping: queued or drained from the encoder); capture to send p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; CPU {cpu:.1} s, {:.1} ms per frame sent",
        counters.sent,
        ms(0.5),
        ms(0.95),
        counters.latency.max() as f64 / 1000.0,
        cpu * 1000.0 / counters.sent.max(1) as f64,
    );
}

/// The test pattern encoded in software, `frames` frames at 30 fps with a keyframe every
/// `keyframe_every`: (Annex B access unit, keyframe). What the recorder's and snapshots' tests
/// feed in.
#[cfg(test)]
pub fn encoded_test_pattern(width: usize, height: usize, frames: usize, keyframe_every: usize) -> Vec<(Vec<u8>, bool)> {
    use encode::VideoEncoder as _;
    let mut pattern = pattern::TestPattern::new(width, height);
    let mut encoder = encode::SoftwareH264::new(1_000_000, 30.0, 1).expect("OpenH264 starts");
    (0..frames)
        .filter_map(|i| {
            let frame = pattern.next_frame();
            let encoded = encoder.encode(&frame, i % keyframe_every == 0, i as u64 * 33_333).expect("encodes")?;
            Some((encoded.data, encoded.keyframe))
        })
        .collect()
}
