//! Per-peer receive statistics over a sliding second: what the diagnostics panel shows.

use std::collections::VecDeque;

/// Counters a receiver keeps per peer; rates are computed over the last `WINDOW_MS`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerStats {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frames_decoded: u64,
    pub decode_errors: u64,
    pub audio_frames: u64,
    pub audio_played_ms: f64,
    pub dropped_packets: u64,
    pub fps: f64,
    pub bitrate_bps: f64,
    pub rtt_ms: Option<f64>,
    /// Video frames missing from the sequence, per thousand, over the last report interval.
    pub loss_permille: u32,
    pub screen_frames: u64,
    /// The layer of their camera the relay forwards us (0 the smallest), once a frame came.
    pub layer: Option<u32>,
    /// How loud their decoded audio plays (RMS): the loudest speaker takes the large tile.
    pub audio_level: f32,
}

const WINDOW_MS: f64 = 2_000.0;

/// Decoded frames and received bytes with their times, for rates over a window.
#[derive(Debug, Default)]
pub struct RateWindow {
    frames: VecDeque<f64>,
    bytes: VecDeque<(f64, usize)>,
}

impl RateWindow {
    pub fn frame(&mut self, now: f64) {
        self.frames.push_back(now);
        self.trim(now);
    }

    pub fn bytes(&mut self, now: f64, n: usize) {
        self.bytes.push_back((now, n));
        self.trim(now);
    }

    fn trim(&mut self, now: f64) {
        while self.frames.front().is_some_and(|t| now - t > WINDOW_MS) {
            self.frames.pop_front();
        }
        while self.bytes.front().is_some_and(|(t, _)| now - t > WINDOW_MS) {
            self.bytes.pop_front();
        }
    }

    /// (frames per second, bits per second) at `now`.
    pub fn rates(&mut self, now: f64) -> (f64, f64) {
        self.trim(now);
        let seconds = WINDOW_MS / 1000.0;
        let bits: usize = self.bytes.iter().map(|(_, n)| n * 8).sum();
        (self.frames.len() as f64 / seconds, bits as f64 / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_the_window() {
        let mut w = RateWindow::default();
        for i in 0..60 {
            let t = i as f64 * 33.3;
            w.frame(t);
            w.bytes(t, 1000);
        }
        let (fps, bps) = w.rates(2000.0);
        assert!((fps - 30.0).abs() < 1.0, "{fps}");
        assert!((bps - 240_000.0).abs() < 8_000.0, "{bps}");
        assert_eq!(w.rates(10_000.0), (0.0, 0.0));
    }
}
