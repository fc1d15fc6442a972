//! Each peer's decoders (camera, screen, microphone) and what we measure about what they send
//! us: the engine decides what arrives and when to ask for a keyframe; this is where it is
//! decoded and drawn.

use std::collections::VecDeque;
use std::rc::Rc;

use videocall_client::call::{IncomingAudio, IncomingVideo, VideoStream};

use crate::services::js;
use crate::services::media::audio_out::AudioOut;
use crate::services::media::audio_recv::AudioReceiver;
use crate::services::media::draw::{Frames, Tile};
use crate::services::media::video_recv::{Decoded, VideoReceiver};
use crate::types::room::canvas_id;
use crate::types::stats::RateWindow;

/// Capture-to-arrival samples kept per peer.
const ARRIVAL_SAMPLES: usize = 300;

#[derive(Default)]
pub struct PeerMedia {
    pub video: Option<VideoReceiver>,
    pub screen: Option<VideoReceiver>,
    pub audio: Option<AudioReceiver>,
    pub codec: String,
    pub rates: RateWindow,
    pub frames_seen: u64,
    /// Capture (their clock) to arrival here (ours), milliseconds, the latest camera frames.
    pub arrival_ms: VecDeque<f64>,
}

impl PeerMedia {
    /// Decodes one frame (drawn by the drawing worker at the end of `frames`); false when the
    /// decoder cannot go on without a keyframe.
    pub fn decode(&mut self, frame: &IncomingVideo, frames: &Rc<Frames>) -> bool {
        let screen = frame.stream == VideoStream::Screen;
        let slot = if screen { &mut self.screen } else { &mut self.video };
        if slot.is_none() {
            let canvas = canvas_id(frame.stream, frame.session);
            *slot = VideoReceiver::new(Tile::new(canvas, frames.clone())).ok();
        }
        let Some(receiver) = slot.as_mut() else { return true };
        if frame.after_gap {
            receiver.lost_frames();
        }
        let decoded = receiver.decode(&frame.codec, frame.keyframe, &frame.data, frame.timestamp_us, frame.capture_ms);
        if !screen {
            if frame.capture_ms > 0.0 {
                self.arrival_ms.push_back(js::wall_ms() - frame.capture_ms);
                if self.arrival_ms.len() > ARRIVAL_SAMPLES {
                    self.arrival_ms.pop_front();
                }
            }
            self.rates.bytes(js::now_ms(), frame.data.len());
            if self.codec != frame.codec {
                self.codec.clone_from(&frame.codec);
            }
        }
        decoded != Decoded::NeedKeyframe
    }

    pub fn play(&mut self, audio: &IncomingAudio, out: &Rc<AudioOut>) {
        if self.audio.is_none() {
            self.audio = AudioReceiver::new(audio.session, out.clone()).ok();
        }
        if let Some(receiver) = self.audio.as_mut() {
            receiver.decode(&audio.data, audio.timestamp_us, audio.sample_rate, audio.channels);
        }
    }
}
