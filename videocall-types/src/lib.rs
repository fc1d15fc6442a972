//! The wire protocol of the platform.
//!
//! - [`protos`]: the messages generated from `proto/videocall.proto` (one `PacketWrapper` per
//!   WebSocket binary message).
//! - [`ids`]: validation of room ids, user ids and display names. Room ids end up in NATS
//!   subjects, so nothing that could change a subject's meaning gets through.
//! - [`limits`]: size limits shared by clients and relays.
//! - [`framing`]: how packets are delimited on WebTransport streams.
//! - [`close`]: why a relay ends a session, and its close code.
//! - [`route`]: a media packet's routing header (stream, simulcast layer, keyframe, frame
//!   counter), which relays read and frames authenticate.
//!
//! Builds for native targets and `wasm32-unknown-unknown`.

pub mod close;
pub mod framing;
pub mod ids;
pub mod limits;
pub mod route;

/// Generated protobuf messages.
pub mod protos {
    include!(concat!(env!("OUT_DIR"), "/protos/mod.rs"));
}

pub use close::CloseReason;
pub use ids::{DisplayName, IdError, RoomId, UserId};
pub use protos::videocall::{
    AesPacket, AudioMetadata, ConnectionPacket, EncryptedMedia, HeartbeatMetadata, LayerDemand, LayerWant, MediaPacket,
    MediaStream, MediaType, MemberList, ModerationPacket, PacketType, PacketWrapper, Participant, ParticipantLeft,
    PresencePacket, RsaPacket, StreamDemand, Subscription, VideoMetadata, moderation_packet, presence_packet,
};
pub use route::{LARGEST_LAYER, MAX_LAYERS, Route};
