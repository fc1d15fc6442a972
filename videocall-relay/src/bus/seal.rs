//! Bus messages that only relays can write.
//!
//! Whatever can reach NATS could otherwise end meetings (a `MODERATION` from "the relay"),
//! invent members (presence) or inject packets under any session's subject. Every message a
//! relay publishes on NATS is therefore sealed: the payload, then the time it was sent (ms since
//! the Unix epoch, big-endian) and an HMAC-SHA256 tag over the subject, the time and the
//! payload, keyed with a key derived from `TOKEN_SECRET`, which only relays hold.
//!
//! A receiving relay opens the seal before anything reads the payload: a wrong tag, a message
//! older than [`MAX_AGE`] (or that far in the future) and, for what a relay acts on (messages of
//! sender 0, and presence and moderation packets on any subject), a message it has already seen
//! are refused and counted. Media is end-to-end encrypted and has its own replay
//! protection; a session's packets are checked for tag and age only, so a replay costs the
//! attacker a copy of a packet it could not read, sent within [`MAX_AGE`].
//!
//! No I/O and no clock reads: the time is passed in.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::token::TokenKey;

/// Tag length kept: 128 bits of HMAC-SHA256.
const TAG_BYTES: usize = 16;
const TIME_BYTES: usize = 8;
/// Bytes a seal adds to each message.
pub const SEAL_BYTES: usize = TIME_BYTES + TAG_BYTES;

/// How old a sealed message may be, and how far ahead of the receiver's clock. Relays keep their
/// clocks within a second of each other (NTP); a bus message older than this carried media
/// nobody can use any more, and a replay of a presence or moderation message outside it is
/// refused without remembering it.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Why a bus message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("bus message is not sealed by a relay")]
    BadTag,
    #[error("bus message is too old or from the future")]
    Stale,
    #[error("bus message was seen before")]
    Replayed,
}

impl SealError {
    /// Label for the `packets_dropped` counter.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadTag => "bus_unauthenticated",
            Self::Stale => "bus_stale",
            Self::Replayed => "bus_replayed",
        }
    }
}

/// The relays' shared key for sealing bus messages.
#[derive(Clone)]
pub struct BusKey(hmac::Key);

impl std::fmt::Debug for BusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusKey(..)")
    }
}

impl BusKey {
    /// Derived from the token secret: a bus seal is never a valid room token, nor the reverse.
    pub fn derive(tokens: &TokenKey) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, &tokens.subkey("relay bus")))
    }

    fn tag(&self, subject: &str, rest: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&(subject.len() as u64).to_be_bytes());
        ctx.update(subject.as_bytes());
        ctx.update(rest);
        ctx.sign()
    }

    /// `payload ‖ sent_at_ms ‖ tag`.
    pub fn seal(&self, subject: &str, sent_at_ms: u64, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(payload.len() + SEAL_BYTES);
        out.put_slice(payload);
        out.put_u64(sent_at_ms);
        let tag = self.tag(subject, &out);
        out.put_slice(&tag.as_ref()[..TAG_BYTES]);
        out.freeze()
    }

    /// Checks the tag and the age; returns the payload and the tag (for replay detection).
    pub fn open(&self, subject: &str, now_ms: u64, sealed: &Bytes) -> Result<(Bytes, [u8; TAG_BYTES]), SealError> {
        let Some(body_len) = sealed.len().checked_sub(TAG_BYTES) else {
            return Err(SealError::BadTag);
        };
        if body_len < TIME_BYTES {
            return Err(SealError::BadTag);
        }
        let (body, tag) = sealed.split_at(body_len);
        let expected = self.tag(subject, body);
        if !bool::from(expected.as_ref()[..TAG_BYTES].ct_eq(tag)) {
            return Err(SealError::BadTag);
        }
        let payload_len = body_len - TIME_BYTES;
        let mut time = [0u8; TIME_BYTES];
        time.copy_from_slice(&body[payload_len..]);
        let sent_at_ms = u64::from_be_bytes(time);
        let max_age = MAX_AGE.as_millis() as u64;
        if sent_at_ms.saturating_add(max_age) < now_ms || sent_at_ms > now_ms.saturating_add(max_age) {
            return Err(SealError::Stale);
        }
        let mut id = [0u8; TAG_BYTES];
        id.copy_from_slice(tag);
        Ok((sealed.slice(..payload_len), id))
    }
}

/// Tags of the relay messages seen within [`MAX_AGE`], to refuse a second copy.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashSet<[u8; TAG_BYTES]>,
    /// (time first seen, tag), oldest first.
    order: VecDeque<(u64, [u8; TAG_BYTES])>,
}

impl ReplayGuard {
    /// Records `tag` at `now_ms`; `Err` when it was already recorded within [`MAX_AGE`]. Only
    /// messages that passed [`BusKey::open`] come here, so the set holds what relays sent in
    /// the last [`MAX_AGE`] plus the same again for the future skew allowed: presence refreshes
    /// and moderation, a few a second per room.
    pub fn check(&mut self, now_ms: u64, tag: [u8; TAG_BYTES]) -> Result<(), SealError> {
        // A message is accepted up to MAX_AGE after it was sent, and may have been sent up to
        // MAX_AGE ahead of our clock: remember tags for twice that.
        let keep = 2 * MAX_AGE.as_millis() as u64;
        while let Some(&(at, old)) = self.order.front() {
            if at.saturating_add(keep) >= now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(tag) {
            return Err(SealError::Replayed);
        }
        self.order.push_back((now_ms, tag));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn key(secret: &str) -> BusKey {
        BusKey::derive(&TokenKey::from_secret(secret.as_bytes()).unwrap())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn sealed_messages_open_with_the_same_key_on_the_same_subject() {
        let k = key(SECRET);
        let sealed = k.seal("room.r.0", NOW, b"end the meeting");
        assert_eq!(sealed.len(), b"end the meeting".len() + SEAL_BYTES);
        let (payload, _) = k.open("room.r.0", NOW + 5, &sealed).unwrap();
        assert_eq!(&payload[..], b"end the meeting");
        assert_eq!(key("another secret, just as long!!!!!").open("room.r.0", NOW, &sealed), Err(SealError::BadTag));
        // Moved to another room or sender, it no longer opens.
        assert_eq!(k.open("room.s.0", NOW, &sealed), Err(SealError::BadTag));
        assert_eq!(k.open("room.r.7", NOW, &sealed), Err(SealError::BadTag));
    }

    #[test]
    fn tampered_short_and_unsealed_messages_are_refused() {
        let k = key(SECRET);
        let sealed = k.seal("room.r.0", NOW, b"payload");
        for i in 0..sealed.len() {
            let mut bad = sealed.to_vec();
            bad[i] ^= 1;
            assert_eq!(k.open("room.r.0", NOW, &Bytes::from(bad)), Err(SealError::BadTag), "byte {i}");
        }
        for len in 0..SEAL_BYTES {
            assert_eq!(k.open("room.r.0", NOW, &sealed.slice(..len)), Err(SealError::BadTag));
        }
        assert_eq!(k.open("room.r.0", NOW, &Bytes::from_static(b"a plain protobuf, no seal")), Err(SealError::BadTag));
    }

    #[test]
    fn old_and_future_messages_are_stale() {
        let k = key(SECRET);
        let max = MAX_AGE.as_millis() as u64;
        let sealed = k.seal("room.r.0", NOW, b"x");
        assert!(k.open("room.r.0", NOW + max, &sealed).is_ok());
        assert_eq!(k.open("room.r.0", NOW + max + 1, &sealed), Err(SealError::Stale));
        assert!(k.open("room.r.0", NOW - max, &sealed).is_ok());
        assert_eq!(k.open("room.r.0", NOW - max - 1, &sealed), Err(SealError::Stale));
    }

    #[test]
    fn a_replay_is_refused_while_it_could_still_open() {
        let k = key(SECRET);
        let mut guard = ReplayGuard::default();
        let first = k.seal("room.r.0", NOW, b"remove ada");
        let second = k.seal("room.r.0", NOW + 1, b"remove ada");
        let (_, tag1) = k.open("room.r.0", NOW, &first).unwrap();
        let (_, tag2) = k.open("room.r.0", NOW, &second).unwrap();
        assert_ne!(tag1, tag2, "the same action sent twice is two messages");
        assert_eq!(guard.check(NOW, tag1), Ok(()));
        assert_eq!(guard.check(NOW, tag2), Ok(()));
        let max = MAX_AGE.as_millis() as u64;
        assert_eq!(guard.check(NOW + max, tag1), Err(SealError::Replayed));
        // Once forgotten, the message is too old to open anyway.
        assert_eq!(guard.check(NOW + 2 * max + 1, tag2), Ok(()));
        assert_eq!(guard.len(), 1);
        assert_eq!(k.open("room.r.0", NOW + 2 * max + 1, &second), Err(SealError::Stale));
    }
}
