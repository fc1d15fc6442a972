//! Coded video as each codec lays it out: which frames are keyframes, and whether a received
//! frame is well formed. No I/O: the encoders use it to label what the hardware gave them, and
//! `bot watch` to check what arrived.

use thiserror::Error;

/// A codec the bot can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    /// H.264, Annex B: what every browser decodes.
    H264,
    /// VP8.
    Vp8,
    /// The kernel's FWHT test codec (`vicodec`): proves the hardware path; browsers cannot
    /// decode it.
    Fwht,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodedError {
    #[error("an empty frame")]
    Empty,
    #[error("H.264: no start code at the beginning")]
    NoStartCode,
    #[error("H.264: a keyframe without {0}")]
    KeyframeMissing(&'static str),
    #[error("H.264: NAL unit with the forbidden bit set")]
    ForbiddenBit,
    #[error("VP8: frame tag says version {0}")]
    Vp8Version(u8),
    #[error("VP8: keyframe without the start code")]
    Vp8StartCode,
    #[error("VP8: first partition of {size} bytes in a frame of {len}")]
    Vp8Partition { size: usize, len: usize },
    #[error("FWHT: {0} bytes is shorter than the header")]
    FwhtShort(usize),
    #[error("FWHT: bad magic")]
    FwhtMagic,
    #[error("FWHT: version {0}, expected 1 to 3")]
    FwhtVersion(u32),
    #[error("FWHT: {width}x{height}")]
    FwhtSize { width: u32, height: u32 },
    #[error("FWHT: header says {said} bytes of payload, the frame holds {held}")]
    FwhtPayload { said: usize, held: usize },
}

/// What a well-formed frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub keyframe: bool,
    /// Picture size, where the frame carries it (VP8 and FWHT keyframes, every FWHT frame).
    pub size: Option<(u32, u32)>,
}

const FWHT_HEADER: usize = 44;
const FWHT_MAGIC1: u32 = 0x4f4f_4f4f;
const FWHT_MAGIC2: u32 = 0xffff_ffff;
const FWHT_I_FRAME: u32 = 1 << 10;

impl Codec {
    /// The V4L2 pixel format a hardware encoder produces on its CAPTURE queue.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Self::H264 => *b"H264",
            Self::Vp8 => *b"VP80",
            Self::Fwht => *b"FWHT",
        }
    }

    /// The codec named by a WebCodecs codec string (what `VideoMetadata` carries).
    pub fn from_codec_string(codec: &str) -> Option<Self> {
        if codec.starts_with("avc1.") || codec.starts_with("avc3.") {
            Some(Self::H264)
        } else if codec == "vp8" {
            Some(Self::Vp8)
        } else if codec == "fwht" {
            Some(Self::Fwht)
        } else {
            None
        }
    }

    /// Checks one encoded frame and says whether it is a keyframe.
    pub fn check(self, data: &[u8]) -> Result<FrameInfo, CodedError> {
        if data.is_empty() {
            return Err(CodedError::Empty);
        }
        match self {
            Self::H264 => check_h264(data),
            Self::Vp8 => check_vp8(data),
            Self::Fwht => check_fwht(data),
        }
    }
}

/// NAL unit headers of an Annex B access unit, in order.
pub fn nal_headers(data: &[u8]) -> Vec<u8> {
    let mut headers = Vec::new();
    let mut i = 0;
    while i + 3 < data.len() {
        let start = if data[i..].starts_with(&[0, 0, 1]) {
            3
        } else if data[i..].starts_with(&[0, 0, 0, 1]) {
            4
        } else {
            i += 1;
            continue;
        };
        if let Some(&header) = data.get(i + start) {
            headers.push(header);
        }
        i += start;
    }
    headers
}

fn check_h264(data: &[u8]) -> Result<FrameInfo, CodedError> {
    if !(data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])) {
        return Err(CodedError::NoStartCode);
    }
    let headers = nal_headers(data);
    if headers.iter().any(|h| h & 0x80 != 0) {
        return Err(CodedError::ForbiddenBit);
    }
    let types: Vec<u8> = headers.iter().map(|h| h & 0x1f).collect();
    let keyframe = types.contains(&5);
    if keyframe {
        // A viewer joining at this keyframe needs nothing else.
        for (kind, name) in [(7, "a sequence parameter set"), (8, "a picture parameter set")] {
            if !types.contains(&kind) {
                return Err(CodedError::KeyframeMissing(name));
            }
        }
    }
    Ok(FrameInfo { keyframe, size: None })
}

fn check_vp8(data: &[u8]) -> Result<FrameInfo, CodedError> {
    // RFC 6386 9.1: a 3-byte frame tag, then on keyframes a start code and the size.
    let tag = data.get(..3).ok_or(CodedError::Vp8Partition { size: 0, len: data.len() })?;
    let tag = u32::from(tag[0]) | u32::from(tag[1]) << 8 | u32::from(tag[2]) << 16;
    let keyframe = tag & 1 == 0;
    let version = ((tag >> 1) & 7) as u8;
    if version > 3 {
        return Err(CodedError::Vp8Version(version));
    }
    let partition = (tag >> 5) as usize;
    let header = if keyframe { 10 } else { 3 };
    if header + partition > data.len() {
        return Err(CodedError::Vp8Partition { size: partition, len: data.len() });
    }
    let mut size = None;
    if keyframe {
        if data[3..6] != [0x9d, 0x01, 0x2a] {
            return Err(CodedError::Vp8StartCode);
        }
        let width = u32::from(u16::from_le_bytes([data[6], data[7]]) & 0x3fff);
        let height = u32::from(u16::from_le_bytes([data[8], data[9]]) & 0x3fff);
        size = Some((width, height));
    }
    Ok(FrameInfo { keyframe, size })
}

fn check_fwht(data: &[u8]) -> Result<FrameInfo, CodedError> {
    // `struct fwht_cframe_hdr` (drivers/media/test-drivers/vicodec/codec-fwht.h): two magic
    // words, then big-endian version, width, height, flags, four colour fields and the size
    // of the payload that follows.
    if data.len() < FWHT_HEADER {
        return Err(CodedError::FwhtShort(data.len()));
    }
    let word = |i: usize| u32::from_be_bytes([data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]]);
    if word(0) != FWHT_MAGIC1 || word(1) != FWHT_MAGIC2 {
        return Err(CodedError::FwhtMagic);
    }
    let version = word(2);
    if !(1..=3).contains(&version) {
        return Err(CodedError::FwhtVersion(version));
    }
    let (width, height) = (word(3), word(4));
    if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
        return Err(CodedError::FwhtSize { width, height });
    }
    let said = word(10) as usize;
    let held = data.len() - FWHT_HEADER;
    if said != held {
        return Err(CodedError::FwhtPayload { said, held });
    }
    Ok(FrameInfo { keyframe: word(5) & FWHT_I_FRAME != 0, size: Some((width, height)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwht(flags: u32, payload: usize) -> Vec<u8> {
        let words = [FWHT_MAGIC1, FWHT_MAGIC2, 3, 640, 480, flags, 0, 0, 0, 0, payload as u32];
        let mut frame: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        frame.resize(FWHT_HEADER + payload, 7);
        frame
    }

    #[test]
    fn fwht_frames_are_checked_and_labelled() {
        assert_eq!(
            Codec::Fwht.check(&fwht(FWHT_I_FRAME, 100)),
            Ok(FrameInfo { keyframe: true, size: Some((640, 480)) })
        );
        assert!(!Codec::Fwht.check(&fwht(0, 10)).unwrap().keyframe);
        let mut truncated = fwht(0, 100);
        truncated.truncate(100);
        assert_eq!(Codec::Fwht.check(&truncated), Err(CodedError::FwhtPayload { said: 100, held: 56 }));
        let mut bad = fwht(0, 0);
        bad[0] = 0;
        assert_eq!(Codec::Fwht.check(&bad), Err(CodedError::FwhtMagic));
        assert_eq!(Codec::Fwht.check(&bad[..20]), Err(CodedError::FwhtShort(20)));
    }

    #[test]
    fn h264_keyframes_carry_their_parameter_sets() {
        let sps_pps_idr = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9, 9];
        assert_eq!(Codec::H264.check(&sps_pps_idr), Ok(FrameInfo { keyframe: true, size: None }));
        assert_eq!(Codec::H264.check(&[0, 0, 1, 0x41, 5, 5]), Ok(FrameInfo { keyframe: false, size: None }));
        assert_eq!(
            Codec::H264.check(&[0, 0, 1, 0x65, 5, 5]),
            Err(CodedError::KeyframeMissing("a sequence parameter set"))
        );
        assert_eq!(Codec::H264.check(&[1, 2, 3, 4]), Err(CodedError::NoStartCode));
        assert_eq!(Codec::H264.check(&[0, 0, 1, 0xc1, 5]), Err(CodedError::ForbiddenBit));
    }

    #[test]
    fn vp8_frame_tags_are_read() {
        // Keyframe, version 0, shown, first partition of 2 bytes; 320x240.
        let tag = (2u32 << 5) | (1 << 4);
        let mut key = vec![tag as u8, (tag >> 8) as u8, (tag >> 16) as u8, 0x9d, 0x01, 0x2a, 64, 1, 240, 0];
        key.extend([0, 0]);
        assert_eq!(Codec::Vp8.check(&key), Ok(FrameInfo { keyframe: true, size: Some((320, 240)) }));
        let delta = [(tag | 1) as u8, (tag >> 8) as u8, 0, 1, 2];
        assert!(!Codec::Vp8.check(&delta).unwrap().keyframe);
        key[3] = 0;
        assert_eq!(Codec::Vp8.check(&key), Err(CodedError::Vp8StartCode));
        assert_eq!(Codec::Vp8.check(&delta[..4]), Err(CodedError::Vp8Partition { size: 2, len: 4 }));
    }

    #[test]
    fn codec_strings_name_codecs() {
        assert_eq!(Codec::from_codec_string("avc1.42e028"), Some(Codec::H264));
        assert_eq!(Codec::from_codec_string("vp8"), Some(Codec::Vp8));
        assert_eq!(Codec::from_codec_string("fwht"), Some(Codec::Fwht));
        assert_eq!(Codec::from_codec_string("vp09.00.10.08"), None);
    }
}
