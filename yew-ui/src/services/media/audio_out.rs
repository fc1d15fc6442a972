//! Playback: one `AudioContext` on the page with a worklet (`/audio-worklet.js`) that keeps a
//! jitter buffer per peer and mixes them. The call's worker posts decoded samples to it over a
//! channel; it reports back, per peer, the level (for the speaking light) and how much it has
//! played.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Float32Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AudioContext, AudioContextOptions, AudioWorkletNode, AudioWorkletNodeOptions, MessageChannel, MessageEvent,
    MessagePort,
};

use crate::services::js;

/// The rate everything plays at; decoders deliver 48 kHz Opus.
pub const SAMPLE_RATE: u32 = 48_000;

#[derive(Debug, Clone, Copy, Default)]
pub struct PlayoutStats {
    pub level: f32,
    pub played_ms: f64,
}

/// The page's end: the context and the mixing worklet, which plays what the call's worker
/// sends down the port `start` returns.
pub struct Playback {
    context: AudioContext,
    _node: AudioWorkletNode,
}

impl Playback {
    /// Creates the context (call from a user gesture so it may start).
    pub fn context() -> Result<AudioContext, String> {
        let options = AudioContextOptions::new();
        options.set_sample_rate(SAMPLE_RATE as f32);
        let context = AudioContext::new_with_context_options(&options).map_err(|e| js::describe(&e))?;
        let _ = context.resume();
        Ok(context)
    }

    /// Loads the worklet into `context`; returns the playback and the port for the call's
    /// worker (samples in, levels and time played out).
    pub async fn start(context: AudioContext) -> Result<(Self, MessagePort), String> {
        let worklet = context.audio_worklet().map_err(|e| js::describe(&e))?;
        JsFuture::from(worklet.add_module("/audio-worklet.js").map_err(|e| js::describe(&e))?)
            .await
            .map_err(|e| format!("audio worklet: {}", js::describe(&e)))?;
        let options = AudioWorkletNodeOptions::new();
        options.set_number_of_inputs(0);
        options.set_output_channel_count(&Array::of1(&2.into()));
        let node =
            AudioWorkletNode::new_with_options(&context, "peer-mixer", &options).map_err(|e| js::describe(&e))?;
        node.connect_with_audio_node(&context.destination()).map_err(|e| js::describe(&e))?;
        let channel = MessageChannel::new().map_err(|e| js::describe(&e))?;
        let message = js::object();
        js::set(&message, "port", channel.port1());
        node.port()
            .and_then(|p| p.post_message_with_transferable(&message, &Array::of1(&channel.port1())))
            .map_err(|e| js::describe(&e))?;
        let _ = context.resume();
        Ok((Self { context, _node: node }, channel.port2()))
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        let _ = self.context.close();
    }
}

/// The call worker's end: decoded samples to the worklet, its reports back.
pub struct AudioOut {
    port: MessagePort,
    stats: Rc<RefCell<HashMap<u64, PlayoutStats>>>,
    /// `performance.now()` of the worklet's last report: it reports only while it plays.
    reported_ms: Rc<Cell<f64>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

/// The worklet reports four times a second while its context runs.
const SILENT_MS: f64 = 1_000.0;

impl AudioOut {
    pub fn new(port: MessagePort) -> Self {
        let stats: Rc<RefCell<HashMap<u64, PlayoutStats>>> = Rc::default();
        let reported_ms = Rc::new(Cell::new(f64::NEG_INFINITY));
        let (sink, reported) = (stats.clone(), reported_ms.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            reported.set(js::now_ms());
            // {peers: [[session, level, playedMs], ...]}
            let peers = Array::from(&js::get(&event.data(), "peers"));
            let mut stats = sink.borrow_mut();
            for entry in peers.iter() {
                let e = Array::from(&entry);
                let Some(session) = e.get(0).as_string().and_then(|s| s.parse::<u64>().ok()) else { continue };
                stats.insert(
                    session,
                    PlayoutStats {
                        level: e.get(1).as_f64().unwrap_or(0.0) as f32,
                        played_ms: e.get(2).as_f64().unwrap_or(0.0),
                    },
                );
            }
        });
        port.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Self { port, stats, reported_ms, _on_message: on_message }
    }

    /// Queues mono samples from `session`.
    pub fn play(&self, session: u64, samples: Float32Array) {
        let message = js::object();
        // As text: session ids use all 64 bits, more than a JavaScript number holds.
        js::set(&message, "session", session.to_string());
        js::set(&message, "samples", &samples);
        let _ = self.port.post_message_with_transferable(&message, &Array::of1(&samples.buffer()));
    }

    pub fn forget(&self, session: u64) {
        let message = js::object();
        js::set(&message, "remove", session.to_string());
        let _ = self.port.post_message(&message);
    }

    pub fn stats(&self, session: u64) -> PlayoutStats {
        self.stats.borrow().get(&session).copied().unwrap_or_default()
    }

    /// The page's audio context plays (the worklet reported within the last second).
    pub fn running(&self) -> bool {
        js::now_ms() - self.reported_ms.get() < SILENT_MS
    }
}

impl Drop for AudioOut {
    fn drop(&mut self) {
        self.port.set_onmessage(None);
        self.port.close();
    }
}
