//! What one session may send: token buckets on time passed in, no clock reads.
//!
//! A participant that floods the room (control packets addressed to one victim, a broadcast
//! storm, more bytes than any camera and screen make) must be the one closed, never the people
//! it floods. [`SendBudget`] is checked on every packet a client sends, before it reaches the
//! bus; the sender over its budget is closed with [`SessionError::OverBudget`]'s code. The
//! receivers' side of the same rule is in the room: one sender may hold only a bounded share of
//! a receiver's queue of control packets ([`crate::outbox`]).
//!
//! [`SessionError::OverBudget`]: crate::SessionError::OverBudget

use std::time::{Duration, Instant};

use videocall_types::PacketType;

use crate::limits;

/// A token bucket: `rate` tokens a second, at most `burst` saved up. Starts full.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(now: Instant, rate: f64, burst: f64) -> Self {
        Self { rate, burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes `n` tokens; `Err(wait)` (until they would be there) when there are not enough, and
    /// then nothing is taken.
    pub fn take(&mut self, now: Instant, n: f64) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else if self.rate > 0.0 && n <= self.burst {
            Err(Duration::from_secs_f64((n - self.tokens) / self.rate))
        } else {
            Err(Duration::MAX)
        }
    }

    /// Whether `n` tokens are there, without taking them; `Err(wait)` as [`TokenBucket::take`].
    pub fn check(&mut self, now: Instant, n: f64) -> Result<(), Duration> {
        let mut probe = *self;
        probe.take(now, n)
    }

    /// True when the bucket would be full at `now`: it is then the same as a new one.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// How much one session may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetLimits {
    /// Packets a second, any kind, and how many may come at once.
    pub packets_per_sec: f64,
    pub packet_burst: f64,
    /// Bytes a second, any kind, and how many may come at once.
    pub bytes_per_sec: f64,
    pub byte_burst: f64,
    /// Control packets (keys) a second, and how many may come at once.
    pub control_per_sec: f64,
    pub control_burst: f64,
    /// Largest `RSA_PUB_KEY` or `AES_KEY` packet.
    pub max_key_packet_bytes: usize,
    /// Subscriptions a second, and how many may come at once.
    pub subscriptions_per_sec: f64,
    pub subscription_burst: f64,
    /// Largest `SUBSCRIPTION` packet.
    pub max_subscription_bytes: usize,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        Self {
            packets_per_sec: limits::SEND_PACKETS_PER_SEC,
            packet_burst: limits::SEND_PACKET_BURST,
            bytes_per_sec: limits::SEND_BYTES_PER_SEC,
            byte_burst: limits::SEND_BYTE_BURST,
            control_per_sec: limits::SEND_CONTROL_PER_SEC,
            control_burst: limits::SEND_CONTROL_BURST,
            max_key_packet_bytes: limits::MAX_KEY_PACKET_BYTES,
            subscriptions_per_sec: limits::SEND_SUBSCRIPTIONS_PER_SEC,
            subscription_burst: limits::SEND_SUBSCRIPTION_BURST,
            max_subscription_bytes: limits::MAX_SUBSCRIPTION_BYTES,
        }
    }
}

/// Which budget a session went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverBudget {
    #[error("more than {0} packets a second")]
    Packets(u32),
    #[error("more than {0} bytes a second")]
    Bytes(u64),
    #[error("more than {0} key packets a second")]
    Control(u32),
    #[error("a key packet of {len} bytes (the limit is {max})")]
    KeyTooLarge { len: usize, max: usize },
    #[error("more than {0} subscriptions a second")]
    Subscriptions(u32),
    #[error("a subscription of {len} bytes (the limit is {max})")]
    SubscriptionTooLarge { len: usize, max: usize },
}

/// One session's budget.
#[derive(Debug, Clone)]
pub struct SendBudget {
    limits: BudgetLimits,
    packets: TokenBucket,
    bytes: TokenBucket,
    control: TokenBucket,
    subscriptions: TokenBucket,
}

impl SendBudget {
    pub fn new(now: Instant, limits: BudgetLimits) -> Self {
        Self {
            limits,
            packets: TokenBucket::new(now, limits.packets_per_sec, limits.packet_burst),
            bytes: TokenBucket::new(now, limits.bytes_per_sec, limits.byte_burst),
            control: TokenBucket::new(now, limits.control_per_sec, limits.control_burst),
            subscriptions: TokenBucket::new(now, limits.subscriptions_per_sec, limits.subscription_burst),
        }
    }

    /// Charges one packet of `len` bytes and type `kind` sent at `now`.
    pub fn charge(&mut self, now: Instant, kind: PacketType, len: usize) -> Result<(), OverBudget> {
        let l = &self.limits;
        let is_key = matches!(kind, PacketType::RSA_PUB_KEY | PacketType::AES_KEY);
        if is_key && len > l.max_key_packet_bytes {
            return Err(OverBudget::KeyTooLarge { len, max: l.max_key_packet_bytes });
        }
        if kind == PacketType::SUBSCRIPTION {
            if len > l.max_subscription_bytes {
                return Err(OverBudget::SubscriptionTooLarge { len, max: l.max_subscription_bytes });
            }
            self.subscriptions.take(now, 1.0).map_err(|_| OverBudget::Subscriptions(l.subscriptions_per_sec as u32))?;
        }
        self.packets.take(now, 1.0).map_err(|_| OverBudget::Packets(l.packets_per_sec as u32))?;
        self.bytes.take(now, len as f64).map_err(|_| OverBudget::Bytes(l.bytes_per_sec as u64))?;
        if kind != PacketType::MEDIA {
            self.control.take(now, 1.0).map_err(|_| OverBudget::Control(l.control_per_sec as u32))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(t0, 10.0, 5.0);
        for _ in 0..5 {
            bucket.take(t0, 1.0).unwrap();
        }
        assert_eq!(bucket.take(t0, 1.0), Err(100 * MS));
        bucket.take(t0 + 100 * MS, 1.0).unwrap();
        assert!(!bucket.is_full(t0 + 100 * MS));
        assert!(bucket.is_full(t0 + 10_000 * MS));
        // Saved up only to the burst.
        for _ in 0..5 {
            bucket.take(t0 + 10_000 * MS, 1.0).unwrap();
        }
        assert!(bucket.take(t0 + 10_000 * MS, 1.0).is_err());
        // More than the burst can never be taken.
        assert_eq!(bucket.take(t0 + 20_000 * MS, 6.0), Err(Duration::MAX));
    }

    #[test]
    fn a_time_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(t0, 10.0, 1.0);
        bucket.take(t0, 1.0).unwrap();
        assert!(bucket.take(t0 - Duration::from_secs(5), 1.0).is_err());
        bucket.take(t0 + 100 * MS, 1.0).unwrap();
    }

    /// What a participant really sends: 30 video frames (a keyframe of 200 KB among them), 50
    /// audio packets and a heartbeat a second, plus a screen at 5 frames of 100 KB, for a minute,
    /// and the keys of joining a full room. None of it may be refused.
    #[test]
    fn a_heavy_honest_participant_stays_within_budget() {
        let t0 = Instant::now();
        let mut budget = SendBudget::new(t0, BudgetLimits::default());
        // Joining a room of 100: our public key, then our media key wrapped to each of 99, and
        // a new key to everyone when the next person comes in straight after.
        budget.charge(t0, PacketType::RSA_PUB_KEY, 600).unwrap();
        for _ in 0..(2 * 99) {
            budget.charge(t0, PacketType::AES_KEY, 700).unwrap();
        }
        for second in 0..60u64 {
            for i in 0..86u64 {
                let now = t0 + Duration::from_millis(second * 1000 + i * 11);
                let (len, kind) = match i {
                    0 => (200_000, PacketType::MEDIA),
                    1..=29 => (8_000, PacketType::MEDIA),
                    30..=79 => (200, PacketType::MEDIA),
                    80 => (150, PacketType::MEDIA),
                    _ => (100_000, PacketType::MEDIA),
                };
                budget.charge(now, kind, len).unwrap_or_else(|e| panic!("second {second}, packet {i}: {e}"));
            }
        }
    }

    #[test]
    fn a_key_flood_is_stopped_at_the_control_burst() {
        let t0 = Instant::now();
        let limits = BudgetLimits::default();
        let mut budget = SendBudget::new(t0, limits);
        let mut sent = 0;
        let refused = loop {
            match budget.charge(t0, PacketType::AES_KEY, 1000) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(refused, OverBudget::Control(limits.control_per_sec as u32));
        assert_eq!(sent, limits.control_burst as usize);
    }

    #[test]
    fn oversized_key_packets_and_byte_floods_are_refused() {
        let t0 = Instant::now();
        let limits = BudgetLimits::default();
        let mut budget = SendBudget::new(t0, limits);
        let len = limits.max_key_packet_bytes + 1;
        assert_eq!(
            budget.charge(t0, PacketType::AES_KEY, len),
            Err(OverBudget::KeyTooLarge { len, max: limits.max_key_packet_bytes })
        );
        // Media of the largest size the relay takes, as fast as possible.
        let refused = (0..1000).find_map(|_| budget.charge(t0, PacketType::MEDIA, 512 * 1024).err());
        assert_eq!(refused, Some(OverBudget::Bytes(limits.bytes_per_sec as u64)));
    }

    #[test]
    fn a_packet_storm_of_small_packets_is_refused() {
        let t0 = Instant::now();
        let limits = BudgetLimits::default();
        let mut budget = SendBudget::new(t0, limits);
        let refused = (0..100_000u32)
            .find_map(|i| budget.charge(t0 + Duration::from_micros(u64::from(i) * 100), PacketType::MEDIA, 10).err());
        assert_eq!(refused, Some(OverBudget::Packets(limits.packets_per_sec as u32)));
    }
}
