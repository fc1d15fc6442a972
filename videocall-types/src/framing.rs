//! Packet framing on WebTransport streams.
//!
//! A unidirectional stream carries one or more packets, each a 4-byte big-endian length followed
//! by that many bytes of `PacketWrapper`, and ends (FIN) on a packet boundary. A sender may open
//! a stream per packet (no head-of-line blocking between packets, but they may arrive out of
//! order) or keep one stream open for many (ordered, but a lost packet holds back the ones
//! behind it). Datagrams carry one bare packet each and need no framing.
//!
//! [`FrameDecoder`] is the receiving side with no I/O: push what the stream gave, take whole
//! packets out. It never holds more than one packet plus the last chunk pushed, whatever length
//! a peer announces, because it allocates as bytes arrive rather than when a length is read.

use thiserror::Error;

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// How the relay sends to a client, named by `streams=` on the session URL. A client sends a
/// stream per packet for `per-packet` and one long-lived stream otherwise (it is one sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// A stream per packet: no head-of-line blocking, but packets may arrive out of order.
    PerPacket,
    /// One long-lived stream per sender: each sender in order.
    PerSender,
    /// One long-lived stream for everything: fully ordered. The default, as it measured best
    /// under loss (docs/benchmarks.md).
    #[default]
    Single,
}

impl StreamMode {
    pub const ALL: [Self; 3] = [Self::PerPacket, Self::PerSender, Self::Single];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerPacket => "per-packet",
            Self::PerSender => "per-sender",
            Self::Single => "single",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown streams mode {0:?} (per-packet, per-sender or single)")]
pub struct UnknownStreamMode(pub String);

impl std::str::FromStr for StreamMode {
    type Err = UnknownStreamMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| UnknownStreamMode(s.to_owned()))
    }
}

impl std::fmt::Display for StreamMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("packet of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("stream ended inside a packet")]
    Truncated,
}

/// The length prefix of a packet of `len` bytes.
pub fn prefix(len: usize) -> [u8; PREFIX_BYTES] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// A packet with its prefix, ready to write.
pub fn encode(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_BYTES + packet.len());
    out.extend_from_slice(&prefix(packet.len()));
    out.extend_from_slice(packet);
    out
}

/// Splits a stream's bytes into packets.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    start: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing packets larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { buf: Vec::new(), start: 0, max }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, if one is buffered. A `TooLarge` error is reported as soon as the
    /// prefix is read, before the body arrives.
    pub fn next_packet(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let pending = &self.buf[self.start..];
        let Some(head) = pending.first_chunk::<PREFIX_BYTES>() else { return Ok(None) };
        let len = u32::from_be_bytes(*head) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let Some(body) = pending.get(PREFIX_BYTES..PREFIX_BYTES + len) else { return Ok(None) };
        let packet = body.to_vec();
        self.start += PREFIX_BYTES + len;
        Ok(Some(packet))
    }

    /// Whether part of a packet is buffered (a stream ending now would be truncated).
    pub fn mid_packet(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Checks the stream ended on a packet boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.mid_packet() { Err(FrameError::Truncated) } else { Ok(()) }
    }

    /// Bytes buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(decoder: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(p) = decoder.next_packet().unwrap() {
            out.push(p);
        }
        out
    }

    #[test]
    fn packets_split_anywhere_come_out_whole_and_in_order() {
        let packets: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; usize::from(i) * 7]).collect();
        let stream: Vec<u8> = packets.iter().flat_map(|p| encode(p)).collect();
        for chunk in [1, 3, 4, 5, 64, 1000, stream.len()] {
            let mut decoder = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.push(piece);
                got.extend(drain(&mut decoder));
            }
            assert_eq!(got, packets, "chunks of {chunk}");
            assert!(decoder.finish().is_ok());
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn an_announced_oversize_is_refused_before_its_body() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&prefix(101));
        assert_eq!(decoder.next_packet(), Err(FrameError::TooLarge { len: 101, max: 100 }));
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&encode(&[7; 100]));
        assert_eq!(decoder.next_packet(), Ok(Some(vec![7; 100])));
    }

    #[test]
    fn a_stream_ending_inside_a_packet_is_truncated() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&encode(b"whole"));
        decoder.push(&encode(b"cut")[..5]);
        assert_eq!(drain(&mut decoder), vec![b"whole".to_vec()]);
        assert_eq!(decoder.finish(), Err(FrameError::Truncated));
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&[0, 0]);
        assert_eq!(decoder.finish(), Err(FrameError::Truncated));
    }

    #[test]
    fn stream_modes_round_trip_by_name() {
        for mode in StreamMode::ALL {
            assert_eq!(mode.as_str().parse(), Ok(mode));
        }
        assert_eq!("sideways".parse::<StreamMode>(), Err(UnknownStreamMode("sideways".into())));
    }

    #[test]
    fn empty_packets_are_packets() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&encode(b""));
        assert_eq!(decoder.next_packet(), Ok(Some(Vec::new())));
        assert!(decoder.finish().is_ok());
    }

    #[test]
    fn memory_stays_near_one_packet_over_a_long_stream() {
        let mut decoder = FrameDecoder::new(1000);
        let frame = encode(&[1; 999]);
        for _ in 0..10_000 {
            decoder.push(&frame[..500]);
            assert!(decoder.next_packet().unwrap().is_none());
            decoder.push(&frame[500..]);
            assert_eq!(decoder.next_packet().unwrap().map(|p| p.len()), Some(999));
        }
        assert!(decoder.buf.capacity() < 4 * frame.len(), "capacity {}", decoder.buf.capacity());
    }
}
