//! Camera or screen frames (a `MediaStreamTrackProcessor`'s stream, opened on the page and
//! transferred to the call's worker) → WebCodecs `VideoEncoder` → encoded frames.
//! Every captured `VideoFrame` is closed as soon as the encoder has it (or is dropped), so the
//! capture pipeline never stalls.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use videocall_client::call::EncodedVideo;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    CodecState, EncodedVideoChunk, EncodedVideoChunkType, LatencyMode, ReadableStream, VideoEncoder,
    VideoEncoderConfig, VideoEncoderEncodeOptions, VideoEncoderInit, VideoFrame,
};

use super::{next_frame, reader};
use crate::services::js;

/// Codecs we offer, best first, by `cargo xtask bench-client` (docs/benchmarks.md): at 720p
/// on two cores, H.264 (Constrained Baseline, level 4.0 so 1080p screens fit) encoded in 6 ms
/// with p95 glass-to-glass 57 ms, VP9 in 9 ms with p95 137 ms, and VP8 queued frames for
/// 140 ms. Browsers without an H.264 encoder fall to VP8, then VP9.
pub const CODECS: &[&str] = &["avc1.42e028", "vp8", "vp09.00.10.08"];
/// A keyframe at least this often, so a receiver that lost one recovers by itself.
const KEYFRAME_INTERVAL_MS: f64 = 3_000.0;
/// A frame arriving while this many wait in the encoder is dropped at capture instead of
/// queued: a queued frame is latency, and a machine that cannot keep up gets fewer frames, not
/// older ones.
const MAX_ENCODE_QUEUE: u32 = 1;

pub type OnEncoded = Rc<dyn Fn(EncodedVideo)>;

/// The first codec in `CODECS` the browser can encode at this size; `wanted` (`?codec=` in the
/// link) first: comparing them, or a receiver that lacks one.
pub async fn choose_codec(wanted: Option<&str>, width: u32, height: u32, bitrate: u32) -> Option<String> {
    let wanted = wanted.filter(|c| CODECS.contains(c));
    for codec in wanted.into_iter().chain(CODECS.iter().copied()) {
        let config = encoder_config(codec, width, height, bitrate, 30.0);
        let Ok(answer) = JsFuture::from(VideoEncoder::is_config_supported(&config)).await else { continue };
        if js::get(&answer, "supported").as_bool() == Some(true) {
            return Some((*codec).to_owned());
        }
    }
    None
}

fn encoder_config(codec: &str, width: u32, height: u32, bitrate: u32, fps: f64) -> VideoEncoderConfig {
    let config = VideoEncoderConfig::new(codec, height, width);
    config.set_bitrate(bitrate);
    config.set_framerate(fps);
    config.set_latency_mode(LatencyMode::Realtime);
    if codec.starts_with("avc1") {
        // Annex B carries SPS/PPS in every keyframe: receivers need no out-of-band description.
        let avc = js::object();
        js::set(&avc, "format", "annexb");
        js::set(&config, "avc", avc);
    }
    config
}

struct Shared {
    codec: String,
    bitrate: Cell<u32>,
    fps: Cell<f64>,
    /// Size the encoder is configured for; a frame of another size reconfigures it.
    size: Cell<(u32, u32)>,
    force_key: Cell<bool>,
    last_key_ms: Cell<f64>,
    stopped: Cell<bool>,
    /// The camera is off: frames are closed unencoded (the page disables the track).
    paused: Cell<bool>,
    /// (frame timestamp, capture wall time) of frames in the encoder.
    captured: RefCell<VecDeque<(f64, f64)>>,
    dropped: Cell<u64>,
    /// Capture to encoded, milliseconds, the latest frames.
    encode_ms: RefCell<VecDeque<f64>>,
}

pub struct VideoSender {
    encoder: VideoEncoder,
    shared: Rc<Shared>,
    _output: Closure<dyn FnMut(EncodedVideoChunk)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

impl VideoSender {
    /// Starts encoding `frames` with `codec` at `bitrate`; encoded frames go to `on_encoded`.
    /// The sender reads `frames` until it is dropped.
    pub fn start(
        frames: &ReadableStream,
        codec: &str,
        bitrate: u32,
        fps: f64,
        on_encoded: OnEncoded,
    ) -> Result<Self, String> {
        let shared = Rc::new(Shared {
            codec: codec.to_owned(),
            bitrate: Cell::new(bitrate),
            fps: Cell::new(fps),
            size: Cell::new((0, 0)),
            force_key: Cell::new(true),
            last_key_ms: Cell::new(0.0),
            stopped: Cell::new(false),
            paused: Cell::new(false),
            captured: RefCell::new(VecDeque::new()),
            dropped: Cell::new(0),
            encode_ms: RefCell::new(VecDeque::new()),
        });
        let out = shared.clone();
        let output = Closure::<dyn FnMut(EncodedVideoChunk)>::new(move |chunk: EncodedVideoChunk| {
            let mut data = vec![0u8; chunk.byte_length() as usize];
            if chunk.copy_to_with_u8_slice(&mut data).is_err() {
                return;
            }
            let timestamp = chunk.timestamp();
            let capture_ms = {
                let mut captured = out.captured.borrow_mut();
                while captured.front().is_some_and(|(t, _)| *t < timestamp) {
                    captured.pop_front();
                }
                captured.front().filter(|(t, _)| *t == timestamp).map_or(js::wall_ms(), |(_, c)| *c)
            };
            let mut encode_ms = out.encode_ms.borrow_mut();
            encode_ms.push_back(js::wall_ms() - capture_ms);
            if encode_ms.len() > 300 {
                encode_ms.pop_front();
            }
            drop(encode_ms);
            let (width, height) = out.size.get();
            on_encoded(EncodedVideo {
                codec: out.codec.clone(),
                layer: 0,
                keyframe: chunk.type_() == EncodedVideoChunkType::Key,
                data,
                timestamp_us: timestamp,
                duration_us: chunk.duration().unwrap_or(0.0),
                width,
                height,
                capture_ms,
            });
        });
        let error = Closure::<dyn FnMut(JsValue)>::new(|e: JsValue| {
            web_sys::console::warn_2(&"video encoder error".into(), &e);
        });
        let encoder =
            VideoEncoder::new(&VideoEncoderInit::new(error.as_ref().unchecked_ref(), output.as_ref().unchecked_ref()))
                .map_err(|e| js::describe(&e))?;
        spawn_local(capture_loop(reader(frames)?, encoder.clone(), shared.clone()));
        Ok(Self { encoder, shared, _output: output, _error: error })
    }

    /// The next frame will be a keyframe (a receiver asked, or joined).
    pub fn request_keyframe(&self) {
        self.shared.force_key.set(true);
    }

    /// Moves to a ladder rung (the page asks the camera for its size): the encoder follows
    /// the frames.
    pub fn set_rung(&self, bitrate: u32, fps: f64) {
        self.shared.bitrate.set(bitrate);
        self.shared.fps.set(fps);
        self.shared.size.set((0, 0)); // reconfigure at the next frame
    }

    /// Off: frames are closed unencoded; back on, the first is a keyframe.
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.set(paused);
        self.shared.force_key.set(true);
    }

    /// Capture-to-encoded times of the latest frames, milliseconds.
    pub fn encode_ms(&self) -> Vec<f64> {
        self.shared.encode_ms.borrow().iter().copied().collect()
    }

    /// Frames dropped at capture because the encoder was behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.get()
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.shared.stopped.set(true);
        if self.encoder.state() != CodecState::Closed {
            let _ = self.encoder.close();
        }
    }
}

async fn capture_loop(reader: web_sys::ReadableStreamDefaultReader, encoder: VideoEncoder, shared: Rc<Shared>) {
    while let Some(value) = next_frame(&reader).await {
        let frame: VideoFrame = value.unchecked_into();
        if shared.stopped.get() || encoder.state() == CodecState::Closed {
            frame.close();
            break;
        }
        if shared.paused.get() {
            frame.close();
            continue;
        }
        let capture_ms = js::wall_ms();
        let size = (frame.display_width(), frame.display_height());
        if size != shared.size.get() {
            let config = encoder_config(&shared.codec, size.0, size.1, shared.bitrate.get(), shared.fps.get());
            if encoder.configure(&config).is_err() {
                frame.close();
                continue;
            }
            shared.size.set(size);
            shared.force_key.set(true);
        }
        if encoder.encode_queue_size() >= MAX_ENCODE_QUEUE {
            shared.dropped.set(shared.dropped.get() + 1);
            frame.close();
            continue;
        }
        let now = js::now_ms();
        let key = shared.force_key.get() || now - shared.last_key_ms.get() >= KEYFRAME_INTERVAL_MS;
        let options = VideoEncoderEncodeOptions::new();
        options.set_key_frame(key);
        shared.captured.borrow_mut().push_back((frame.timestamp(), capture_ms));
        if encoder.encode_with_options(&frame, &options).is_ok() && key {
            shared.force_key.set(false);
            shared.last_key_ms.set(now);
        }
        frame.close();
    }
    let _ = JsFuture::from(reader.cancel()).await;
}
