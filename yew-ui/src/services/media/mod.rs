//! Media: capture, WebCodecs encoding and decoding, and audio playback through a worklet.

pub mod audio_out;
pub mod audio_recv;
pub mod audio_send;
pub mod capture;
pub mod draw;
pub mod level;
pub mod video_recv;
pub mod video_send;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MediaStreamTrack, MediaStreamTrackProcessor, MediaStreamTrackProcessorInit, ReadableStream,
    ReadableStreamDefaultReader,
};

use super::js;

/// A track's frames (`VideoFrame`s or `AudioData`s) as they are captured, as a stream the
/// page can transfer to the call's worker. `buffer`: frames the processor holds while the
/// reader is busy; beyond it the oldest are dropped.
pub fn track_frames(track: &MediaStreamTrack, buffer: u16) -> Result<ReadableStream, String> {
    let init = MediaStreamTrackProcessorInit::new(track);
    init.set_max_buffer_size(buffer);
    let processor = MediaStreamTrackProcessor::new(&init).map_err(|e| js::describe(&e))?;
    Ok(processor.readable().unchecked_into())
}

/// The reader of a stream of frames.
pub fn reader(frames: &ReadableStream) -> Result<ReadableStreamDefaultReader, String> {
    frames.get_reader().dyn_into().map_err(|e| js::describe(&e))
}

/// The next frame from `reader`, or `None` when the track ended.
pub async fn next_frame(reader: &ReadableStreamDefaultReader) -> Option<wasm_bindgen::JsValue> {
    let result = JsFuture::from(reader.read()).await.ok()?;
    if js::get(&result, "done").as_bool().unwrap_or(true) {
        return None;
    }
    Some(js::get(&result, "value"))
}
