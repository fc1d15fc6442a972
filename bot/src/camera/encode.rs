//! Video encoders behind one interface: software H.264 (OpenH264, built from its bundled
//! source) now; the V4L2 memory-to-memory hardware encoder plugs in beside it.

use anyhow::{Context, Result};
use openh264::OpenH264API;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, FrameType, UsageType};
use openh264::formats::YUVSlices;

use super::frame::I420Frame;

pub struct Encoded {
    /// Annex B: start codes, SPS and PPS before every keyframe, so a receiver needs nothing
    /// out of band.
    pub data: Vec<u8>,
    pub keyframe: bool,
}

pub trait VideoEncoder {
    /// The WebCodecs codec string receivers configure their decoder with.
    fn codec(&self) -> &str;
    /// What is encoding, for the status line ("openh264 (software)").
    fn name(&self) -> &str;
    /// Encodes one frame; `keyframe` forces one. `None` when the encoder skipped the frame.
    fn encode(&mut self, frame: &I420Frame, keyframe: bool) -> Result<Option<Encoded>>;
}

pub struct SoftwareH264 {
    encoder: Encoder,
}

impl SoftwareH264 {
    /// `threads`: encoder threads (0: OpenH264 decides).
    pub fn new(bitrate: u32, fps: f32, threads: u16) -> Result<Self> {
        let config = EncoderConfig::new()
            .num_threads(threads)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps))
            .usage_type(UsageType::CameraVideoRealTime)
            // Late frames are better dropped by the rate control than queued.
            .skip_frames(true);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config).context("starting OpenH264")?;
        Ok(Self { encoder })
    }
}

impl VideoEncoder for SoftwareH264 {
    fn codec(&self) -> &str {
        // Constrained Baseline, level 4.0: what every browser's H.264 decoder takes.
        "avc1.42e028"
    }

    fn name(&self) -> &str {
        "openh264 (software)"
    }

    fn encode(&mut self, frame: &I420Frame, keyframe: bool) -> Result<Option<Encoded>> {
        if keyframe {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (frame.width, frame.height);
        let luma = w * h;
        let planes = (&frame.data[..luma], &frame.data[luma..luma * 5 / 4], &frame.data[luma * 5 / 4..]);
        let source = YUVSlices::new(planes, (w, h), (w, w / 2, w / 2));
        let stream = self.encoder.encode(&source).context("encoding")?;
        let kind = stream.frame_type();
        if matches!(kind, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        Ok(Some(Encoded { data: stream.to_vec(), keyframe: matches!(kind, FrameType::IDR | FrameType::I) }))
    }
}
