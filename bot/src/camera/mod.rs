//! `bot camera`: joins a room and publishes a camera, end-to-end encrypted exactly as the
//! browser does, so a browser in the room decodes it. The source is a V4L2 camera or the
//! synthetic test pattern; the encoder is OpenH264 in software (the V4L2 hardware encoder is
//! next).
//!
//! - `frame.rs`: I420 frames and conversions from capture formats.
//! - `pattern.rs`: the synthetic camera; `v4l2.rs`: a real one.
//! - `encode.rs`: the encoders.
//! - `session.rs`: the room: key exchange, sealing, keyframe requests, heartbeats.

mod bench;
mod encode;
mod frame;
mod pattern;
mod session;
mod v4l2;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use rand_core::OsRng;
use tokio::sync::mpsc;
use videocall_client::crypto::IdentityKey;

use crate::load::link::{self, Transport};
pub use bench::{EncodeBenchArgs, run as run_encode_bench};
use encode::{SoftwareH264, VideoEncoder};
use pattern::TestPattern;
pub use session::connect;
use session::{OutFrame, Session, wall_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Websocket,
    Webtransport,
}

#[derive(Debug, Args)]
pub struct CameraArgs {
    /// The server's HTTP base URL.
    #[arg(long, env = "BOT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Room to join.
    #[arg(long, env = "BOT_ROOM")]
    room: String,
    /// Display name.
    #[arg(long, env = "BOT_NAME", default_value = "Camera bot")]
    name: String,
    /// A V4L2 camera (`/dev/video0`); without one, the synthetic test pattern.
    #[arg(long, env = "BOT_DEVICE")]
    device: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 640)]
    width: usize,
    #[arg(long, default_value_t = 480)]
    height: usize,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video bitrate, bits per second.
    #[arg(long, default_value_t = 800_000)]
    bitrate: u32,
    #[arg(long, value_enum, default_value_t = TransportArg::Websocket)]
    transport: TransportArg,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    duration: Option<u64>,
}

/// Encoded frames waiting for the network: beyond this the newest is dropped at the encoder.
const OUT_QUEUE: usize = 8;
/// Backoff after a lost connection: 0.5 s doubling to 8 s.
const BACKOFF_MS: [u64; 5] = [500, 1_000, 2_000, 4_000, 8_000];

/// Counters the status line shows.
#[derive(Default)]
struct Counters {
    captured: u64,
    sent: u64,
    bytes: u64,
}

pub async fn run(args: CameraArgs) -> Result<()> {
    link::check_server(&args.server)?;
    let transport = match args.transport {
        TransportArg::Websocket => Transport::Websocket,
        TransportArg::Webtransport => Transport::Webtransport,
    };
    let force_key = Arc::new(AtomicBool::new(true));
    let encoder = SoftwareH264::new(args.bitrate, args.fps as f32, 0)?;
    let (codec, encoder_name) = (encoder.codec().to_owned(), encoder.name().to_owned());
    let (frames_tx, mut frames) = mpsc::channel::<OutFrame>(OUT_QUEUE);
    let captured = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let source = SourceChoice { device: args.device.clone(), width: args.width, height: args.height, fps: args.fps };
    let camera_on = Arc::new(AtomicBool::new(true));
    let described =
        spawn_capture(source, Box::new(encoder), force_key.clone(), camera_on.clone(), frames_tx, captured.clone())?;
    eprintln!("bot camera: capturing {described}");

    let identity = tokio::task::spawn_blocking(|| IdentityKey::generate(&mut OsRng))
        .await?
        .context("generating the identity key")?;
    let mut session = Session::new(identity, &codec, force_key.clone())?;
    eprintln!("bot camera: key fingerprint {}", session.fingerprint());
    let http = reqwest::Client::new();
    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let mut attempt = 0usize;
    let mut counters = Counters::default();
    loop {
        let (user, mut sender, mut receiver) =
            match session::connect(&http, &args.server, &args.room, &args.name, transport).await {
                Ok(link) => link,
                Err(e) if attempt == 0 => return Err(e.context(format!("joining {} at {}", args.room, args.server))),
                Err(e) => {
                    eprintln!("\nbot camera: reconnecting: {e:#}");
                    tokio::time::sleep(Duration::from_millis(BACKOFF_MS[attempt.min(BACKOFF_MS.len() - 1)])).await;
                    attempt += 1;
                    continue;
                }
            };
        session.restart(&user)?;
        session.flush(&mut sender).await?;
        force_key.store(true, Ordering::Relaxed);
        eprintln!("bot camera: in room {} as {user} ({encoder_name}, {codec})", args.room);
        // Frames encoded while we were away are stale: start from the next one.
        while frames.try_recv().is_ok() {}
        let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
        let mut status_at = Instant::now();
        let mut last = (captured.load(Ordering::Relaxed), counters.sent, counters.bytes);
        let lost = loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                crate::load::link::close(sender, receiver).await;
                eprintln!();
                return Ok(());
            }
            tokio::select! {
                packet = receiver.recv() => match packet {
                    Some(Ok(bytes)) => session.handle(&bytes),
                    Some(Err(e)) => break format!("{e:#}"),
                    None => break "the relay closed the connection".to_owned(),
                },
                frame = frames.recv() => {
                    let Some(frame) = frame else { bail!("the capture thread stopped") };
                    counters.sent += 1;
                    counters.bytes += frame.data.len() as u64;
                    session.send_frame(frame)?;
                }
                _ = heartbeat.tick() => {
                    session.heartbeat(camera_on.load(Ordering::Relaxed))?;
                    counters.captured = captured.load(Ordering::Relaxed);
                    let secs = status_at.elapsed().as_secs_f64().max(0.001);
                    eprint!(
                        "\rbot camera: captured {:.1} fps, sent {:.1} fps, {:.0} kb/s, {encoder_name}, {} peer(s), connected over {transport:?}   ",
                        (counters.captured - last.0) as f64 / secs,
                        (counters.sent - last.1) as f64 / secs,
                        (counters.bytes - last.2) as f64 * 8.0 / secs / 1000.0,
                        session.peers(),
                    );
                    let _ = std::io::stderr().flush();
                    last = (counters.captured, counters.sent, counters.bytes);
                    status_at = Instant::now();
                }
            }
            if let Err(e) = session.flush(&mut sender).await {
                break format!("{e:#}");
            }
        };
        eprintln!("\nbot camera: connection lost ({lost}); reconnecting");
        tokio::time::sleep(Duration::from_millis(BACKOFF_MS[0])).await;
        attempt = 1;
    }
}

/// How often a lost camera is looked for: well inside the 2 s a user would wait.
const REACQUIRE_POLL: Duration = Duration::from_millis(100);

/// Waits for the lost device to come back (its node reappears and opens) and reopens it.
fn reacquire(choice: &SourceChoice) -> Source {
    let mut seen: Option<Instant> = None;
    loop {
        std::thread::sleep(REACQUIRE_POLL);
        let present = choice.device.as_ref().is_none_or(|p| p.exists());
        if !present {
            seen = None;
            continue;
        }
        let since = *seen.get_or_insert_with(Instant::now);
        match Source::open(choice) {
            Ok((source, description)) => {
                eprintln!(
                    "\nbot camera: camera back {} ms after its device returned: {description}",
                    since.elapsed().as_millis()
                );
                return source;
            }
            // Still settling (the driver registers the node before it is ready).
            Err(_) => continue,
        }
    }
}

/// What to capture from.
struct SourceChoice {
    device: Option<std::path::PathBuf>,
    width: usize,
    height: usize,
    fps: u32,
}

enum Source {
    Pattern(TestPattern),
    Camera(v4l2::V4l2Camera),
}

impl Source {
    fn open(choice: &SourceChoice) -> Result<(Self, String)> {
        match &choice.device {
            Some(path) => {
                let camera = v4l2::V4l2Camera::open(path, choice.width as u32, choice.height as u32, choice.fps)?;
                let description = camera.description.clone();
                Ok((Self::Camera(camera), description))
            }
            None => Ok((
                Self::Pattern(TestPattern::new(choice.width, choice.height)),
                format!("the test pattern, {}x{} at {} fps", choice.width, choice.height, choice.fps),
            )),
        }
    }

    fn next_frame(&mut self) -> Result<frame::I420Frame> {
        match self {
            Self::Pattern(p) => Ok(p.next_frame()),
            Self::Camera(c) => c.next_frame(),
        }
    }

    /// A camera paces itself; the pattern is paced by the loop.
    fn paced(&self) -> bool {
        matches!(self, Self::Camera(_))
    }
}

/// Capture and encode on their own thread at `fps`; encoded frames go to `out` (dropped when
/// the network falls behind, so latency does not build up).
fn spawn_capture(
    choice: SourceChoice,
    mut encoder: Box<dyn VideoEncoder + Send>,
    force_key: Arc<AtomicBool>,
    camera_on: Arc<AtomicBool>,
    out: mpsc::Sender<OutFrame>,
    captured: Arc<std::sync::atomic::AtomicU64>,
) -> Result<String> {
    let period = Duration::from_secs_f64(1.0 / f64::from(choice.fps.max(1)));
    let (opened_tx, opened) = std::sync::mpsc::channel::<Result<String>>();
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            // Opened on this thread: the MMAP stream stays where it is read.
            let mut source = match Source::open(&choice) {
                Ok((source, description)) => {
                    let _ = opened_tx.send(Ok(description));
                    source
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    return;
                }
            };
            let started = Instant::now();
            let mut next = Instant::now();
            loop {
                let frame = match source.next_frame() {
                    Ok(frame) => frame,
                    Err(e) => {
                        // Unplugged, or the driver reset: stay in the room with the camera
                        // off, and take the device back when it returns.
                        eprintln!("\nbot camera: camera lost ({e:#}); waiting for it to come back");
                        camera_on.store(false, Ordering::Relaxed);
                        drop(source);
                        source = reacquire(&choice);
                        camera_on.store(true, Ordering::Relaxed);
                        force_key.store(true, Ordering::Relaxed);
                        continue;
                    }
                };
                let capture_ms = wall_ms();
                captured.fetch_add(1, Ordering::Relaxed);
                let key = force_key.swap(false, Ordering::Relaxed);
                match encoder.encode(&frame, key) {
                    Ok(Some(encoded)) => {
                        let frame = OutFrame {
                            data: encoded.data,
                            keyframe: encoded.keyframe,
                            capture_ms,
                            timestamp_us: started.elapsed().as_micros() as f64,
                            width: frame.width as u32,
                            height: frame.height as u32,
                        };
                        match out.try_send(frame) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => force_key.store(key, Ordering::Relaxed),
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    Ok(None) => force_key.store(key || force_key.load(Ordering::Relaxed), Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("\nbot camera: encoder failed: {e:#}");
                        return;
                    }
                }
                if source.paced() {
                    continue;
                }
                next += period;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        })
        .context("starting the capture thread")?;
    opened.recv().context("the capture thread stopped")?
}
