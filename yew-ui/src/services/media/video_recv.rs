//! One peer's video (camera or screen): WebCodecs `VideoDecoder` → the drawing worker, which
//! draws into the tile's canvas (`draw.rs`). Decoded frames are transferred, not copied. Deltas are skipped until a keyframe arrives;
//! the caller asks the sender for one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use web_sys::{
    CodecState, EncodedVideoChunk, EncodedVideoChunkInit, EncodedVideoChunkType, VideoDecoder, VideoDecoderConfig,
    VideoDecoderInit, VideoFrame,
};

use super::draw::Tile;
use crate::services::js;

/// Glass-to-glass samples kept for the benchmark.
const LATENCY_SAMPLES: usize = 2_000;

#[derive(Debug, Default)]
pub struct VideoCounters {
    pub frames: u64,
    pub errors: u64,
    /// `performance.now()` when the first frame was decoded and handed to the drawing worker:
    /// milliseconds since the page began loading.
    pub first_frame_ms: Option<f64>,
    pub width: u32,
    pub height: u32,
    /// (frame timestamp, capture wall time) of frames in the decoder.
    pending: VecDeque<(f64, f64)>,
    /// Handed to the drawing worker (decoded) minus capture time, milliseconds.
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
    /// Decoded frames go to `tile` (the drawing worker draws them in its canvas).
    pub fn new(mut tile: Tile) -> Result<Self, String> {
        let counters: Rc<RefCell<VideoCounters>> = Rc::default();
        let drawn = counters.clone();
        let output = Closure::<dyn FnMut(VideoFrame)>::new(move |frame: VideoFrame| {
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
            drop(c);
            tile.draw(frame);
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
