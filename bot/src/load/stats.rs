//! What one receiver saw, merged into a run's figures. No I/O.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Sequence numbers received from one sender.
#[derive(Default)]
struct SenderTrack {
    bits: Vec<u64>,
    lowest: Option<u64>,
    highest: Option<u64>,
    count: u64,
}

impl SenderTrack {
    /// Returns (duplicate, reordered).
    fn record(&mut self, seq: u64) -> (bool, bool) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.bits[word] & mask != 0 {
            return (true, false);
        }
        self.bits[word] |= mask;
        self.count += 1;
        self.lowest = Some(self.lowest.map_or(seq, |l| l.min(seq)));
        let reordered = self.highest.is_some_and(|h| seq < h);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        (false, reordered)
    }

    /// Sequence numbers missing between the first and the last received.
    fn gaps(&self) -> u64 {
        match (self.lowest, self.highest) {
            (Some(l), Some(h)) => (h - l + 1).saturating_sub(self.count),
            _ => 0,
        }
    }
}

pub struct ReceiverStats {
    /// Per sender and stream (its kind and simulcast layer; both 0 without simulcast).
    senders: HashMap<String, HashMap<(i32, u32), SenderTrack>>,
    pub unique: u64,
    pub bytes: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// In merged figures: the receivers' [`ReceiverStats::gaps`], summed.
    pub gaps_seen: u64,
    /// Relay latency in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Default for ReceiverStats {
    fn default() -> Self {
        Self {
            senders: HashMap::new(),
            unique: 0,
            bytes: 0,
            duplicates: 0,
            reordered: 0,
            gaps_seen: 0,
            // 1 µs to 1 h, 3 significant figures: cannot fail for these bounds.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        }
    }
}

impl ReceiverStats {
    pub fn record(&mut self, sender: &str, stream: (i32, u32), seq: u64, bytes: usize, latency_us: u64) {
        let streams = match self.senders.get_mut(sender) {
            Some(streams) => streams,
            None => self.senders.entry(sender.to_owned()).or_default(),
        };
        let track = streams.entry(stream).or_default();
        let (duplicate, reordered) = track.record(seq);
        if duplicate {
            self.duplicates += 1;
            return;
        }
        self.unique += 1;
        self.bytes += bytes as u64;
        self.reordered += u64::from(reordered);
        let _ = self.latency_us.record(latency_us.max(1));
    }

    /// Packets missing inside the streams received: loss, when a receiver need not get every
    /// packet sent (simulcast: one layer of each sender, joined at a keyframe).
    pub fn gaps(&self) -> u64 {
        self.senders.values().flat_map(|s| s.values()).map(SenderTrack::gaps).sum()
    }

    pub fn merge(&mut self, other: &ReceiverStats) {
        self.unique += other.unique;
        self.bytes += other.bytes;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        let _ = self.latency_us.add(&other.latency_us);
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub server: String,
    pub transport: super::TransportChoice,
    /// WebTransport stream mode, when anyone used WebTransport.
    pub streams: Option<&'static str>,
    pub rooms: usize,
    pub participants: usize,
    pub seconds: f64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub expected_deliveries: u64,
    pub delivered_packets: u64,
    pub delivered_bytes: u64,
    pub delivered_packets_per_sec: f64,
    pub delivered_mbytes_per_sec: f64,
    pub lost: u64,
    pub loss_percent: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub latency_ms: Latency,
    /// Simulcast (`--simulcast`): each receiver takes one layer of each sender, so loss counts
    /// what is missing inside the streams it took, not what it was never meant to get.
    pub simulcast: bool,
    /// With simulcast, what each receiver showed (`--view`).
    pub view: Option<super::participant::ViewMix>,
    /// Participants per room that sent audio (`--talkers`).
    pub talkers: usize,
    /// What each receiver took, Mbit/s: the mean over receivers and the largest.
    pub downlink_mbit_per_receiver: f64,
    pub downlink_mbit_max: f64,
    /// How the flooders (`--flooders`) fared, when there were any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood: Option<super::flooder::FloodReport>,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        }
    }
}

impl Summary {
    pub fn table(&self) -> String {
        let l = &self.latency_ms;
        let flood = match &self.flood {
            Some(f) => format!(
                "flooders     {} sessions, {} packets accepted, {} tokens refused, longest session {:.0} ms; ended: {:?}\n",
                f.sessions, f.packets_sent, f.tokens_refused, f.longest_session_ms, f.endings
            ),
            None => String::new(),
        };
        let table = format!(
            "server       {} over {:?}\n\
             participants {} in {} room(s), sending for {:.1} s\n\
             sent         {} packets, {:.2} MB ({:.0} packets/s)\n\
             delivered    {} of {} expected ({:.0} packets/s, {:.2} MB/s)\n\
             loss         {} ({:.3} %)\n\
             duplicates   {}\n\
             reordered    {}\n\
             latency ms   p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}\n\
             downlink     {:.2} Mbit/s per receiver (largest {:.2}){}\n\
             talkers      {} per room\n",
            self.server,
            self.transport,
            self.participants,
            self.rooms,
            self.seconds,
            self.sent_packets,
            self.sent_bytes as f64 / 1e6,
            self.sent_packets as f64 / self.seconds,
            self.delivered_packets,
            self.expected_deliveries,
            self.delivered_packets_per_sec,
            self.delivered_mbytes_per_sec,
            self.lost,
            self.loss_percent,
            self.duplicates,
            self.reordered,
            l.p50,
            l.p95,
            l.p99,
            l.max,
            self.downlink_mbit_per_receiver,
            self.downlink_mbit_max,
            match self.view {
                Some(view) => format!(", simulcast: one layer of each sender shown ({view:?} view)"),
                None => String::new(),
            },
            self.talkers,
        );
        table + &flood
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_reordering_are_told_apart() {
        let mut s = ReceiverStats::default();
        for seq in [0, 1, 3, 2, 3, 200] {
            s.record("a", (0, 0), seq, 10, 500);
        }
        s.record("b", (0, 0), 0, 10, 1500);
        assert_eq!((s.unique, s.duplicates, s.reordered, s.bytes), (6, 1, 1, 60));
        // 0..=200 from "a" with 5 received: 196 missing in between.
        assert_eq!(s.gaps(), 196);
        assert_eq!(s.latency_us.len(), 6);
    }
}
