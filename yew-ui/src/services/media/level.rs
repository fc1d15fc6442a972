//! The microphone level, from an `AnalyserNode`: the lobby's meter and our own speaking light.

use web_sys::{AnalyserNode, AudioContext, MediaStream};

use crate::services::js;

pub struct LevelMeter {
    _context: AudioContext,
    analyser: AnalyserNode,
    buffer: Vec<f32>,
}

impl LevelMeter {
    pub fn new(stream: &MediaStream) -> Result<Self, String> {
        let context = AudioContext::new().map_err(|e| js::describe(&e))?;
        let source = context.create_media_stream_source(stream).map_err(|e| js::describe(&e))?;
        let analyser = context.create_analyser().map_err(|e| js::describe(&e))?;
        analyser.set_fft_size(1024);
        source.connect_with_audio_node(&analyser).map_err(|e| js::describe(&e))?;
        let _ = context.resume();
        Ok(Self { _context: context, analyser, buffer: vec![0.0; 1024] })
    }

    /// RMS of the latest 1024 samples, 0..1.
    pub fn level(&mut self) -> f32 {
        self.analyser.get_float_time_domain_data(&mut self.buffer);
        let sum: f32 = self.buffer.iter().map(|s| s * s).sum();
        (sum / self.buffer.len() as f32).sqrt()
    }
}
