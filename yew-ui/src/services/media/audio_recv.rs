//! One peer's audio: Opus `AudioDecoder` → mono samples → the playback worklet.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Float32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{
    AudioData, AudioDataCopyToOptions, AudioDecoder, AudioDecoderConfig, AudioDecoderInit, AudioSampleFormat,
    CodecState, EncodedAudioChunk, EncodedAudioChunkInit, EncodedAudioChunkType,
};

use super::audio_out::AudioOut;
use crate::services::js;

pub struct AudioReceiver {
    decoder: AudioDecoder,
    format: (u32, u32),
    frames: Rc<Cell<u64>>,
    errors: Rc<Cell<u64>>,
    _output: Closure<dyn FnMut(AudioData)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

impl AudioReceiver {
    pub fn new(session: u64, out: Rc<AudioOut>) -> Result<Self, String> {
        let frames = Rc::new(Cell::new(0u64));
        let counted = frames.clone();
        let output = Closure::<dyn FnMut(AudioData)>::new(move |data: AudioData| {
            let n = data.number_of_frames();
            let options = AudioDataCopyToOptions::new(0);
            options.set_format(AudioSampleFormat::F32Planar);
            let samples = Float32Array::new_with_length(n);
            if data.copy_to_with_buffer_source(&samples, &options).is_ok() {
                out.play(session, samples);
                counted.set(counted.get() + 1);
            }
            data.close();
        });
        let errors = Rc::new(Cell::new(0u64));
        let errors_seen = errors.clone();
        let error = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| errors_seen.set(errors_seen.get() + 1));
        let decoder =
            AudioDecoder::new(&AudioDecoderInit::new(error.as_ref().unchecked_ref(), output.as_ref().unchecked_ref()))
                .map_err(|e| js::describe(&e))?;
        Ok(Self { decoder, format: (0, 0), frames, errors, _output: output, _error: error })
    }

    pub fn decode(&mut self, data: &[u8], timestamp: f64, sample_rate: u32, channels: u32) {
        if self.decoder.state() == CodecState::Closed {
            return;
        }
        let format = (sample_rate.max(8_000), channels.clamp(1, 2));
        if format != self.format {
            if self.decoder.configure(&AudioDecoderConfig::new("opus", format.1, format.0)).is_err() {
                return;
            }
            self.format = format;
        }
        // SAFETY: as in `video_recv`: the chunk's constructor copies the view before anything
        // can move wasm memory.
        let view = unsafe { Uint8Array::view(data) };
        let init = EncodedAudioChunkInit::new(&view, 0, EncodedAudioChunkType::Key);
        init.set_timestamp_f64(timestamp);
        if let Ok(chunk) = EncodedAudioChunk::new(&init) {
            let _ = self.decoder.decode(&chunk);
        }
    }

    pub fn frames(&self) -> u64 {
        self.frames.get()
    }

    pub fn errors(&self) -> u64 {
        self.errors.get()
    }
}

impl Drop for AudioReceiver {
    fn drop(&mut self) {
        if self.decoder.state() != CodecState::Closed {
            let _ = self.decoder.close();
        }
    }
}
