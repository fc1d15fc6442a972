//! One peer's video (camera or screen): WebCodecs `VideoDecoder` → a canvas in its tile. Frames
//! are drawn and closed in the output callback. Deltas are skipped until a keyframe arrives;
//! the caller asks the sender for one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use web_sys::{
    CanvasRenderingContext2d, CodecState, EncodedVideoChunk, EncodedVideoChunkInit, EncodedVideoChunkType,
    HtmlCanvasElement, VideoDecoder, VideoDecoderConfig, VideoDecoderInit, VideoFrame,
};

use crate::services::js;

/// Glass-to-glass samples kept for the benchmark.
const LATENCY_SAMPLES: usize = 2_000;

#[derive(Debug, Default)]
pub struct VideoCounters {
    pub frames: u64,
    pub errors: u64,
    /// `performance.now()` when the first frame was drawn: milliseconds since the page began
    /// loading.
    pub first_frame_ms: Option<f64>,
    pub width: u32,
    pub height: u32,
    /// (frame timestamp, capture wall time) of frames in the decoder.
    pending: VecDeque<(f64, f64)>,
    /// Render time minus capture time, milliseconds.
    pub latency_ms: VecDeque<f64>,
}

pub struct VideoReceiver {
    decoder: VideoDecoder,
    codec: Option<String>,
    waiting_for_key: bool,
    counters: Rc<RefCell<VideoCounters>>,
    _output: Closure<dyn FnMut(VideoFrame)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

/// What `decode` needs from the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Queued,
    /// Skipped: ask the sender for a keyframe.
    NeedKeyframe,
}

impl VideoReceiver {
    /// Draws into the canvas with element id `canvas_id` (looked up per frame, so tiles may
    /// re-render freely).
    pub fn new(canvas_id: String) -> Result<Self, String> {
        let counters: Rc<RefCell<VideoCounters>> = Rc::default();
        let drawn = counters.clone();
        let mut canvas = Canvas { id: canvas_id, target: None };
        let output = Closure::<dyn FnMut(VideoFrame)>::new(move |frame: VideoFrame| {
            canvas.draw(&frame);
            let mut c = drawn.borrow_mut();
            c.frames += 1;
            c.first_frame_ms.get_or_insert_with(js::now_ms);
            (c.width, c.height) = (frame.display_width(), frame.display_height());
            let timestamp = frame.timestamp();
            while c.pending.front().is_some_and(|(t, _)| *t < timestamp) {
                c.pending.pop_front();
            }
            if let Some((_, captured)) = c.pending.front().copied().filter(|(t, _)| *t == timestamp) {
                c.pending.pop_front();
                if captured > 0.0 {
                    c.latency_ms.push_back(js::wall_ms() - captured);
                    if c.latency_ms.len() > LATENCY_SAMPLES {
                        c.latency_ms.pop_front();
                    }
                }
            }
            frame.close();
        });
        let failed = counters.clone();
        let error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            failed.borrow_mut().errors += 1;
            web_sys::console::warn_2(&"video decoder error".into(), &e);
        });
        let decoder = new_decoder(&output, &error)?;
        Ok(Self { decoder, codec: None, waiting_for_key: true, counters, _output: output, _error: error })
    }

    pub fn counters(&self) -> Rc<RefCell<VideoCounters>> {
        self.counters.clone()
    }

    pub fn decode(&mut self, codec: &str, key: bool, data: &[u8], timestamp: f64, capture_ms: f64) -> Decoded {
        if self.decoder.state() == CodecState::Closed {
            // A decode error closes the decoder: start again at the next keyframe.
            match new_decoder(&self._output, &self._error) {
                Ok(d) => self.decoder = d,
                Err(_) => return Decoded::NeedKeyframe,
            }
            self.codec = None;
            self.waiting_for_key = true;
        }
        if self.codec.as_deref() != Some(codec) {
            if !key {
                return Decoded::NeedKeyframe;
            }
            let config = VideoDecoderConfig::new(codec);
            config.set_optimize_for_latency(true);
            if self.decoder.configure(&config).is_err() {
                return Decoded::NeedKeyframe;
            }
            self.codec = Some(codec.to_owned());
        }
        if self.waiting_for_key && !key {
            return Decoded::NeedKeyframe;
        }
        self.waiting_for_key = false;
        let kind = if key { EncodedVideoChunkType::Key } else { EncodedVideoChunkType::Delta };
        // SAFETY: a view of `data` in wasm memory, read (copied) by the chunk's constructor
        // right away, before anything here could allocate and move that memory: one copy of
        // each frame fewer than copying it into a JavaScript array first.
        let view = unsafe { Uint8Array::view(data) };
        let init = EncodedVideoChunkInit::new(&view, 0, kind);
        init.set_timestamp_f64(timestamp);
        let chunk = EncodedVideoChunk::new(&init);
        drop(init);
        let Ok(chunk) = chunk else { return Decoded::Queued };
        self.counters.borrow_mut().pending.push_back((timestamp, capture_ms));
        if self.decoder.decode(&chunk).is_err() {
            self.waiting_for_key = true;
            return Decoded::NeedKeyframe;
        }
        Decoded::Queued
    }

    /// A gap in the sender's sequence: deltas after it would decode to garbage.
    pub fn lost_frames(&mut self) {
        self.waiting_for_key = true;
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        if self.decoder.state() != CodecState::Closed {
            let _ = self.decoder.close();
        }
    }
}

fn new_decoder(
    output: &Closure<dyn FnMut(VideoFrame)>,
    error: &Closure<dyn FnMut(JsValue)>,
) -> Result<VideoDecoder, String> {
    VideoDecoder::new(&VideoDecoderInit::new(error.as_ref().unchecked_ref(), output.as_ref().unchecked_ref()))
        .map_err(|e| js::describe(&e))
}

/// The tile's canvas and its 2D context, looked up once and again only when the tile's canvas
/// was replaced (not per frame).
struct Canvas {
    id: String,
    target: Option<(HtmlCanvasElement, CanvasRenderingContext2d)>,
}

impl Canvas {
    fn draw(&mut self, frame: &VideoFrame) {
        if self.target.as_ref().is_none_or(|(canvas, _)| !canvas.is_connected()) {
            self.target = find(&self.id);
        }
        let Some((canvas, context)) = &self.target else { return };
        let (w, h) = (frame.display_width(), frame.display_height());
        if canvas.width() != w || canvas.height() != h {
            canvas.set_width(w);
            canvas.set_height(h);
        }
        let _ = context.draw_image_with_video_frame(frame, 0.0, 0.0);
    }
}

fn find(canvas_id: &str) -> Option<(HtmlCanvasElement, CanvasRenderingContext2d)> {
    let canvas = web_sys::window()?.document()?.get_element_by_id(canvas_id)?.dyn_into::<HtmlCanvasElement>().ok()?;
    // Opaque and desynchronized: no alpha blending, and the canvas reaches the screen without
    // waiting for the page's next composited frame (a low-latency canvas).
    let options = js::object();
    js::set(&options, "alpha", false);
    js::set(&options, "desynchronized", true);
    let context = canvas.get_context_with_context_options("2d", &options).ok()??;
    Some((canvas, context.unchecked_into()))
}
