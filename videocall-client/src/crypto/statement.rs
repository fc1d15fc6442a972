//! What identities sign. Each statement is a label, then fields in a fixed order, variable ones
//! length-prefixed, so no two different statements share bytes.
//!
//! Both statements bind the room and the sender's session (so the relay cannot move a packet to
//! another room or restamp it as another session), the recipient session (0: the room) and a
//! per-sender counter that only goes forward (so it cannot replay one).

use sha2::{Digest, Sha256};

use super::identity::{Fingerprint, IdentityPublic};

struct Writer(Vec<u8>);

impl Writer {
    fn new(label: &[u8]) -> Self {
        let mut w = Self(Vec::with_capacity(256));
        w.bytes(label);
        w
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }

    fn u64(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Where a signed packet goes and its place in the sender's sequence.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub room: &'a str,
    pub sender_session: u64,
    /// 0: the whole room.
    pub recipient_session: u64,
    pub counter: u64,
}

impl Envelope<'_> {
    fn write(&self, w: &mut Writer) {
        w.bytes(self.room.as_bytes()).u64(self.sender_session).u64(self.recipient_session).u64(self.counter);
    }
}

/// "I, holder of these keys, am this session": signed by `identity`'s signing key.
pub fn announcement(envelope: &Envelope<'_>, identity: &IdentityPublic) -> Vec<u8> {
    let mut w = Writer::new(b"videocall announcement v2");
    envelope.write(&mut w);
    w.bytes(&identity.encryption_der).bytes(&identity.signing_key);
    w.finish()
}

/// "I give media key `key_id`, wrapped as `wrapped`, to the identity `recipient`".
pub fn key_grant(envelope: &Envelope<'_>, recipient: &Fingerprint, key_id: u32, wrapped: &[u8]) -> Vec<u8> {
    let mut w = Writer::new(b"videocall key grant v2");
    envelope.write(&mut w);
    w.bytes(&recipient.0).u64(u64::from(key_id)).bytes(&Sha256::digest(wrapped));
    w.finish()
}
