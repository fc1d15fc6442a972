//! The media keys others gave us, by sending session, with a grace period after rotation.

use std::collections::HashMap;

use videocall_types::EncryptedMedia;

use super::media_key::{KeyMaterial, OpenError, ReceiverKey};
use crate::Millis;
use crate::tunables::ROTATION_GRACE_MS;

struct SenderKeys {
    current: ReceiverKey,
    /// The key replaced last, and until when it still opens frames.
    previous: Option<(ReceiverKey, Millis)>,
}

/// Receivers' side of the media keys.
#[derive(Default)]
pub struct KeyRing {
    senders: HashMap<u64, SenderKeys>,
}

impl KeyRing {
    /// Installs `session`'s key `key_id`. A new id becomes current and the old one is kept for
    /// the rotation grace; the same id again changes nothing (keys are re-sent on reconnects).
    /// Returns whether the key was new.
    pub fn install(&mut self, session: u64, key_id: u32, material: KeyMaterial, now: Millis) -> bool {
        match self.senders.get_mut(&session) {
            Some(keys) if keys.current.key_id() == key_id => false,
            Some(keys) => {
                let old = std::mem::replace(&mut keys.current, ReceiverKey::new(key_id, material));
                keys.previous = Some((old, now + ROTATION_GRACE_MS));
                true
            }
            None => {
                self.senders
                    .insert(session, SenderKeys { current: ReceiverKey::new(key_id, material), previous: None });
                true
            }
        }
    }

    /// Opens a frame from `session` (user id `user`, as the relay stamped it).
    pub fn open(
        &mut self,
        session: u64,
        user: &str,
        sealed: &EncryptedMedia,
        now: Millis,
    ) -> Result<Vec<u8>, OpenError> {
        let unknown = OpenError::UnknownKey { key_id: sealed.key_id };
        let keys = self.senders.get_mut(&session).ok_or(unknown)?;
        if keys.current.key_id() == sealed.key_id {
            return keys.current.open(user, sealed);
        }
        match &mut keys.previous {
            Some((key, until)) if key.key_id() == sealed.key_id && now <= *until => key.open(user, sealed),
            _ => Err(unknown),
        }
    }

    /// The key id `session` currently sends under, if we hold one.
    pub fn current_key_id(&self, session: u64) -> Option<u32> {
        self.senders.get(&session).map(|k| k.current.key_id())
    }

    /// Forgets a sender who left.
    pub fn forget(&mut self, session: u64) {
        self.senders.remove(&session);
    }
}
