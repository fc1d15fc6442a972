//! What a synthetic packet carries, and how big it is. No I/O.
//!
//! `data` of each MEDIA packet: magic `VCLD`, kind (1 video, 2 audio), the sender's sequence
//! number (one counter over all its packets), the send time in nanoseconds since the Unix
//! epoch, then padding up to the wanted size.

use rand::RngExt;

const MAGIC: &[u8; 4] = b"VCLD";
pub const HEADER_LEN: usize = 4 + 1 + 8 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub kind: Kind,
    pub seq: u64,
    pub sent_at_ns: u64,
}

pub fn encode(stamp: Stamp, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size.max(HEADER_LEN));
    data.extend_from_slice(MAGIC);
    data.push(match stamp.kind {
        Kind::Video => 1,
        Kind::Audio => 2,
    });
    data.extend_from_slice(&stamp.seq.to_be_bytes());
    data.extend_from_slice(&stamp.sent_at_ns.to_be_bytes());
    data.resize(size.max(HEADER_LEN), 0x5a);
    data
}

pub fn decode(data: &[u8]) -> Option<Stamp> {
    if data.len() < HEADER_LEN || &data[..4] != MAGIC {
        return None;
    }
    let kind = match data[4] {
        1 => Kind::Video,
        2 => Kind::Audio,
        _ => return None,
    };
    let seq = u64::from_be_bytes(data[5..13].try_into().ok()?);
    let sent_at_ns = u64::from_be_bytes(data[13..21].try_into().ok()?);
    Some(Stamp { kind, seq, sent_at_ns })
}

/// Frame sizes like a real encoder's: a keyframe every `keyframe_every` frames, `KEY_RATIO`
/// times a delta frame, each size jittered by ±30 %, averaging `average` bytes overall.
pub struct FrameSizer {
    delta: f64,
    keyframe_every: u32,
    frame: u32,
}

/// Keyframes of VP8/H.264 webcam video at these rates are typically 5–10 times a delta frame.
const KEY_RATIO: f64 = 6.0;

impl FrameSizer {
    pub fn new(average: usize, keyframe_every: u32) -> Self {
        let k = f64::from(keyframe_every.max(1));
        // k frames average `average`: (k - 1) deltas + one keyframe of KEY_RATIO deltas.
        let delta = average as f64 * k / (k - 1.0 + KEY_RATIO);
        Self { delta, keyframe_every: keyframe_every.max(1), frame: 0 }
    }

    /// The next frame's size and whether it is a keyframe.
    pub fn next(&mut self, rng: &mut impl rand::Rng) -> (usize, bool) {
        let key = self.frame % self.keyframe_every == 0;
        self.frame = self.frame.wrapping_add(1);
        let base = if key { self.delta * KEY_RATIO } else { self.delta };
        let size = base * rng.random_range(0.7..1.3);
        ((size as usize).max(HEADER_LEN), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_garbage_is_refused() {
        let stamp = Stamp { kind: Kind::Audio, seq: 77, sent_at_ns: 1_700_000_000_123_456_789 };
        let data = encode(stamp, 100);
        assert_eq!(data.len(), 100);
        assert_eq!(decode(&data), Some(stamp));
        assert_eq!(decode(&data[..10]), None);
        assert_eq!(decode(b"XXXX\x01aaaaaaaaaaaaaaaaaaaa"), None);
    }

    #[test]
    fn frame_sizes_average_out_with_periodic_keyframes() {
        let mut sizer = FrameSizer::new(6000, 60);
        let mut rng = rand::rng();
        let frames: Vec<(usize, bool)> = (0..6000).map(|_| sizer.next(&mut rng)).collect();
        let average = frames.iter().map(|f| f.0).sum::<usize>() as f64 / frames.len() as f64;
        assert!((average - 6000.0).abs() < 150.0, "average {average}");
        assert_eq!(frames.iter().filter(|f| f.1).count(), 100);
        assert!(frames[0].1 && frames[60].1 && !frames[1].1);
    }
}
