//! One receiver's queue of packets waiting to be written, bounded in packets and bytes.
//!
//! Drop policy when full: the oldest non-keyframe media goes first, then the oldest keyframe
//! media. Control packets (keys, presence) are never dropped: a receiver that cannot even keep
//! up with those is too slow to stay, and [`Outbox::push`] says so. So that no sender can make
//! a receiver look too slow, one sender's control packets may fill only a share of the queue
//! ([`limits::CONTROL_SHARE_PER_SENDER`]); beyond it [`Outbox::push_from`] refuses the packet
//! and blames the sender.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::{SessionId, limits};

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

/// Why a packet was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The receiver is too slow: the queue is full of packets that must not be dropped.
    #[error("outbox full of control packets")]
    Overflow,
    /// The sender already holds its whole share of this receiver's control queue.
    #[error("one sender's control packets fill their share of the outbox")]
    SenderShare,
}

#[derive(Debug)]
pub struct Outbox {
    /// Each packet with its class and, for a client's control packet, its sender.
    queue: VecDeque<(Bytes, PacketClass, Option<SessionId>)>,
    bytes: usize,
    limits: OutboxLimits,
    /// Control packets (count, bytes) queued per sender.
    control_by_sender: HashMap<SessionId, (usize, usize)>,
}

impl Outbox {
    pub fn new(limits: OutboxLimits) -> Self {
        Self { queue: VecDeque::new(), bytes: 0, limits, control_by_sender: HashMap::new() }
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

    /// Queues a packet of the relay's own (presence, moderation), dropping older media if the
    /// queue is over its bounds.
    pub fn push(&mut self, packet: Bytes, class: PacketClass) -> Result<Dropped, Refused> {
        self.push_from(packet, class, None)
    }

    /// Queues a packet from the session `from` (`None`: the relay's own). A control packet from
    /// a sender that already holds its share of the queue is refused, and nothing changes.
    pub fn push_from(
        &mut self,
        packet: Bytes,
        class: PacketClass,
        from: Option<SessionId>,
    ) -> Result<Dropped, Refused> {
        let from = from.filter(|_| class == PacketClass::Control);
        if let Some(sender) = from {
            let (packets, bytes) = self.control_by_sender.get(&sender).copied().unwrap_or_default();
            let share = limits::CONTROL_SHARE_PER_SENDER;
            if packets + 1 > (self.limits.max_packets / share).max(1)
                || bytes + packet.len() > (self.limits.max_bytes / share).max(1)
            {
                return Err(Refused::SenderShare);
            }
            let held = self.control_by_sender.entry(sender).or_default();
            held.0 += 1;
            held.1 += packet.len();
        }
        self.bytes += packet.len();
        self.queue.push_back((packet, class, from));
        let mut dropped = Dropped::default();
        while self.over_limit() {
            let victim = [PacketClass::Media, PacketClass::KeyMedia]
                .into_iter()
                .find_map(|wanted| self.queue.iter().position(|(_, c, _)| *c == wanted));
            let Some(index) = victim else {
                return Err(Refused::Overflow);
            };
            if let Some((packet, _, _)) = self.queue.remove(index) {
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
            let Some((packet, _, from)) = self.queue.pop_front() else { break };
            self.bytes -= packet.len();
            if let Some(sender) = from {
                self.release(sender, packet.len());
            }
            out.push(packet);
        }
    }

    fn release(&mut self, sender: SessionId, len: usize) {
        if let Some(held) = self.control_by_sender.get_mut(&sender) {
            held.0 -= 1;
            held.1 -= len;
            if held.0 == 0 {
                self.control_by_sender.remove(&sender);
            }
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
        assert_eq!(o.push(p(2, 60), Control), Err(Refused::Overflow));
    }

    #[test]
    fn one_senders_control_packets_fill_only_their_share() {
        let share = limits::CONTROL_SHARE_PER_SENDER;
        let mut o = outbox(16 * share, usize::MAX);
        let (flooder, other) = (SessionId::new(7).unwrap(), SessionId::new(8).unwrap());
        for i in 0..16 {
            o.push_from(p(i, 10), Control, Some(flooder)).unwrap();
        }
        assert_eq!(o.push_from(p(99, 10), Control, Some(flooder)), Err(Refused::SenderShare));
        assert_eq!(o.len(), 16, "a refused packet is not queued");
        // Others, media from the flooder, and the relay's own packets still go in.
        o.push_from(p(100, 10), Control, Some(other)).unwrap();
        o.push_from(p(101, 10), Media, Some(flooder)).unwrap();
        o.push(p(102, 10), Control).unwrap();
        // Once the receiver has taken some, the sender may queue again.
        let mut out = Vec::new();
        o.drain_into(&mut out, 1);
        o.push_from(p(103, 10), Control, Some(flooder)).unwrap();
        assert_eq!(o.push_from(p(104, 10), Control, Some(flooder)), Err(Refused::SenderShare));
        drain(&mut o);
        assert!(o.control_by_sender.is_empty());
    }

    #[test]
    fn the_share_is_in_bytes_too() {
        let share = limits::CONTROL_SHARE_PER_SENDER;
        let mut o = outbox(usize::MAX, 100 * share);
        let flooder = SessionId::new(7).unwrap();
        o.push_from(p(1, 60), Control, Some(flooder)).unwrap();
        assert_eq!(o.push_from(p(2, 60), Control, Some(flooder)), Err(Refused::SenderShare));
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
