//! Microphone frames (a `MediaStreamTrackProcessor`'s stream, opened on the page and transferred
//! to the call's worker) → WebCodecs Opus `AudioEncoder` → encoded packets.
//! Muted means nothing is encoded or sent (not silence).

use std::cell::Cell;
use std::rc::Rc;

use videocall_client::call::EncodedAudio;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    AudioData, AudioEncoder, AudioEncoderConfig, AudioEncoderInit, CodecState, EncodedAudioChunk, ReadableStream,
};

use super::{next_frame, reader};
use crate::services::js;

/// Opus at 32 kb/s: transparent speech, a fraction of a video stream.
const OPUS_BITRATE: u32 = 32_000;

pub type OnAudio = Rc<dyn Fn(EncodedAudio)>;

struct Shared {
    muted: Cell<bool>,
    stopped: Cell<bool>,
    /// (sample rate, channels) the encoder is configured for.
    format: Cell<(u32, u32)>,
}

pub struct AudioSender {
    encoder: AudioEncoder,
    shared: Rc<Shared>,
    _output: Closure<dyn FnMut(EncodedAudioChunk)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

impl AudioSender {
    pub fn start(frames: &ReadableStream, on_audio: OnAudio) -> Result<Self, String> {
        let shared = Rc::new(Shared { muted: Cell::new(false), stopped: Cell::new(false), format: Cell::new((0, 0)) });
        let out = shared.clone();
        let output = Closure::<dyn FnMut(EncodedAudioChunk)>::new(move |chunk: EncodedAudioChunk| {
            let mut data = vec![0u8; chunk.byte_length() as usize];
            if chunk.copy_to_with_u8_slice(&mut data).is_err() {
                return;
            }
            let (sample_rate, channels) = out.format.get();
            on_audio(EncodedAudio {
                data,
                timestamp_us: chunk.timestamp(),
                duration_us: chunk.duration().unwrap_or(0.0),
                sample_rate,
                channels,
            });
        });
        let error = Closure::<dyn FnMut(JsValue)>::new(|e: JsValue| {
            web_sys::console::warn_2(&"audio encoder error".into(), &e);
        });
        let encoder =
            AudioEncoder::new(&AudioEncoderInit::new(error.as_ref().unchecked_ref(), output.as_ref().unchecked_ref()))
                .map_err(|e| js::describe(&e))?;
        spawn_local(capture_loop(reader(frames)?, encoder.clone(), shared.clone()));
        Ok(Self { encoder, shared, _output: output, _error: error })
    }

    pub fn set_muted(&self, muted: bool) {
        self.shared.muted.set(muted);
    }
}

impl Drop for AudioSender {
    fn drop(&mut self) {
        self.shared.stopped.set(true);
        if self.encoder.state() != CodecState::Closed {
            let _ = self.encoder.close();
        }
    }
}

async fn capture_loop(reader: web_sys::ReadableStreamDefaultReader, encoder: AudioEncoder, shared: Rc<Shared>) {
    while let Some(value) = next_frame(&reader).await {
        let data: AudioData = value.unchecked_into();
        if shared.stopped.get() || encoder.state() == CodecState::Closed {
            data.close();
            break;
        }
        if shared.muted.get() {
            data.close();
            continue;
        }
        let format = (data.sample_rate() as u32, data.number_of_channels().min(2));
        if format != shared.format.get() {
            let config = AudioEncoderConfig::new("opus", format.1, format.0);
            config.set_bitrate(OPUS_BITRATE);
            if encoder.configure(&config).is_err() {
                data.close();
                continue;
            }
            shared.format.set(format);
        }
        let _ = encoder.encode(&data);
        data.close();
    }
    let _ = JsFuture::from(reader.cancel()).await;
}
