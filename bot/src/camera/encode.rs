//! Video encoders behind one interface: the V4L2 memory-to-memory hardware encoder
//! (`m2m.rs`) and software H.264 (OpenH264, built from its bundled source).

use anyhow::{Context, Result, bail};
use openh264::OpenH264API;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, FrameType, UsageType};
use openh264::formats::YUVSlices;

use super::coded::Codec;
use super::frame::I420Frame;
use super::m2m::{self, M2mEncoder};

/// Which encoder `bot camera` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncoderChoice {
    /// A V4L2 hardware encoder of the codec when there is one that opens, else software.
    Auto,
    /// A V4L2 hardware encoder, or fail.
    V4l2,
    /// Software (OpenH264).
    Software,
}

/// Opens the encoder `choice` asks for at `width`x`height`.
pub fn open(
    choice: EncoderChoice,
    codec: Codec,
    width: usize,
    height: usize,
    fps: u32,
    bitrate: u32,
) -> Result<Box<dyn VideoEncoder + Send>> {
    if choice != EncoderChoice::Software {
        match m2m::find_encoder(codec) {
            Some(info) => match M2mEncoder::open(&info, codec, width, height, fps, bitrate) {
                Ok(encoder) => return Ok(Box::new(encoder)),
                Err(e) if choice == EncoderChoice::V4l2 => {
                    return Err(e.context(format!("opening the V4L2 encoder {}", info.path.display())));
                }
                Err(e) => eprintln!(
                    "bot camera: the V4L2 encoder {} ({}) did not open ({e:#}); encoding in software",
                    info.path.display(),
                    info.card
                ),
            },
            None if choice == EncoderChoice::V4l2 => {
                bail!("no V4L2 encoder of {codec:?} on this machine (`bot devices` lists the encoders found)")
            }
            None => {}
        }
    }
    match codec {
        Codec::H264 => Ok(Box::new(SoftwareH264::new(bitrate, fps as f32, 0)?)),
        Codec::Vp8 => bail!("VP8 needs a V4L2 hardware encoder here: the software encoder is H.264 (--codec h264)"),
        Codec::Fwht => bail!("FWHT is the kernel's test codec (vicodec): it has no software encoder (--encoder v4l2)"),
    }
}

pub struct Encoded {
    /// One coded frame, standing alone: H.264 as Annex B with SPS and PPS before every
    /// keyframe, so a receiver needs nothing out of band.
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// The timestamp the raw frame went in with (an encoder may return frames late).
    pub timestamp_us: u64,
}

pub trait VideoEncoder {
    /// The WebCodecs codec string receivers configure their decoder with.
    fn codec(&self) -> &str;
    /// What is encoding, for the status line ("openh264 (software)").
    fn name(&self) -> &str;
    /// Whether more encoders like it can run beside it, one per simulcast layer.
    fn simulcast(&self) -> bool {
        true
    }
    /// Encodes one frame; `keyframe` forces one. `None` when the encoder skipped the frame or
    /// has not finished it yet (a later call returns it, with its `timestamp_us`).
    fn encode(&mut self, frame: &I420Frame, keyframe: bool, timestamp_us: u64) -> Result<Option<Encoded>>;
    /// Stops: the frames still inside the encoder.
    fn finish(&mut self) -> Result<Vec<Encoded>> {
        Ok(Vec::new())
    }
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

    fn encode(&mut self, frame: &I420Frame, keyframe: bool, timestamp_us: u64) -> Result<Option<Encoded>> {
        if keyframe {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (frame.width, frame.height);
        let source = YUVSlices::new(frame.planes(), (w, h), (w, w / 2, w / 2));
        let stream = self.encoder.encode(&source).context("encoding")?;
        let kind = stream.frame_type();
        if matches!(kind, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let keyframe = matches!(kind, FrameType::IDR | FrameType::I);
        Ok(Some(Encoded { data: stream.to_vec(), keyframe, timestamp_us }))
    }
}
