//! One receiver's queue of packets waiting to be written, bounded in packets and bytes.
//!
//! Drop policy when full: the oldest non-keyframe media goes first, then the oldest keyframe
//! media. Control packets (keys, presence) are never dropped: a receiver that cannot even keep
//! up with those is too slow to stay, and [`Outbox::push`] says so.

use std::collections::VecDeque;

use bytes::Bytes;

/// How a queued packet may be treated under overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    /// Keys, presence, connection packets: never dropped.
    Control,
    /// Media a decoder can do without (delta frames, audio).
    Media,
    /// Media marked as a keyframe: dropped only when no other media is left to drop.
    KeyMedia,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    pub max_packets: usize,
    pub max_bytes: usize,
}

/// What a push cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub packets: u64,
    pub bytes: u64,
}

/// The receiver is too slow: the queue is full of packets that must not be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outbox full of control packets")]
pub struct Overflow;

#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<(Bytes, PacketClass)>,
    bytes: usize,
    limits: OutboxLimits,
}

impl Outbox {
    pub fn new(limits: OutboxLimits) -> Self {
        Self { queue: VecDeque::new(), bytes: 0, limits }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn over_limit(&self) -> bool {
        self.queue.len() > self.limits.max_packets || self.bytes > self.limits.max_bytes
    }

    /// Queues a packet, dropping older media if the queue is over its bounds.
    pub fn push(&mut self, packet: Bytes, class: PacketClass) -> Result<Dropped, Overflow> {
        self.bytes += packet.len();
        self.queue.push_back((packet, class));
        let mut dropped = Dropped::default();
        while self.over_limit() {
            let victim = [PacketClass::Media, PacketClass::KeyMedia]
                .into_iter()
                .find_map(|wanted| self.queue.iter().position(|(_, c)| *c == wanted));
            let Some(index) = victim else {
                return Err(Overflow);
            };
            if let Some((packet, _)) = self.queue.remove(index) {
                self.bytes -= packet.len();
                dropped.packets += 1;
                dropped.bytes += packet.len() as u64;
            }
        }
        Ok(dropped)
    }

    /// Moves up to `max` packets, oldest first, into `out`.
    pub fn drain_into(&mut self, out: &mut Vec<Bytes>, max: usize) {
        for _ in 0..max {
            let Some((packet, _)) = self.queue.pop_front() else { break };
            self.bytes -= packet.len();
            out.push(packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PacketClass::*;

    fn outbox(max_packets: usize, max_bytes: usize) -> Outbox {
        Outbox::new(OutboxLimits { max_packets, max_bytes })
    }

    fn p(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    fn drain(o: &mut Outbox) -> Vec<u8> {
        let mut out = Vec::new();
        o.drain_into(&mut out, usize::MAX);
        out.iter().map(|b| b[0]).collect()
    }

    #[test]
    fn oldest_delta_media_goes_first_then_keyframes_and_control_stays() {
        let mut o = outbox(3, usize::MAX);
        o.push(p(1, 10), KeyMedia).unwrap();
        o.push(p(2, 10), Control).unwrap();
        o.push(p(3, 10), Media).unwrap();
        assert_eq!(o.push(p(4, 10), Media).unwrap(), Dropped { packets: 1, bytes: 10 });
        assert_eq!(o.push(p(5, 10), Control).unwrap().packets, 1);
        assert_eq!(drain(&mut o), vec![1, 2, 5]);
        assert_eq!(o.bytes(), 0);

        o.push(p(1, 10), KeyMedia).unwrap();
        o.push(p(2, 10), Control).unwrap();
        o.push(p(3, 10), KeyMedia).unwrap();
        o.push(p(4, 10), Control).unwrap();
        assert_eq!(drain(&mut o), vec![2, 3, 4]);
    }

    #[test]
    fn byte_bound_holds_and_a_queue_of_control_overflows() {
        let mut o = outbox(100, 100);
        for i in 0..10 {
            o.push(p(i, 30), Media).unwrap();
            assert!(o.bytes() <= 100);
        }
        assert_eq!(drain(&mut o), vec![7, 8, 9]);
        o.push(p(1, 60), Control).unwrap();
        assert_eq!(o.push(p(2, 60), Control), Err(Overflow));
    }

    #[test]
    fn drain_takes_at_most_max_in_order() {
        let mut o = outbox(10, 1000);
        for i in 0..5 {
            o.push(p(i, 1), Media).unwrap();
        }
        let mut out = Vec::new();
        o.drain_into(&mut out, 2);
        assert_eq!(out.iter().map(|b| b[0]).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!((o.len(), o.bytes()), (3, 3));
    }
}
