//! Camera or screen frames (a `MediaStreamTrackProcessor`'s stream, opened on the page and
//! transferred to the call's worker) → one WebCodecs `VideoEncoder` per simulcast layer →
//! encoded frames, each naming its layer. Every layer encodes the same captured frame: the
//! top one at the frame's own size (at most the ladder's rung), the lower ones at their
//! configured sizes (the browser's encoder scales a frame to the size it is configured for).
//! When the ladder moves the top layer as narrow as a lower one, that one goes, and comes
//! back when the top grows past it again. Every captured `VideoFrame` is
//! closed as soon as the encoders have it (or it is dropped), so the capture pipeline never
//! stalls.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use videocall_client::call::{EncodedVideo, LayerSpec, frame_due};
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
/// A frame arriving while this many wait in a layer's encoder is not given to that encoder:
/// a queued frame is latency, and a machine that cannot keep up gets fewer frames, not older
/// ones.
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

/// One layer's settings and figures, shared with its encoder's output callback.
struct Layer {
    /// Its place among the layers (smallest first): the top layer's changes as lower layers
    /// come and go.
    index: Cell<u32>,
    /// The size this layer is encoded at: `None`, the frame's own (the top layer, until the
    /// ladder moves it); else at most this width, the frame's aspect kept.
    spec: Cell<Option<LayerSpec>>,
    bitrate: Cell<u32>,
    fps: Cell<f64>,
    /// Size the encoder is configured for; a frame of another size reconfigures it.
    size: Cell<(u32, u32)>,
    /// The relays' receivers take this layer: it is encoded.
    active: Cell<bool>,
    force_key: Cell<bool>,
    last_key_ms: Cell<f64>,
    /// Timestamp of the last frame this layer encoded, microseconds.
    last_frame_us: Cell<Option<f64>>,
    /// (frame timestamp, capture wall time, layer index) of frames in the encoder: a frame
    /// keeps the index it was encoded under.
    captured: RefCell<VecDeque<(f64, f64, u32)>>,
    dropped: Cell<u64>,
    /// Capture to encoded, milliseconds, the latest frames.
    encode_ms: RefCell<VecDeque<f64>>,
}

impl Layer {
    fn new(index: u32, spec: Option<LayerSpec>, bitrate: u32, fps: f64, active: bool) -> Self {
        Self {
            index: Cell::new(index),
            spec: Cell::new(spec),
            bitrate: Cell::new(bitrate),
            fps: Cell::new(fps),
            size: Cell::new((0, 0)),
            active: Cell::new(active),
            force_key: Cell::new(true),
            last_key_ms: Cell::new(0.0),
            last_frame_us: Cell::new(None),
            captured: RefCell::new(VecDeque::new()),
            dropped: Cell::new(0),
            encode_ms: RefCell::new(VecDeque::new()),
        }
    }

    /// The size this layer encodes a `width` x `height` frame at.
    fn size_for(&self, width: u32, height: u32) -> (u32, u32) {
        self.spec.get().map_or((width, height), |spec| spec.size_for(width, height))
    }
}

/// One layer's encoder and the callbacks it holds.
struct LayerEncoder {
    encoder: VideoEncoder,
    layer: Rc<Layer>,
    _output: Closure<dyn FnMut(EncodedVideoChunk)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

struct Shared {
    codec: String,
    on_encoded: OnEncoded,
    stopped: Cell<bool>,
    /// The camera is off: frames are closed unencoded (the page disables the track).
    paused: Cell<bool>,
    /// The send queue is too long for more video: frames are closed unencoded, counted as
    /// dropped.
    held: Cell<bool>,
    held_frames: Cell<u64>,
}

/// Smallest layer first; the last is the top one. The capture loop reads them for each frame.
type Layers = Rc<RefCell<Vec<LayerEncoder>>>;

pub struct VideoSender {
    layers: Layers,
    dropped_by_gone_layers: Cell<u64>,
    shared: Rc<Shared>,
}

impl VideoSender {
    /// Starts encoding `frames` with `codec`: the top layer at the frames' size, `bitrate` and
    /// `fps`, and under it one layer per `lower` (smallest first), all running until
    /// [`VideoSender::set_active`] says otherwise. Encoded frames go to `on_encoded`. The
    /// sender reads `frames` until it is dropped.
    pub fn start(
        frames: &ReadableStream,
        codec: &str,
        bitrate: u32,
        fps: f64,
        lower: &[LayerSpec],
        on_encoded: OnEncoded,
    ) -> Result<Self, String> {
        let shared = Rc::new(Shared {
            codec: codec.to_owned(),
            on_encoded,
            stopped: Cell::new(false),
            paused: Cell::new(false),
            held: Cell::new(false),
            held_frames: Cell::new(0),
        });
        let mut layers = lower
            .iter()
            .enumerate()
            .map(|(index, spec)| Layer::new(index as u32, Some(*spec), spec.bitrate, spec.fps, true))
            .map(|layer| LayerEncoder::new(Rc::new(layer), &shared))
            .collect::<Result<Vec<_>, String>>()?;
        layers.push(LayerEncoder::new(Rc::new(Layer::new(lower.len() as u32, None, bitrate, fps, true)), &shared)?);
        let layers = Rc::new(RefCell::new(layers));
        spawn_local(capture_loop(reader(frames)?, layers.clone(), shared.clone()));
        Ok(Self { layers, dropped_by_gone_layers: Cell::new(0), shared })
    }

    fn top(&self) -> Rc<Layer> {
        // `start` makes the top layer, and `set_rung` keeps it.
        let layers = self.layers.borrow();
        layers[layers.len() - 1].layer.clone()
    }

    /// The next frame of `layer` will be a keyframe (a receiver asked, or a relay switches
    /// someone to it).
    pub fn request_keyframe(&self, layer: u32) {
        if let Some(l) = self.layers.borrow().get(layer as usize) {
            l.layer.force_key.set(true);
        }
    }

    /// Which layers run (bit n: layer n): what the relays' receivers take. A layer that starts
    /// again starts with a keyframe.
    pub fn set_active(&self, active: u32) {
        for l in self.layers.borrow().iter() {
            let on = active & (1 << l.layer.index.get()) != 0;
            if on && !l.layer.active.get() {
                l.layer.force_key.set(true);
            }
            l.layer.active.set(on);
        }
    }

    /// Moves the top layer to a ladder rung, `top` (the page asks the camera for its size; the
    /// encoder scales frames down to it until then), with `lower` under it. A lower layer no
    /// longer planned is closed (what it still had to encode is dropped: its receivers take
    /// the top's next keyframe instead); a returning one starts paused, until
    /// [`VideoSender::set_active`].
    pub fn set_rung(&self, top: LayerSpec, lower: &[LayerSpec]) -> Result<(), String> {
        let mut layers = self.layers.borrow_mut();
        let Some(top_layer) = layers.pop() else { return Ok(()) };
        let planned = |l: &LayerEncoder| l.layer.spec.get().is_some_and(|s| lower.contains(&s));
        for gone in layers.iter().filter(|l| !planned(l)) {
            self.dropped_by_gone_layers.set(self.dropped_by_gone_layers.get() + gone.layer.dropped.get());
        }
        let mut kept: Vec<LayerEncoder> = layers.drain(..).filter(planned).collect();
        let mut failed = Ok(());
        for spec in lower {
            let index = layers.len() as u32;
            let layer = match kept.iter().position(|l| l.layer.spec.get() == Some(*spec)) {
                Some(at) => kept.remove(at),
                None => {
                    let layer = Rc::new(Layer::new(index, Some(*spec), spec.bitrate, spec.fps, false));
                    match LayerEncoder::new(layer, &self.shared) {
                        Ok(encoder) => encoder,
                        // The layers above it move down: the engine's numbering no longer
                        // holds, but the top layer goes on.
                        Err(e) => {
                            failed = Err(e);
                            break;
                        }
                    }
                }
            };
            layer.layer.index.set(index);
            layers.push(layer);
        }
        let layer = &top_layer.layer;
        layer.index.set(layers.len() as u32);
        layer.spec.set(Some(top));
        layer.bitrate.set(top.bitrate);
        layer.fps.set(top.fps);
        layer.size.set((0, 0)); // reconfigure at the next frame
        layers.push(top_layer);
        failed
    }

    /// Off: frames are closed unencoded; back on, each layer's first is a keyframe.
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.set(paused);
        for l in self.layers.borrow().iter() {
            l.layer.force_key.set(true);
        }
    }

    /// Held: frames are not encoded until released (the encoders go on from the last frame
    /// they had, so no keyframe is needed).
    pub fn set_held(&self, held: bool) {
        self.shared.held.set(held);
    }

    /// Capture-to-encoded times of the top layer's latest frames, milliseconds.
    pub fn encode_ms(&self) -> Vec<f64> {
        self.top().encode_ms.borrow().iter().copied().collect()
    }

    /// Frames not encoded because an encoder was behind, all layers (those gone too), or
    /// because the send queue held video.
    pub fn dropped(&self) -> u64 {
        let now = self.layers.borrow().iter().map(|l| l.layer.dropped.get()).sum::<u64>();
        now + self.dropped_by_gone_layers.get() + self.shared.held_frames.get()
    }

    /// The layers that run (bit n: layer n), and how many there are.
    pub fn layers(&self) -> (u32, u32) {
        let layers = self.layers.borrow();
        let active = layers.iter().filter(|l| l.layer.active.get()).fold(0, |m, l| m | (1 << l.layer.index.get()));
        (active, layers.len() as u32)
    }
}

impl LayerEncoder {
    fn new(layer: Rc<Layer>, shared: &Rc<Shared>) -> Result<Self, String> {
        let (out, shared) = (layer.clone(), shared.clone());
        let output = Closure::<dyn FnMut(EncodedVideoChunk)>::new(move |chunk: EncodedVideoChunk| {
            let mut data = vec![0u8; chunk.byte_length() as usize];
            if chunk.copy_to_with_u8_slice(&mut data).is_err() {
                return;
            }
            let timestamp = chunk.timestamp();
            let (capture_ms, index) = {
                let mut captured = out.captured.borrow_mut();
                while captured.front().is_some_and(|(t, ..)| *t < timestamp) {
                    captured.pop_front();
                }
                let entry = captured.front().filter(|(t, ..)| *t == timestamp);
                entry.map_or((js::wall_ms(), out.index.get()), |(_, c, i)| (*c, *i))
            };
            let mut encode_ms = out.encode_ms.borrow_mut();
            encode_ms.push_back(js::wall_ms() - capture_ms);
            if encode_ms.len() > 300 {
                encode_ms.pop_front();
            }
            drop(encode_ms);
            let (width, height) = out.size.get();
            (shared.on_encoded)(EncodedVideo {
                codec: shared.codec.clone(),
                layer: index,
                keyframe: chunk.type_() == EncodedVideoChunkType::Key,
                data,
                timestamp_us: timestamp,
                duration_us: chunk.duration().unwrap_or(0.0),
                width,
                height,
                capture_ms,
            });
        });
        let failed = layer.clone();
        let error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            web_sys::console::warn_3(&"video encoder error, layer".into(), &failed.index.get().into(), &e);
        });
        let encoder =
            VideoEncoder::new(&VideoEncoderInit::new(error.as_ref().unchecked_ref(), output.as_ref().unchecked_ref()))
                .map_err(|e| js::describe(&e))?;
        Ok(Self { encoder, layer, _output: output, _error: error })
    }

    /// Gives `frame` (captured at `capture_ms`) to this layer's encoder if the layer runs, is
    /// due and keeps up.
    fn offer(&self, codec: &str, frame: &VideoFrame, capture_ms: f64, now: f64) {
        let (layer, encoder) = (&self.layer, &self.encoder);
        if !layer.active.get()
            || encoder.state() == CodecState::Closed
            || !frame_due(layer.fps.get(), layer.last_frame_us.get(), frame.timestamp())
        {
            return;
        }
        let size = layer.size_for(frame.display_width(), frame.display_height());
        if size != layer.size.get() {
            let config = encoder_config(codec, size.0, size.1, layer.bitrate.get(), layer.fps.get());
            if encoder.configure(&config).is_err() {
                return;
            }
            layer.size.set(size);
            layer.force_key.set(true);
        }
        if encoder.encode_queue_size() >= MAX_ENCODE_QUEUE {
            layer.dropped.set(layer.dropped.get() + 1);
            return;
        }
        let key = layer.force_key.get() || now - layer.last_key_ms.get() >= KEYFRAME_INTERVAL_MS;
        let options = VideoEncoderEncodeOptions::new();
        options.set_key_frame(key);
        layer.captured.borrow_mut().push_back((frame.timestamp(), capture_ms, layer.index.get()));
        if encoder.encode_with_options(frame, &options).is_ok() {
            layer.last_frame_us.set(Some(frame.timestamp()));
            if key {
                layer.force_key.set(false);
                layer.last_key_ms.set(now);
            }
        }
    }
}

impl Drop for LayerEncoder {
    fn drop(&mut self) {
        if self.encoder.state() != CodecState::Closed {
            let _ = self.encoder.close();
        }
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.shared.stopped.set(true);
        self.layers.borrow_mut().clear();
    }
}

async fn capture_loop(reader: web_sys::ReadableStreamDefaultReader, layers: Layers, shared: Rc<Shared>) {
    while let Some(value) = next_frame(&reader).await {
        let frame: VideoFrame = value.unchecked_into();
        if shared.stopped.get() {
            frame.close();
            break;
        }
        if shared.held.get() && !shared.paused.get() {
            shared.held_frames.set(shared.held_frames.get() + 1);
        } else if !shared.paused.get() {
            let (capture_ms, now) = (js::wall_ms(), js::now_ms());
            for layer in layers.borrow().iter() {
                layer.offer(&shared.codec, &frame, capture_ms, now);
            }
        }
        frame.close();
    }
    let _ = JsFuture::from(reader.cancel()).await;
}
