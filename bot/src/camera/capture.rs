//! The capture thread: reads the source at its pace, encodes, and hands frames to the network
//! side, dropping rather than queueing when the network falls behind. When the camera goes it
//! says so (camera off) and takes the device back when it returns. Asked to stop, it drains
//! the encoder so the last frames still go out.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use videocall_client::call::{LayerSpec, frame_due};

use super::coded::Codec;
use super::encode::{self, Encoded, EncoderChoice, VideoEncoder};
use super::frame::{self, I420Frame};
use super::pattern::TestPattern;
use super::session::{OutFrame, wall_ms};
use super::v4l2::V4l2Camera;

/// What to capture from and how to encode it.
pub struct Config {
    pub device: Option<PathBuf>,
    /// A capture format to insist on (`YUYV`, `NV12`, `YU12`, `MJPG`); `None`: the best offered.
    pub format: Option<[u8; 4]>,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// Luma noise on the test pattern (what a real sensor adds, and what costs an encoder).
    pub noise: u8,
    pub codec: Codec,
    pub encoder: EncoderChoice,
    pub bitrate: u32,
}

impl Config {
    /// The encoder this configuration asks for, at `width`x`height`: the top layer's.
    fn open_encoder(&self, (width, height): (usize, usize)) -> Result<Box<dyn VideoEncoder + Send>> {
        encode::open(self.encoder, self.codec, width, height, self.fps, self.bitrate)
    }

    /// A lower layer's encoder, at its size, bitrate and frame rate.
    fn open_layer_encoder(
        &self,
        (width, height): (usize, usize),
        spec: &LayerSpec,
    ) -> Result<Box<dyn VideoEncoder + Send>> {
        encode::open(self.encoder, self.codec, width, height, spec.fps.round() as u32, spec.bitrate)
    }
}

/// The camera's simulcast layers as the call engine runs them: which are encoded, which owe a
/// keyframe. The capture thread reads it, the network side (the relays' demand) writes it.
#[derive(Debug)]
pub struct Layers {
    /// The layers under the top one, smallest first, once the engine planned them: until then
    /// the camera is its top layer alone.
    lower: OnceLock<Vec<LayerSpec>>,
    /// Bit n: layer n is encoded.
    active: AtomicU32,
    /// Bit n: layer n's next frame is a keyframe.
    keys: AtomicU32,
}

impl Default for Layers {
    /// Every layer runs and starts with a keyframe.
    fn default() -> Self {
        Self { lower: OnceLock::new(), active: AtomicU32::new(u32::MAX), keys: AtomicU32::new(u32::MAX) }
    }
}

impl Layers {
    /// The engine planned these layers under the top one (once; later plans are ignored).
    pub fn plan(&self, lower: &[LayerSpec]) {
        let _ = self.lower.set(lower.to_vec());
    }

    /// Which layers run (bit n: layer n).
    pub fn set_active(&self, active: u32) {
        self.active.store(active, Ordering::Relaxed);
    }

    /// Every layer's next frame is a keyframe (a newcomer, a reconnection, lost frames).
    pub fn request_keyframes(&self) {
        self.keys.store(u32::MAX, Ordering::Relaxed);
    }

    /// `layer`'s next frame is a keyframe.
    pub fn request_keyframe(&self, layer: u32) {
        self.keys.fetch_or(1 << layer, Ordering::Relaxed);
    }

    fn take_keyframe(&self, layer: u32) -> bool {
        self.keys.fetch_and(!(1 << layer), Ordering::Relaxed) & (1 << layer) != 0
    }

    fn is_active(&self, layer: u32) -> bool {
        self.active.load(Ordering::Relaxed) & (1 << layer) != 0
    }
}

/// What the capture thread and the network side share.
#[derive(Default)]
pub struct Shared {
    /// The simulcast layers: which run, which owe a keyframe.
    pub layers: Arc<Layers>,
    pub camera_on: AtomicBool,
    pub captured: AtomicU64,
    /// Set to stop: the thread drains the encoder, sends what came out and ends.
    pub stop: AtomicBool,
    /// Why the thread ended, when it failed.
    failure: Mutex<Option<String>>,
}

impl Shared {
    /// Why the capture thread ended, if it failed.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// What was opened, for the status line.
pub struct Opened {
    pub source: String,
    /// The size frames come at (what the source gave, which may differ from what was asked).
    pub size: (usize, usize),
    /// The encoder can run once per simulcast layer; else the camera is one layer.
    pub simulcast: bool,
    pub encoder: String,
    pub codec: String,
}

/// How often a lost camera is looked for: well inside the 2 s a user would wait.
const REACQUIRE_POLL: Duration = Duration::from_millis(100);

enum Source {
    Pattern(TestPattern),
    Camera(V4l2Camera),
}

impl Source {
    fn open(config: &Config) -> Result<(Self, String)> {
        match &config.device {
            Some(path) => {
                let camera =
                    V4l2Camera::open(path, config.format, config.width as u32, config.height as u32, config.fps)?;
                let description = camera.description.clone();
                Ok((Self::Camera(camera), description))
            }
            None => Ok((
                Self::Pattern(TestPattern::new(config.width, config.height).with_noise(config.noise)),
                format!("the test pattern, {}x{} at {} fps", config.width, config.height, config.fps),
            )),
        }
    }

    /// The next frame and the wall-clock millisecond it was captured.
    fn next_frame(&mut self) -> Result<(I420Frame, f64)> {
        match self {
            Self::Pattern(p) => Ok((p.next_frame(), wall_ms())),
            Self::Camera(c) => {
                let (frame, age) = c.next_frame()?;
                Ok((frame, wall_ms() - age.as_secs_f64() * 1000.0))
            }
        }
    }

    fn size(&self) -> (usize, usize) {
        match self {
            Self::Pattern(p) => p.size(),
            Self::Camera(c) => c.size(),
        }
    }

    /// A camera paces itself; the pattern is paced by the loop.
    fn paced(&self) -> bool {
        matches!(self, Self::Camera(_))
    }
}

/// Waits for the lost device to come back (its node reappears and opens) and reopens it.
fn reacquire(config: &Config, shared: &Shared) -> Option<Source> {
    let mut seen: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(REACQUIRE_POLL);
        let present = config.device.as_ref().is_none_or(|p| p.exists());
        if !present {
            seen = None;
            continue;
        }
        let since = *seen.get_or_insert_with(Instant::now);
        match Source::open(config) {
            Ok((source, description)) => {
                eprintln!(
                    "\nbot camera: camera back {} ms after its device returned: {description}",
                    since.elapsed().as_millis()
                );
                return Some(source);
            }
            // Still settling (the driver registers the node before it is ready).
            Err(_) => continue,
        }
    }
    None
}

/// One simulcast layer's encoder.
struct LayerEncoder {
    encoder: Box<dyn VideoEncoder + Send>,
    /// `None`: the top layer, at the camera's size; else this layer's.
    spec: Option<LayerSpec>,
    /// (width, height) the encoder was opened for.
    size: (usize, usize),
    /// Timestamp of the last frame this layer encoded.
    last_us: Option<u64>,
}

/// The size a layer (`None`: the top one) encodes a `width` x `height` frame at.
fn layer_size(spec: Option<LayerSpec>, (width, height): (usize, usize)) -> (usize, usize) {
    let (w, h) = spec.map_or((width as u32, height as u32), |s| s.size_for(width as u32, height as u32));
    (w as usize, h as usize)
}

impl LayerEncoder {
    /// Whether a frame at `timestamp_us` is due at this layer's frame rate (`camera_fps` for
    /// the top layer).
    fn due(&self, timestamp_us: u64, camera_fps: u32) -> bool {
        let fps = self.spec.map_or(f64::from(camera_fps), |s| s.fps);
        frame_due(fps, self.last_us.map(|t| t as f64), timestamp_us as f64)
    }
}

struct Worker {
    config: Config,
    shared: Arc<Shared>,
    out: mpsc::Sender<OutFrame>,
    /// Smallest layer first; the last is the top one.
    encoders: Vec<LayerEncoder>,
    started: Instant,
    /// `started` on the wall clock, milliseconds.
    started_ms: f64,
    /// The last frame's timestamp: each is later than the one before.
    last_timestamp_us: Option<u64>,
    /// Capture time by encoder timestamp, for frames an encoder returns late.
    in_flight: std::collections::VecDeque<(u64, f64)>,
}

impl Worker {
    /// Hands an encoded frame of `layer` to the network side; false once that side is gone.
    fn emit(&mut self, layer: u32, encoded: Encoded, size: (usize, usize)) -> bool {
        while self.in_flight.front().is_some_and(|(ts, _)| *ts < encoded.timestamp_us) {
            self.in_flight.pop_front();
        }
        let capture_ms = match self.in_flight.front() {
            Some((ts, ms)) if *ts == encoded.timestamp_us => *ms,
            _ => wall_ms(),
        };
        let frame = OutFrame {
            layer,
            keyframe: encoded.keyframe,
            data: encoded.data,
            capture_ms,
            timestamp_us: encoded.timestamp_us as f64,
            width: size.0 as u32,
            height: size.1 as u32,
        };
        match self.out.try_send(frame) {
            Ok(()) => true,
            // The network is behind: this frame is lost, so the layer's next must stand alone.
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.layers.request_keyframe(layer);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// The layers the engine planned, once it has: the lower layers' encoders open (the top
    /// one moves to the end).
    fn open_lower_layers(&mut self, size: (usize, usize)) -> Result<()> {
        let Some(lower) = self.shared.layers.lower.get() else { return Ok(()) };
        if self.encoders.len() == lower.len() + 1 {
            return Ok(());
        }
        let mut encoders = Vec::with_capacity(lower.len() + 1);
        for spec in lower {
            let size = layer_size(Some(*spec), size);
            let encoder = self.config.open_layer_encoder(size, spec)?;
            encoders.push(LayerEncoder { encoder, spec: Some(*spec), size, last_us: None });
        }
        encoders.extend(self.encoders.pop());
        self.encoders = encoders;
        self.shared.layers.request_keyframes();
        Ok(())
    }

    /// `shutter_us`: when the frame was taken, microseconds since the stream began: what
    /// receivers and recordings space frames by. Each running layer that is due encodes it
    /// (scaled to its size); false once the network side is gone.
    fn encode(&mut self, frame: &I420Frame, capture_ms: f64, shutter_us: u64) -> Result<bool> {
        let size = (frame.width, frame.height);
        self.open_lower_layers(size)?;
        let timestamp_us = self.last_timestamp_us.map_or(shutter_us, |last| shutter_us.max(last + 1));
        self.last_timestamp_us = Some(timestamp_us);
        self.in_flight.push_back((timestamp_us, capture_ms));
        let layers = self.shared.layers.clone();
        for index in 0..self.encoders.len() {
            let layer_index = index as u32;
            let layer = &mut self.encoders[index];
            if !layers.is_active(layer_index) || !layer.due(timestamp_us, self.config.fps) {
                continue;
            }
            let want = layer_size(layer.spec, size);
            if want != layer.size {
                // The camera came back at another size: the encoder starts again.
                layer.encoder = match layer.spec {
                    Some(spec) => self.config.open_layer_encoder(want, &spec)?,
                    None => self.config.open_encoder(want)?,
                };
                layer.size = want;
                layers.request_keyframe(layer_index);
            }
            let scaled;
            let picture = if want == size {
                frame
            } else {
                scaled = frame::scale(frame, want.0, want.1).context("scaling a layer")?;
                &scaled
            };
            layer.last_us = Some(timestamp_us);
            let key = layers.take_keyframe(layer_index);
            let Some(encoded) = layer.encoder.encode(picture, key, timestamp_us).context("encoding")? else {
                // Skipped or still inside: ask again with the next frame.
                if key {
                    layers.request_keyframe(layer_index);
                }
                continue;
            };
            if !self.emit(layer_index, encoded, want) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn run(&mut self, mut source: Source) -> Result<()> {
        let period = Duration::from_secs_f64(1.0 / f64::from(self.config.fps.max(1)));
        let mut next = Instant::now();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let (frame, capture_ms) = match source.next_frame() {
                Ok(frame) => frame,
                Err(e) => {
                    // Unplugged, or the driver reset: stay in the room with the camera off,
                    // and take the device back when it returns.
                    eprintln!("\nbot camera: camera lost ({e:#}); waiting for it to come back");
                    self.shared.camera_on.store(false, Ordering::Relaxed);
                    drop(source);
                    let Some(back) = reacquire(&self.config, &self.shared) else { break };
                    source = back;
                    self.shared.camera_on.store(true, Ordering::Relaxed);
                    self.shared.layers.request_keyframes();
                    continue;
                }
            };
            self.shared.captured.fetch_add(1, Ordering::Relaxed);
            // A camera's frames are timed by the driver's timestamps; the pattern's by the tick
            // it was drawn for, so a late wake-up on a busy machine does not bunch them.
            let shutter_us = if source.paced() {
                ((capture_ms - self.started_ms).max(0.0) * 1000.0) as u64
            } else {
                next.saturating_duration_since(self.started).as_micros() as u64
            };
            if !self.encode(&frame, capture_ms, shutter_us)? {
                return Ok(());
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
        // Stopping: what is still inside the encoders goes out too.
        for index in 0..self.encoders.len() {
            let size = self.encoders[index].size;
            for encoded in self.encoders[index].encoder.finish().context("draining the encoder")? {
                self.emit(index as u32, encoded, size);
            }
        }
        Ok(())
    }
}

/// Starts capturing and encoding on a thread of its own; encoded frames go to `out`.
pub fn spawn(config: Config, shared: Arc<Shared>, out: mpsc::Sender<OutFrame>) -> Result<Opened> {
    let (opened_tx, opened) = std::sync::mpsc::channel::<Result<Opened>>();
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            // Opened on this thread: the MMAP streams stay where they are used.
            let start = || -> Result<(Source, Worker, Opened)> {
                let (source, description) = Source::open(&config)?;
                let size = source.size();
                let encoder = config.open_encoder(size)?;
                let opened = Opened {
                    source: description,
                    size,
                    simulcast: encoder.simulcast(),
                    encoder: encoder.name().to_owned(),
                    codec: encoder.codec().to_owned(),
                };
                shared.camera_on.store(true, Ordering::Relaxed);
                let worker = Worker {
                    config,
                    shared: shared.clone(),
                    out,
                    encoders: vec![LayerEncoder { encoder, spec: None, size, last_us: None }],
                    started: Instant::now(),
                    started_ms: wall_ms(),
                    last_timestamp_us: None,
                    in_flight: Default::default(),
                };
                Ok((source, worker, opened))
            };
            let (source, mut worker) = match start() {
                Ok((source, worker, opened)) => {
                    let _ = opened_tx.send(Ok(opened));
                    (source, worker)
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    return;
                }
            };
            if let Err(e) = worker.run(source)
                && let Ok(mut failure) = worker.shared.failure.lock()
            {
                *failure = Some(format!("{e:#}"));
            }
        })
        .context("starting the capture thread")?;
    opened.recv().context("the capture thread stopped")?
}
