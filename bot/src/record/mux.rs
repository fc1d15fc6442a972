//! One recorded file: a participant's camera (or screen) and microphone as sent, in fragmented
//! MP4 (`shiguredo_mp4` builds every box). No I/O and no clock: samples come in with the time
//! they arrived, bytes to append come out. A fragment goes out about every second, so a file
//! cut short by a crash or a full disk plays up to its last whole fragment.
//!
//! Timing: each track's samples are spaced by the sender's own timestamps (WebCodecs
//! microseconds), so audio and video keep the spacing they were captured with; a timestamp that
//! disagrees with the arrival times by more than [`MAX_CLOCK_DISAGREEMENT_MS`] (a broken or
//! hostile sender) is replaced by the arrival spacing. Both tracks start at the file's first
//! video keyframe (audio before it is dropped), and a pause in the audio (a muted microphone)
//! is filled with Opus silence so players keep the tracks together.

use std::num::NonZeroU32;

use shiguredo_mp4::TrackKind;
use shiguredo_mp4::bitstream::h264::{
    H264SampleEntryConfig, LengthSize, annexb_to_length_prefixed, build_avc1_box_from_annexb,
};
use shiguredo_mp4::bitstream::opus::{ChannelCount, OpusSampleEntryConfig, build_opus_box};
use shiguredo_mp4::bitstream::vp8::{Vp8SampleEntryConfig, build_vp08_box};
use shiguredo_mp4::bitstream::vp9::{Vp9SampleEntryConfig, build_vp09_box, parse_frame_header};
use shiguredo_mp4::boxes::SampleEntry;
use shiguredo_mp4::mux::{Fmp4SegmentMuxer, Sample};
use thiserror::Error;

use crate::camera::coded::Codec;

/// Media time between fragments: what a crash can lose, and the write rate (one append per
/// file per second).
pub const FRAGMENT_MS: u64 = 1_000;
/// How long a file waits for its tracks before writing its header: a participant's audio and
/// first keyframe arrive within a few hundred milliseconds of each other after the keys.
const FIRST_FRAGMENT_MS: u64 = 1_000;
/// How long a file of audio alone waits before writing its header, for the participant's camera
/// to join it: a browser's first keyframe to a newcomer sometimes comes 1.1–1.6 s after its
/// audio (the browser recording test saw it in about half its runs), and a camera that joins
/// after the header starts a second file.
const AUDIO_ALONE_WAIT_MS: u64 = 3_000;
/// How long the header waits for a sample of each of its tracks (a camera that sent its
/// keyframe and then stalled): after it, a track with nothing to give is left out of the file,
/// and its next keyframe starts the next file.
const TRACKS_WAIT_MS: u64 = 5_000;
/// A sender timestamp may drift from arrival spacing by this much before arrival spacing is
/// used instead (network jitter is tens of milliseconds; a broken clock is seconds).
pub const MAX_CLOCK_DISAGREEMENT_MS: f64 = 2_000.0;
/// 90 kHz: the customary video timescale (exact for 30, 25, 24 and 60 fps).
const VIDEO_TIMESCALE: u32 = 90_000;
/// Opus always decodes at 48 kHz.
const AUDIO_TIMESCALE: u32 = 48_000;
/// One Opus frame of silence, 20 ms (TOC: CELT fullband 20 ms, one frame), mono and stereo.
const OPUS_SILENCE_MONO: [u8; 3] = [0xf8, 0xff, 0xfe];
const OPUS_SILENCE_STEREO: [u8; 3] = [0xfc, 0xff, 0xfe];
const OPUS_FRAME: u32 = 960;
/// Opus encoders' customary look-ahead at 48 kHz (what browsers write in their own files).
const OPUS_PRE_SKIP: u16 = 312;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MuxError {
    #[error("{codec}: cannot describe this stream: {reason}")]
    Describe { codec: String, reason: String },
    #[error("a codec this recorder does not know: {0:?}")]
    UnknownCodec(String),
    #[error("a file cannot start with a frame that is not a keyframe")]
    NotKeyframe,
    #[error("{0} is not a size a video track can have")]
    Size(String),
    #[error("muxing: {0}")]
    Mux(String),
}

impl From<shiguredo_mp4::mux::MuxError> for MuxError {
    fn from(e: shiguredo_mp4::mux::MuxError) -> Self {
        Self::Mux(e.to_string())
    }
}

/// A video codec as the sender names it (WebCodecs codec strings, or the bot's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Vp8,
    Vp9,
}

impl VideoCodec {
    /// The codec a WebCodecs codec string (what `VideoMetadata` carries) names.
    pub fn parse(codec: &str) -> Result<Self, MuxError> {
        match Codec::from_codec_string(codec) {
            Some(Codec::H264) => Ok(Self::H264),
            Some(Codec::Vp8) => Ok(Self::Vp8),
            _ if codec.starts_with("vp09.") => Ok(Self::Vp9),
            _ => Err(MuxError::UnknownCodec(codec.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::Vp8 => "vp8",
            Self::Vp9 => "vp9",
        }
    }
}

/// One video frame as it arrived.
#[derive(Debug, Clone)]
pub struct VideoIn<'a> {
    pub codec: VideoCodec,
    pub keyframe: bool,
    pub data: &'a [u8],
    pub timestamp_us: f64,
    pub width: u32,
    pub height: u32,
}

/// One Opus packet as it arrived.
#[derive(Debug, Clone)]
pub struct AudioIn<'a> {
    pub data: &'a [u8],
    pub timestamp_us: f64,
    /// What the packet says it lasts (WebCodecs microseconds), when it says.
    pub duration_us: Option<f64>,
    pub channels: u32,
}

/// What a file needs before it can take a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Video before the first keyframe: nothing could decode it.
    NeedKeyframe,
    /// A track this file's header does not have, or a keyframe that describes the stream
    /// differently (another size or codec): the next file starts here.
    Rotate,
}

/// The sample entry a keyframe describes.
pub fn video_entry(frame: &VideoIn) -> Result<SampleEntry, MuxError> {
    let describe = |reason: String| MuxError::Describe { codec: frame.codec.name().into(), reason };
    let size = |v: u32| u16::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| MuxError::Size(v.to_string()));
    Ok(match frame.codec {
        VideoCodec::H264 => SampleEntry::Avc1(
            build_avc1_box_from_annexb(frame.data, &H264SampleEntryConfig { length_size: LengthSize::FourBytes })
                .map_err(|e| describe(e.to_string()))?,
        ),
        VideoCodec::Vp8 => SampleEntry::Vp08(build_vp08_box(&Vp8SampleEntryConfig {
            video_full_range_flag: false,
            colour_primaries: Vp8SampleEntryConfig::COLOUR_PRIMARIES_UNSPECIFIED,
            transfer_characteristics: Vp8SampleEntryConfig::TRANSFER_CHARACTERISTICS_UNSPECIFIED,
            matrix_coefficients: Vp8SampleEntryConfig::MATRIX_COEFFICIENTS_UNSPECIFIED,
            width: size(frame.width)?,
            height: size(frame.height)?,
        })),
        VideoCodec::Vp9 => {
            let header = parse_frame_header(frame.data).map_err(|e| describe(e.to_string()))?;
            SampleEntry::Vp09(
                build_vp09_box(
                    &header,
                    &Vp9SampleEntryConfig {
                        level: Vp9SampleEntryConfig::LEVEL_UNDEFINED,
                        colour_primaries: Vp9SampleEntryConfig::COLOUR_PRIMARIES_UNSPECIFIED,
                        transfer_characteristics: Vp9SampleEntryConfig::TRANSFER_CHARACTERISTICS_UNSPECIFIED,
                        matrix_coefficients: Vp9SampleEntryConfig::MATRIX_COEFFICIENTS_UNSPECIFIED,
                        width: size(frame.width)?,
                        height: size(frame.height)?,
                    },
                )
                .map_err(|e| describe(e.to_string()))?,
            )
        }
    })
}

fn audio_entry(channels: u32) -> SampleEntry {
    SampleEntry::Opus(build_opus_box(&OpusSampleEntryConfig {
        channel_count: if channels >= 2 { ChannelCount::Stereo } else { ChannelCount::Mono },
        pre_skip: OPUS_PRE_SKIP,
        input_sample_rate: AUDIO_TIMESCALE,
        output_gain: 0,
    }))
}

/// A sample waiting for its successor, which fixes its duration.
struct Held {
    data: Vec<u8>,
    keyframe: bool,
    timestamp_us: f64,
    arrival_ms: u64,
    /// What the sample says it lasts, in the timescale (audio).
    own: Option<u32>,
}

struct Track {
    kind: TrackKind,
    timescale: NonZeroU32,
    entry: SampleEntry,
    /// The entry goes with the first sample the muxer sees.
    entry_given: bool,
    held: Option<Held>,
    /// The last duration given, for the held sample when the file ends.
    last_duration: u32,
    /// Media time given to samples so far, in the timescale.
    given: u64,
    /// Stereo (audio only): which silence to fill gaps with.
    stereo: bool,
}

impl Track {
    fn new(kind: TrackKind, timescale: u32, entry: SampleEntry, default_duration: u32) -> Self {
        Self {
            kind,
            timescale: NonZeroU32::new(timescale).unwrap_or(NonZeroU32::MIN),
            entry,
            entry_given: false,
            held: None,
            last_duration: default_duration,
            given: 0,
            stereo: false,
        }
    }

    /// Time from `from` to `to`, in the timescale: the sender's spacing unless it disagrees
    /// with the arrival spacing by more than [`MAX_CLOCK_DISAGREEMENT_MS`]; never zero.
    fn spacing(&self, from: &Held, to_timestamp_us: f64, to_arrival_ms: u64) -> u32 {
        let sender_ms = (to_timestamp_us - from.timestamp_us) / 1000.0;
        let arrival_ms = to_arrival_ms.saturating_sub(from.arrival_ms) as f64;
        let ms = if sender_ms > 0.0 && (sender_ms - arrival_ms).abs() <= MAX_CLOCK_DISAGREEMENT_MS {
            sender_ms
        } else {
            arrival_ms
        };
        ((ms * f64::from(self.timescale.get()) / 1000.0).round() as u32).max(1)
    }
}

/// One sample ready for a fragment.
struct Ready {
    kind: TrackKind,
    duration: u32,
    keyframe: bool,
    entry: Option<SampleEntry>,
    data: Vec<u8>,
}

/// One fMP4 file being written.
pub struct FileMuxer {
    muxer: Fmp4SegmentMuxer,
    video: Option<Track>,
    codec: Option<VideoCodec>,
    audio: Option<Track>,
    /// Arrival of the file's first sample, and of the last fragment.
    started_ms: u64,
    fragment_ms: u64,
    /// The header is written with the first fragment; after it the tracks are fixed.
    header_written: bool,
    ready: Vec<Ready>,
    /// The index is written: nothing more goes in.
    finished: bool,
    /// Bytes handed out, and media time in fragments, milliseconds (the longer track).
    bytes: u64,
}

impl FileMuxer {
    /// A file that starts with this video keyframe.
    pub fn with_video(arrival_ms: u64, frame: &VideoIn) -> Result<Self, MuxError> {
        if !frame.keyframe {
            return Err(MuxError::NotKeyframe);
        }
        let entry = video_entry(frame)?;
        let mut file = Self::empty(arrival_ms);
        file.video = Some(Track::new(TrackKind::Video, VIDEO_TIMESCALE, entry, VIDEO_TIMESCALE / 30));
        file.codec = Some(frame.codec);
        file.hold_video(arrival_ms, frame)?;
        Ok(file)
    }

    /// A file that starts with audio (a participant whose camera is off).
    pub fn with_audio(arrival_ms: u64, packet: &AudioIn) -> Self {
        let mut file = Self::empty(arrival_ms);
        file.add_audio(packet.channels);
        file.hold_audio(arrival_ms, packet);
        file
    }

    fn empty(arrival_ms: u64) -> Self {
        Self {
            muxer: Fmp4SegmentMuxer::new().expect("a muxer with default options"),
            video: None,
            codec: None,
            audio: None,
            started_ms: arrival_ms,
            fragment_ms: arrival_ms,
            header_written: false,
            ready: Vec::new(),
            finished: false,
            bytes: 0,
        }
    }

    fn add_audio(&mut self, channels: u32) {
        let mut track = Track::new(TrackKind::Audio, AUDIO_TIMESCALE, audio_entry(channels), OPUS_FRAME);
        track.stereo = channels >= 2;
        self.audio = Some(track);
    }

    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// The video codec, once there is video.
    pub fn codec(&self) -> Option<VideoCodec> {
        self.codec
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Bytes handed out so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Media time handed out so far, milliseconds (the longer track).
    pub fn duration_ms(&self) -> u64 {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .map(|t| t.given * 1000 / u64::from(t.timescale.get()))
            .max()
            .unwrap_or(0)
    }

    /// A video frame. `Ok(Some(bytes))` when a fragment is ready to append.
    pub fn push_video(
        &mut self,
        arrival_ms: u64,
        frame: &VideoIn,
    ) -> Result<Result<Option<Vec<u8>>, Refused>, MuxError> {
        let Some(track) = &self.video else {
            if self.header_written || !frame.keyframe {
                return Ok(Err(if frame.keyframe { Refused::Rotate } else { Refused::NeedKeyframe }));
            }
            // Video began within the first fragment of an audio file: it joins this file, and
            // the audio before it is dropped so both start together.
            let entry = video_entry(frame)?;
            self.video = Some(Track::new(TrackKind::Video, VIDEO_TIMESCALE, entry, VIDEO_TIMESCALE / 30));
            self.codec = Some(frame.codec);
            if let Some(audio) = &mut self.audio {
                audio.held = None;
            }
            self.started_ms = arrival_ms;
            self.fragment_ms = arrival_ms;
            self.hold_video(arrival_ms, frame)?;
            return Ok(Ok(None));
        };
        if frame.keyframe && video_entry(frame)? != track.entry {
            return Ok(Err(Refused::Rotate));
        }
        self.hold_video(arrival_ms, frame)?;
        self.fragment_if_due(arrival_ms).map(Ok)
    }

    /// An Opus packet. `Ok(Some(bytes))` when a fragment is ready to append.
    pub fn push_audio(
        &mut self,
        arrival_ms: u64,
        packet: &AudioIn,
    ) -> Result<Result<Option<Vec<u8>>, Refused>, MuxError> {
        if self.audio.is_none() {
            if self.header_written {
                return Ok(Err(Refused::Rotate));
            }
            self.add_audio(packet.channels);
        }
        self.hold_audio(arrival_ms, packet);
        self.fragment_if_due(arrival_ms).map(Ok)
    }

    fn hold_video(&mut self, arrival_ms: u64, frame: &VideoIn) -> Result<(), MuxError> {
        let data = match frame.codec {
            // MP4 carries H.264 NAL units with length prefixes, not start codes.
            VideoCodec::H264 => annexb_to_length_prefixed(frame.data, LengthSize::FourBytes)
                .map_err(|e| MuxError::Describe { codec: "h264".into(), reason: e.to_string() })?,
            VideoCodec::Vp8 | VideoCodec::Vp9 => frame.data.to_vec(),
        };
        let Some(track) = &mut self.video else { return Ok(()) };
        let next = Held { data, keyframe: frame.keyframe, timestamp_us: frame.timestamp_us, arrival_ms, own: None };
        if let Some(held) = track.held.take() {
            let duration = track.spacing(&held, frame.timestamp_us, arrival_ms);
            self.ready.push(give(track, held, duration));
        }
        track.held = Some(next);
        Ok(())
    }

    fn hold_audio(&mut self, arrival_ms: u64, packet: &AudioIn) {
        let Some(track) = &mut self.audio else { return };
        // 2.5 to 120 ms: what an Opus packet can hold.
        let own = packet
            .duration_us
            .map(|us| (us * f64::from(AUDIO_TIMESCALE) / 1e6).round() as u32)
            .filter(|d| (120..=OPUS_FRAME * 6).contains(d));
        let next =
            Held { data: packet.data.to_vec(), keyframe: true, timestamp_us: packet.timestamp_us, arrival_ms, own };
        if let Some(held) = track.held.take() {
            let spacing = track.spacing(&held, packet.timestamp_us, arrival_ms);
            // The held packet plays its own length; a longer pause is filled with silence.
            let own = held.own.unwrap_or(track.last_duration).min(spacing);
            self.ready.push(give(track, held, own));
            let silence: &[u8] = if track.stereo { &OPUS_SILENCE_STEREO } else { &OPUS_SILENCE_MONO };
            let mut gap = spacing - own;
            while gap >= OPUS_FRAME {
                let filler = Held { data: silence.to_vec(), keyframe: true, timestamp_us: 0.0, arrival_ms, own: None };
                self.ready.push(give(track, filler, OPUS_FRAME));
                gap -= OPUS_FRAME;
            }
            // A remainder under one frame stretches the last sample slightly.
            if let Some(last) = self.ready.last_mut() {
                last.duration += gap;
                track.given += u64::from(gap);
            }
            track.last_duration = own.clamp(120, OPUS_FRAME * 6);
        }
        track.held = Some(next);
    }

    fn fragment_if_due(&mut self, now_ms: u64) -> Result<Option<Vec<u8>>, MuxError> {
        let wait = match (self.header_written, self.video.is_some()) {
            (true, _) => FRAGMENT_MS,
            (false, true) => FIRST_FRAGMENT_MS,
            (false, false) => AUDIO_ALONE_WAIT_MS,
        };
        if now_ms.saturating_sub(self.fragment_ms) < wait || self.ready.is_empty() {
            return Ok(None);
        }
        if !self.header_written {
            // The header lists the tracks the muxer has seen a sample of: each track gives
            // one before it is written, or is left out.
            let gave = |kind: TrackKind| self.ready.iter().any(|r| r.kind == kind);
            let (video, audio) = (gave(TrackKind::Video), gave(TrackKind::Audio));
            let missing = (self.video.is_some() && !video) || (self.audio.is_some() && !audio);
            if missing && now_ms.saturating_sub(self.started_ms) < TRACKS_WAIT_MS {
                return Ok(None);
            }
            if !video {
                (self.video, self.codec) = (None, None);
            }
            if !audio {
                self.audio = None;
            }
        }
        self.fragment_ms = now_ms;
        self.fragment().map(Some)
    }

    /// The samples ready so far as one fragment (with the header first, the first time).
    fn fragment(&mut self) -> Result<Vec<u8>, MuxError> {
        // One run of payload per track: video first, then audio.
        let mut ready = std::mem::take(&mut self.ready);
        ready.sort_by_key(|r| r.kind != TrackKind::Video);
        let mut samples = Vec::with_capacity(ready.len());
        let mut offset = 0u64;
        for r in &ready {
            samples.push(Sample {
                track_kind: r.kind,
                timescale: if r.kind == TrackKind::Video { nz(VIDEO_TIMESCALE) } else { nz(AUDIO_TIMESCALE) },
                sample_entry: r.entry.clone(),
                duration: r.duration,
                keyframe: r.keyframe,
                composition_time_offset: None,
                data_offset: offset,
                data_size: r.data.len(),
            });
            offset += r.data.len() as u64;
        }
        let metadata = self.muxer.create_media_segment_metadata(&samples)?;
        let mut out = Vec::with_capacity(metadata.len() + offset as usize + 1024);
        if !self.header_written {
            out.extend_from_slice(&self.muxer.init_segment_bytes()?);
            self.header_written = true;
        }
        out.extend_from_slice(&metadata);
        for r in ready {
            out.extend_from_slice(&r.data);
        }
        self.bytes += out.len() as u64;
        Ok(out)
    }

    /// The end of the file: the held samples (an audio packet's own length, a video frame the
    /// one before it), and the random-access index. Nothing when no sample was ever ready.
    pub fn finish(&mut self) -> Result<Vec<u8>, MuxError> {
        for track in [&mut self.video, &mut self.audio].into_iter().flatten() {
            if let Some(held) = track.held.take() {
                // An Opus packet says how long it lasts; a video frame lasts as the one before.
                let duration = held.own.unwrap_or(track.last_duration);
                self.ready.push(give(track, held, duration));
            }
        }
        let mut out = Vec::new();
        if !self.ready.is_empty() {
            out = self.fragment()?;
        }
        if self.header_written && !self.finished {
            self.finished = true;
            let index = self.muxer.mfra_bytes()?;
            self.bytes += index.len() as u64;
            out.extend_from_slice(&index);
        }
        Ok(out)
    }
}

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN)
}

/// `held` with its duration, as the next sample of `track`.
fn give(track: &mut Track, held: Held, duration: u32) -> Ready {
    let entry = (!track.entry_given).then(|| track.entry.clone());
    track.entry_given = true;
    track.given += u64::from(duration);
    if track.kind == TrackKind::Video {
        track.last_duration = duration;
    }
    Ready { kind: track.kind, duration, keyframe: held.keyframe, entry, data: held.data }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use shiguredo_mp4::demux::{Input, Mp4FileDemuxer};
    use testkit::media;

    use super::*;
    use crate::camera::encoded_test_pattern;

    /// A fresh directory under the system's temporary one.
    pub fn scratch(name: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bot-record-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    fn program(name: &str) -> PathBuf {
        testkit::find_program(name)
            .unwrap_or_else(|| panic!("{name} is missing: `cargo xtask test` installs it (Debian's ffmpeg)"))
    }

    /// `seconds` of a 440 Hz tone as Opus packets (ffmpeg encodes, then we take the packets
    /// out of its MP4): (packet, timestamp µs, duration µs).
    pub fn opus_tone(seconds: u32) -> Vec<(Vec<u8>, f64, f64)> {
        let dir = scratch("tone");
        let file = dir.join("tone.mp4");
        let status = Command::new(program("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration={seconds}:sample_rate=48000"))
            .args(["-c:a", "libopus", "-b:a", "32k", "-ac", "1", "-f", "mp4"])
            .arg(&file)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let bytes = std::fs::read(&file).expect("the tone");
        let mut demuxer = Mp4FileDemuxer::new();
        while let Some(required) = demuxer.required_input() {
            demuxer.handle_input(Input { position: 0, data: &bytes[..] });
            if demuxer.required_input() == Some(required) {
                break;
            }
        }
        let mut packets = Vec::new();
        while let Ok(Some(sample)) = demuxer.next_sample() {
            let scale = f64::from(sample.track.timescale.get());
            let data = bytes[sample.data_offset as usize..][..sample.data_size].to_vec();
            packets.push((data, sample.timestamp as f64 * 1e6 / scale, f64::from(sample.duration) * 1e6 / scale));
        }
        let _ = std::fs::remove_dir_all(&dir);
        packets
    }

    /// `frames` frames of ffmpeg's test source encoded by libvpx (`vp8` or `vp9`), read out of
    /// its IVF file: (frame, keyframe).
    fn libvpx_frames(codec: &str, frames: usize) -> Vec<(Vec<u8>, bool)> {
        let dir = scratch(codec);
        let file = dir.join("out.ivf");
        let encoder = if codec == "vp8" { "libvpx" } else { "libvpx-vp9" };
        let status = Command::new(program("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"])
            .args(["-frames:v", &frames.to_string(), "-c:v", encoder, "-g", "30", "-b:v", "300k", "-f", "ivf"])
            .arg(&file)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let bytes = std::fs::read(&file).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // IVF: a 32-byte file header, then per frame a 12-byte header (4-byte size, 8-byte pts).
        let mut at = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
        let mut out = Vec::new();
        while at + 12 <= bytes.len() {
            let size = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let frame = bytes[at + 12..at + 12 + size].to_vec();
            // VP8: bit 0 of the first byte is 0 on a keyframe. VP9 (profile 0): the frame
            // marker, profile, show-existing and then frame_type 0 on a keyframe.
            let key = if codec == "vp8" { frame[0] & 1 == 0 } else { frame[0] & 0b0000_0100 == 0 };
            out.push((frame, key));
            at += 12 + size;
        }
        out
    }

    #[test]
    fn vp8_and_vp9_are_recorded_as_sent() {
        for (codec, name) in [(VideoCodec::Vp8, "vp8"), (VideoCodec::Vp9, "vp9")] {
            let frames = libvpx_frames(name, 90);
            assert!(frames[0].1 && !frames[1].1, "{name}: keyframes read from the stream");
            let dir = scratch(name);
            let path = dir.join("vp.mp4");
            let at = |i: usize| VideoIn {
                codec,
                keyframe: frames[i].1,
                data: &frames[i].0,
                timestamp_us: i as f64 * 33_333.3,
                width: 320,
                height: 240,
            };
            let mut file = FileMuxer::with_video(0, &at(0)).unwrap();
            let mut out = Vec::new();
            for i in 1..frames.len() {
                out.extend(file.push_video(i as u64 * 33, &at(i)).unwrap().unwrap().unwrap_or_default());
            }
            out.extend(file.finish().unwrap());
            std::fs::write(&path, &out).unwrap();
            let probe = ffprobe(&path);
            let stream = &probe["streams"][0];
            assert_eq!((stream["codec_name"].as_str(), stream["width"].as_u64()), (Some(name), Some(320)), "{probe}");
            assert!((2.7..3.3).contains(&duration(&probe)), "{name}: {probe}");
            decodes_cleanly(&path);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    fn video<'a>(data: &'a [u8], keyframe: bool, i: usize) -> VideoIn<'a> {
        VideoIn { codec: VideoCodec::H264, keyframe, data, timestamp_us: i as f64 * 33_333.3, width: 320, height: 240 }
    }

    fn duration(probe: &serde_json::Value) -> f64 {
        media::duration_seconds(probe).unwrap()
    }

    fn ffprobe(path: &Path) -> serde_json::Value {
        media::ffprobe(path).unwrap()
    }

    fn decodes_cleanly(path: &Path) {
        media::decodes_cleanly(path).unwrap()
    }

    #[test]
    fn camera_and_microphone_make_a_file_players_open() {
        let frames = encoded_test_pattern(320, 240, 150, 90);
        let tone = opus_tone(5);
        let dir = scratch("av");
        let path = dir.join("av.mp4");
        let mut out = Vec::new();
        let (mut v, mut a) = (0, 0);
        let mut file = None::<FileMuxer>;
        // Interleaved as they would arrive: by time, 20 ms audio packets between frames.
        while v < frames.len() || a < tone.len() {
            let video_next = a >= tone.len() || (v < frames.len() && v as f64 * 33_333.3 <= tone[a].1);
            if video_next {
                let (data, key) = &frames[v];
                let frame = video(data, *key, v);
                let arrival = (v as f64 * 33.333) as u64 + 1_000;
                match &mut file {
                    None => file = Some(FileMuxer::with_video(arrival, &frame).expect("a keyframe starts the file")),
                    Some(f) => out.extend(f.push_video(arrival, &frame).unwrap().unwrap().unwrap_or_default()),
                }
                v += 1;
            } else {
                let (data, ts, dur) = &tone[a];
                let packet = AudioIn { data, timestamp_us: *ts, duration_us: Some(*dur), channels: 1 };
                if let Some(f) = &mut file {
                    out.extend(
                        f.push_audio((*ts / 1000.0) as u64 + 1_000, &packet).unwrap().unwrap().unwrap_or_default(),
                    );
                }
                a += 1;
            }
        }
        let mut file = file.unwrap();
        assert!(file.has_video() && file.has_audio());
        out.extend(file.finish().unwrap());
        std::fs::write(&path, &out).unwrap();
        let probe = ffprobe(&path);
        let streams = probe["streams"].as_array().unwrap();
        let codecs: Vec<_> = streams.iter().map(|s| s["codec_name"].as_str().unwrap()).collect();
        assert_eq!(codecs, ["h264", "opus"], "{probe}");
        assert_eq!((streams[0]["width"].as_u64(), streams[0]["height"].as_u64()), (Some(320), Some(240)));
        let seconds = duration(&probe);
        assert!((4.5..5.5).contains(&seconds), "5 s recorded, ffprobe says {seconds} s");
        decodes_cleanly(&path);
        let level = media::audio_rms_db(&path).unwrap();
        assert!(level > -30.0, "the tone is heard: RMS {level} dB");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_cut_short_plays_to_its_last_fragment() {
        let frames = encoded_test_pattern(320, 240, 120, 60);
        let dir = scratch("cut");
        let path = dir.join("cut.mp4");
        let mut file = FileMuxer::with_video(0, &video(&frames[0].0, true, 0)).unwrap();
        let mut out = Vec::new();
        let mut fragments = 0;
        for (i, (data, key)) in frames.iter().enumerate().skip(1) {
            if let Some(bytes) = file.push_video(i as u64 * 33, &video(data, *key, i)).unwrap().unwrap() {
                out.extend(bytes);
                fragments += 1;
            }
        }
        assert!(fragments >= 3, "a fragment a second: {fragments}");
        // A crash: no index, no last fragment, and half of a fragment being written.
        let whole = out.len();
        out.extend(file.finish().unwrap().iter().take(700));
        std::fs::write(&path, &out[..whole]).unwrap();
        let seconds = duration(&ffprobe(&path));
        assert!(seconds >= 2.5, "the fragments written play: {seconds} s");
        decodes_cleanly(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn video_waits_for_a_keyframe_and_a_new_size_starts_a_new_file() {
        let small = encoded_test_pattern(320, 240, 2, 1);
        let large = encoded_test_pattern(640, 480, 2, 1);
        let mut file = FileMuxer::with_video(0, &video(&small[0].0, true, 0)).unwrap();
        let mut frame = video(&large[0].0, true, 1);
        (frame.width, frame.height) = (640, 480);
        assert_eq!(file.push_video(33, &frame).unwrap(), Err(Refused::Rotate));
        let deltas = encoded_test_pattern(320, 240, 2, 30);
        assert!(!deltas[1].1);
        assert!(matches!(FileMuxer::with_video(0, &video(&deltas[1].0, false, 1)), Err(MuxError::NotKeyframe)));
        // An audio file takes a camera that starts within its first fragment, at a keyframe.
        let tone = opus_tone(1);
        let packet =
            |i: usize| AudioIn { data: &tone[i].0, timestamp_us: tone[i].1, duration_us: Some(tone[i].2), channels: 1 };
        let mut file = FileMuxer::with_audio(0, &packet(0));
        assert_eq!(file.push_video(100, &video(&deltas[1].0, false, 1)).unwrap(), Err(Refused::NeedKeyframe));
        assert_eq!(file.push_video(200, &video(&deltas[0].0, true, 0)).unwrap(), Ok(None));
        assert!(file.has_video() && file.has_audio());
    }

    #[test]
    fn a_camera_that_stalls_after_its_keyframe_still_gets_its_track() {
        let frames = encoded_test_pattern(320, 240, 60, 60);
        let tone = opus_tone(4);
        let dir = scratch("stall");
        let path = dir.join("stall.mp4");
        let mut file = FileMuxer::with_video(0, &video(&frames[0].0, true, 0)).unwrap();
        let mut out = Vec::new();
        // 1.5 s of audio alone after the keyframe, then the camera goes on.
        for (data, ts, dur) in tone.iter().take_while(|(_, ts, _)| *ts < 1_500_000.0) {
            let packet = AudioIn { data, timestamp_us: *ts, duration_us: Some(*dur), channels: 1 };
            out.extend(file.push_audio((*ts / 1000.0) as u64, &packet).unwrap().unwrap().unwrap_or_default());
        }
        for (i, (data, key)) in frames.iter().enumerate().skip(1) {
            let mut frame = video(data, *key, i);
            frame.timestamp_us += 1_500_000.0;
            out.extend(file.push_video(1_500 + i as u64 * 33, &frame).unwrap().unwrap().unwrap_or_default());
        }
        out.extend(file.finish().unwrap());
        std::fs::write(&path, &out).unwrap();
        let probe = ffprobe(&path);
        let codecs: Vec<_> =
            probe["streams"].as_array().unwrap().iter().map(|s| s["codec_name"].as_str().unwrap()).collect();
        assert_eq!(codecs, ["h264", "opus"], "{probe}");
        decodes_cleanly(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_hostile_clock_cannot_stretch_or_shrink_the_recording() {
        let frames = encoded_test_pattern(320, 240, 60, 60);
        let mut file = FileMuxer::with_video(0, &video(&frames[0].0, true, 0)).unwrap();
        for (i, (data, key)) in frames.iter().enumerate().skip(1) {
            let mut frame = video(data, *key, i);
            // Timestamps that jump an hour back and forth.
            frame.timestamp_us = if i % 2 == 0 { 3.6e9 } else { 0.0 };
            let _ = file.push_video(i as u64 * 33, &frame).unwrap();
        }
        let _ = file.finish().unwrap();
        let ms = file.duration_ms();
        assert!((1_800..2_200).contains(&ms), "2 s of arrivals make 2 s of video, not {ms} ms");
    }

    #[test]
    fn a_muted_microphone_becomes_silence_not_a_gap() {
        let tone = opus_tone(1);
        let mut file = None::<FileMuxer>;
        let mut last = 0;
        for (i, (data, ts, dur)) in tone.iter().enumerate() {
            // Half a second of nothing after the first quarter.
            let shift = if i > tone.len() / 4 { 500_000.0 } else { 0.0 };
            let packet = AudioIn { data, timestamp_us: ts + shift, duration_us: Some(*dur), channels: 1 };
            let arrival = ((ts + shift) / 1000.0) as u64;
            last = arrival;
            match &mut file {
                None => file = Some(FileMuxer::with_audio(arrival, &packet)),
                Some(f) => {
                    let _ = f.push_audio(arrival, &packet).unwrap();
                }
            }
        }
        let mut file = file.unwrap();
        let _ = file.finish().unwrap();
        let ms = file.duration_ms();
        assert!(
            ms.abs_diff(last + 20) <= 40,
            "1.5 s of media for 1 s of sound and a 0.5 s pause: {ms} ms, last at {last}"
        );
    }
}
