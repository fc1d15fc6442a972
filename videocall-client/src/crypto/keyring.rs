//! The media keys others gave us, by sending session: key ids only go forward, the previous key
//! keeps a grace period, and a sender's ratchet is followed as its frames move ahead.

use std::collections::HashMap;

use bytes::Bytes;
use thiserror::Error;
use videocall_types::{EncryptedMedia, Route};

use super::media_key::{KeyMaterial, OpenError, ReceiverKey};
use crate::Millis;
use crate::tunables::{MAX_RATCHET_STEPS, ROTATION_GRACE_MS};

struct SenderKeys {
    current: ReceiverKey,
    /// The key replaced last, and until when it still opens frames.
    previous: Option<(ReceiverKey, Millis)>,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("key {key_id} is not newer than key {newest} already held from this sender")]
pub struct StaleKey {
    pub key_id: u32,
    pub newest: u32,
}

/// Receivers' side of the media keys.
#[derive(Default)]
pub struct KeyRing {
    senders: HashMap<u64, SenderKeys>,
    /// The newest key id ever held per session, kept after it leaves: an old key re-sent later
    /// (a replay) is never installed again, even if the session is reported back.
    newest: HashMap<u64, u32>,
}

impl KeyRing {
    /// Whether `key_id` from `session` would be installed: only ids beyond any held before.
    pub fn check(&self, session: u64, key_id: u32) -> Result<(), StaleKey> {
        match self.newest.get(&session) {
            Some(&newest) if key_id <= newest => Err(StaleKey { key_id, newest }),
            _ => Ok(()),
        }
    }

    /// Installs `session`'s key `key_id`; the key it replaces opens frames for the rotation
    /// grace.
    pub fn install(&mut self, session: u64, key_id: u32, material: KeyMaterial, now: Millis) -> Result<(), StaleKey> {
        self.check(session, key_id)?;
        self.newest.insert(session, key_id);
        self.replace(session, ReceiverKey::new(key_id, material), now);
        Ok(())
    }

    fn replace(&mut self, session: u64, key: ReceiverKey, now: Millis) {
        match self.senders.get_mut(&session) {
            Some(keys) => {
                let old = std::mem::replace(&mut keys.current, key);
                keys.previous = Some((old, now + ROTATION_GRACE_MS));
            }
            None => {
                self.senders.insert(session, SenderKeys { current: key, previous: None });
            }
        }
    }

    /// Opens a frame from `session` (user id `user`, as the relay stamped it, and the routing
    /// header it came with). A frame under a
    /// key id a few steps ahead of the current one is tried with the ratchet; the ratchet
    /// moves only if the frame authenticates.
    pub fn open(
        &mut self,
        session: u64,
        user: &str,
        route: &Route,
        sealed: EncryptedMedia,
        now: Millis,
    ) -> Result<Bytes, OpenError> {
        let unknown = OpenError::UnknownKey { key_id: sealed.key_id };
        let keys = self.senders.get_mut(&session).ok_or(unknown)?;
        let current = keys.current.key_id();
        if current == sealed.key_id {
            return keys.current.open(user, route, sealed);
        }
        if let Some((key, until)) = &mut keys.previous
            && key.key_id() == sealed.key_id
        {
            return if now <= *until { key.open(user, route, sealed) } else { Err(unknown) };
        }
        let steps = sealed.key_id.wrapping_sub(current);
        if sealed.key_id <= current || steps > MAX_RATCHET_STEPS {
            return Err(unknown);
        }
        let mut material = keys.current.material().ratchet();
        for _ in 1..steps {
            material = material.ratchet();
        }
        let key_id = sealed.key_id;
        let mut next = ReceiverKey::new(key_id, material);
        let plain = next.open(user, route, sealed).map_err(|_| unknown)?;
        self.newest.insert(session, key_id);
        self.replace(session, next, now);
        Ok(plain)
    }

    /// The key id `session` currently sends under, if we hold one.
    pub fn current_key_id(&self, session: u64) -> Option<u32> {
        self.senders.get(&session).map(|k| k.current.key_id())
    }

    /// Forgets a sender who left (its newest key id is kept).
    pub fn forget(&mut self, session: u64) {
        self.senders.remove(&session);
    }

    /// Forgets a sender and its newest key id (long gone, to bound memory).
    pub fn forget_entirely(&mut self, session: u64) {
        self.senders.remove(&session);
        self.newest.remove(&session);
    }
}
