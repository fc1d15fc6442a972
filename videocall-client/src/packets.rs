//! Building and reading the end-to-end encrypted packets: signed identity announcements, signed
//! wrapped media keys addressed to one session, and sealed media, as `PacketWrapper`s ready for
//! any transport.

use bytes::Bytes;
use protobuf::Message as _;
use rand_core::CryptoRngCore;
use thiserror::Error;
use videocall_types::{AesPacket, EncryptedMedia, MediaPacket, PacketType, PacketWrapper, Route, RsaPacket};

use crate::Millis;
use crate::crypto::statement::{self, Envelope};
use crate::crypto::{
    Fingerprint, IdentityPublic, KeyError, KeyRing, OpenError, PeerIdentity, SealError, SenderKey, StaleKey, TAG_BYTES,
};

/// Why a well-formed key packet was refused: each is what a hostile relay (or participant)
/// would send, and each is counted.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    #[error("from a session that is not in the room")]
    UnknownSession,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("addressed to another session")]
    Misaddressed,
    #[error("counter {counter} is not past {last}: replayed or reordered")]
    StaleCounter { counter: u64, last: u64 },
    #[error(transparent)]
    StaleKey(#[from] StaleKey),
    #[error("this participant's key changed and the change is not accepted yet")]
    Unconfirmed,
    #[error("before the relay told us our own session")]
    NotWelcomed,
}

impl Refusal {
    /// A short name for counters.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownSession => "unknown_session",
            Self::BadSignature => "bad_signature",
            Self::Misaddressed => "misaddressed",
            Self::StaleCounter { .. } => "stale_counter",
            Self::StaleKey(_) => "stale_key",
            Self::Unconfirmed => "unconfirmed",
            Self::NotWelcomed => "not_welcomed",
        }
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PacketError {
    #[error("not a {expected:?} packet")]
    WrongType { expected: PacketType },
    #[error("malformed {what}: {source}")]
    Malformed { what: &'static str, source: protobuf::Error },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("refused a key packet: {0}")]
    Refused(#[from] Refusal),
    #[error("encoding a packet failed: {0}")]
    Encode(protobuf::Error),
}

fn wrapper(packet_type: PacketType, data: Vec<u8>, to_session: u64) -> PacketWrapper {
    let mut packet = PacketWrapper::new();
    packet.packet_type = packet_type.into();
    packet.data = data;
    packet.to_session_id = to_session;
    packet
}

fn expect(packet: &PacketWrapper, expected: PacketType) -> Result<(), PacketError> {
    if packet.packet_type.enum_value() == Ok(expected) { Ok(()) } else { Err(PacketError::WrongType { expected }) }
}

/// A key packet built and waiting for its signature (which may take an asynchronous WebCrypto
/// call), with the bytes to sign.
#[derive(Debug)]
pub struct Unsigned {
    body: Body,
    to_session: u64,
    pub message: Vec<u8>,
}

#[derive(Debug)]
enum Body {
    Announcement(RsaPacket),
    Grant(AesPacket),
}

impl Unsigned {
    /// The packet, with its signature.
    pub fn finish(self, signature: Vec<u8>) -> Result<PacketWrapper, PacketError> {
        let (packet_type, data) = match self.body {
            Body::Announcement(mut rsa) => {
                rsa.signature = signature;
                (PacketType::RSA_PUB_KEY, rsa.write_to_bytes())
            }
            Body::Grant(mut aes) => {
                aes.signature = signature;
                (PacketType::AES_KEY, aes.write_to_bytes())
            }
        };
        Ok(wrapper(packet_type, data.map_err(PacketError::Encode)?, self.to_session))
    }
}

/// Our identity, to the room (`recipient_session` 0) or to one session.
pub fn announcement(identity: &IdentityPublic, user: &str, envelope: &Envelope<'_>) -> Unsigned {
    let mut rsa = RsaPacket::new();
    rsa.username = user.to_owned();
    rsa.public_key_der = identity.encryption_der.clone();
    rsa.signing_key = identity.signing_key.clone();
    rsa.counter = envelope.counter;
    Unsigned {
        message: statement::announcement(envelope, identity),
        body: Body::Announcement(rsa),
        to_session: envelope.recipient_session,
    }
}

/// Checks that `packet` is addressed to the room or to `our_session`.
fn addressed(packet: &PacketWrapper, our_session: u64) -> Result<(), Refusal> {
    if packet.to_session_id == 0 || packet.to_session_id == our_session { Ok(()) } else { Err(Refusal::Misaddressed) }
}

/// A peer's identity from its `RSA_PUB_KEY` packet, signed by itself for this room, its
/// session and its recipient: (identity, counter).
pub fn read_announcement(
    packet: &PacketWrapper,
    room: &str,
    our_session: u64,
) -> Result<(PeerIdentity, u64), PacketError> {
    expect(packet, PacketType::RSA_PUB_KEY)?;
    addressed(packet, our_session)?;
    let rsa = RsaPacket::parse_from_bytes(&packet.data)
        .map_err(|source| PacketError::Malformed { what: "RsaPacket", source })?;
    let public = IdentityPublic { encryption_der: rsa.public_key_der, signing_key: rsa.signing_key };
    let identity = PeerIdentity::new(public)?;
    let envelope = Envelope {
        room,
        sender_session: packet.session_id,
        recipient_session: packet.to_session_id,
        counter: rsa.counter,
    };
    if !identity.verifies(&statement::announcement(&envelope, identity.public()), &rsa.signature) {
        return Err(Refusal::BadSignature.into());
    }
    Ok((identity, rsa.counter))
}

/// Our media key wrapped to `recipient`, addressed to its session alone.
pub fn key_grant(
    rng: &mut impl CryptoRngCore,
    key: &SenderKey,
    recipient: &PeerIdentity,
    envelope: &Envelope<'_>,
) -> Result<Unsigned, PacketError> {
    let mut aes = AesPacket::new();
    aes.key = recipient.wrap(rng, key.material())?;
    aes.key_id = key.key_id();
    aes.counter = envelope.counter;
    Ok(Unsigned {
        message: statement::key_grant(envelope, &recipient.fingerprint(), aes.key_id, &aes.key),
        body: Body::Grant(aes),
        to_session: envelope.recipient_session,
    })
}

/// A media key someone granted us, its signature checked against `sender`; still wrapped.
#[derive(Debug, Clone)]
pub struct Grant {
    pub key_id: u32,
    pub counter: u64,
    pub wrapped: Vec<u8>,
}

/// Reads an `AES_KEY` packet addressed to us (`our_session`, `our_fingerprint`) in `room`, and
/// checks it is signed by `sender`, the identity we hold for the session the relay stamped.
pub fn read_key_grant(
    packet: &PacketWrapper,
    room: &str,
    our_session: u64,
    our_fingerprint: &Fingerprint,
    sender: &PeerIdentity,
) -> Result<Grant, PacketError> {
    expect(packet, PacketType::AES_KEY)?;
    if packet.to_session_id != our_session {
        return Err(Refusal::Misaddressed.into());
    }
    let aes = AesPacket::parse_from_bytes(&packet.data)
        .map_err(|source| PacketError::Malformed { what: "AesPacket", source })?;
    let envelope =
        Envelope { room, sender_session: packet.session_id, recipient_session: our_session, counter: aes.counter };
    let message = statement::key_grant(&envelope, our_fingerprint, aes.key_id, &aes.key);
    if !sender.verifies(&message, &aes.signature) {
        return Err(Refusal::BadSignature.into());
    }
    Ok(Grant { key_id: aes.key_id, counter: aes.counter, wrapped: aes.key })
}

/// Seals `media` as `user` with its routing header, which the relay reads in plaintext and the
/// frame authenticates.
pub fn seal_media(
    key: &mut SenderKey,
    user: &str,
    media: &MediaPacket,
    route: &Route,
) -> Result<PacketWrapper, PacketError> {
    // Encoded with room for the tag: sealed in place.
    let mut plain = Vec::with_capacity(media.compute_size() as usize + TAG_BYTES);
    media.write_to_vec(&mut plain).map_err(PacketError::Encode)?;
    let sealed = key.seal(user, route, plain)?;
    let mut packet = wrapper(PacketType::MEDIA, sealed.write_to_bytes().map_err(PacketError::Encode)?, 0);
    route.apply(&mut packet);
    Ok(packet)
}

/// Opens a `MEDIA` packet with the sender's key from `ring`; the sender is who the relay says,
/// the routing header what the packet carries (a relabelled one does not open).
/// The frame's bytes are not copied on the way: the ciphertext is a slice of the packet's
/// payload, opened in place, and the media's data a slice of the plaintext.
pub fn open_media(ring: &mut KeyRing, mut packet: PacketWrapper, now: Millis) -> Result<MediaPacket, PacketError> {
    expect(&packet, PacketType::MEDIA)?;
    let payload = Bytes::from(std::mem::take(&mut packet.data));
    let sealed = EncryptedMedia::parse_from_tokio_bytes(&payload)
        .map_err(|source| PacketError::Malformed { what: "EncryptedMedia", source })?;
    // The ciphertext is the payload's only user from here: it opens in place.
    drop(payload);
    let plain = ring.open(packet.session_id, &packet.email, &Route::of(&packet), sealed, now)?;
    MediaPacket::parse_from_tokio_bytes(&plain).map_err(|source| PacketError::Malformed { what: "MediaPacket", source })
}
