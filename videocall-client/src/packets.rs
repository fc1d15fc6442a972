//! Building and reading the end-to-end encrypted packets: public keys, wrapped media keys and
//! sealed media, as `PacketWrapper`s ready for any transport.

use protobuf::Message as _;
use rand_core::CryptoRngCore;
use thiserror::Error;
use videocall_types::{AesPacket, EncryptedMedia, MediaPacket, PacketType, PacketWrapper, RsaPacket};

use crate::Millis;
use crate::crypto::{IdentityKey, KeyError, KeyMaterial, KeyRing, OpenError, PeerKey, SealError, SenderKey};

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

/// Our public key, to everyone (`to_session` 0) or to one session.
pub fn public_key(identity: &IdentityKey, user: &str, to_session: u64) -> Result<PacketWrapper, PacketError> {
    let mut rsa = RsaPacket::new();
    rsa.username = user.to_owned();
    rsa.public_key_der = identity.public_der().to_vec();
    Ok(wrapper(PacketType::RSA_PUB_KEY, rsa.write_to_bytes().map_err(PacketError::Encode)?, to_session))
}

/// A peer's public key from its `RSA_PUB_KEY` packet.
pub fn read_public_key(packet: &PacketWrapper) -> Result<PeerKey, PacketError> {
    expect(packet, PacketType::RSA_PUB_KEY)?;
    let rsa = RsaPacket::parse_from_bytes(&packet.data)
        .map_err(|source| PacketError::Malformed { what: "RsaPacket", source })?;
    Ok(PeerKey::from_der(&rsa.public_key_der)?)
}

/// Our media key wrapped to `peer`, addressed to its session alone.
pub fn wrapped_key(
    rng: &mut impl CryptoRngCore,
    key: &SenderKey,
    peer: &PeerKey,
    to_session: u64,
) -> Result<PacketWrapper, PacketError> {
    let mut aes = AesPacket::new();
    aes.key = peer.wrap(rng, key.material())?;
    aes.key_id = key.key_id();
    Ok(wrapper(PacketType::AES_KEY, aes.write_to_bytes().map_err(PacketError::Encode)?, to_session))
}

/// A media key someone wrapped to us: (key id, material).
pub fn read_wrapped_key(identity: &IdentityKey, packet: &PacketWrapper) -> Result<(u32, KeyMaterial), PacketError> {
    expect(packet, PacketType::AES_KEY)?;
    let aes = AesPacket::parse_from_bytes(&packet.data)
        .map_err(|source| PacketError::Malformed { what: "AesPacket", source })?;
    Ok((aes.key_id, identity.unwrap_key(&aes.key)?))
}

/// Seals `media` as `user`; `keyframe` becomes the relay's plaintext drop hint.
pub fn seal_media(
    key: &mut SenderKey,
    user: &str,
    media: &MediaPacket,
    keyframe: bool,
) -> Result<PacketWrapper, PacketError> {
    let plain = media.write_to_bytes().map_err(PacketError::Encode)?;
    let sealed = key.seal(user, &plain)?;
    let mut packet = wrapper(PacketType::MEDIA, sealed.write_to_bytes().map_err(PacketError::Encode)?, 0);
    packet.keyframe = keyframe;
    Ok(packet)
}

/// Opens a `MEDIA` packet with the sender's key from `ring`; the sender is who the relay says.
pub fn open_media(ring: &mut KeyRing, packet: &PacketWrapper, now: Millis) -> Result<MediaPacket, PacketError> {
    expect(packet, PacketType::MEDIA)?;
    let sealed = EncryptedMedia::parse_from_bytes(&packet.data)
        .map_err(|source| PacketError::Malformed { what: "EncryptedMedia", source })?;
    let plain = ring.open(packet.session_id, &packet.email, &sealed, now)?;
    MediaPacket::parse_from_bytes(&plain).map_err(|source| PacketError::Malformed { what: "MediaPacket", source })
}
