//! The small media messages every client sends the same way: a keyframe request, the answer
//! to a heartbeat, a chat line. Built here once, sealed by [`crate::peers::PeerState`].

use protobuf::MessageField;
use videocall_types::{HeartbeatMetadata, MediaPacket, MediaType, VideoMetadata};

/// `frame_type` of a keyframe request for the screen share (anything else: the camera).
pub const SCREEN: &str = "screen";

/// "Send me a keyframe": sealed to the one session whose camera (or screen) cannot be decoded,
/// naming the simulcast layer we receive of it.
pub fn keyframe_request(screen: bool, layer: u32) -> MediaPacket {
    let mut media = MediaPacket::new();
    media.media_type = MediaType::KEYFRAME_REQUEST.into();
    if screen {
        media.frame_type = SCREEN.into();
    }
    if layer > 0 {
        let mut meta = VideoMetadata::new();
        meta.layer = layer;
        media.video_metadata = MessageField::some(meta);
    }
    media
}

/// The answer to a heartbeat from the room, sealed back to its sender so it learns the round
/// trip; `None` for a heartbeat that is itself an answer.
pub fn heartbeat_answer(heartbeat: &MediaPacket, loss_permille: u32) -> Option<MediaPacket> {
    if heartbeat.media_type.enum_value() != Ok(MediaType::HEARTBEAT)
        || heartbeat.heartbeat_metadata.echo_timestamp != 0.0
    {
        return None;
    }
    let mut answer = MediaPacket::new();
    answer.media_type = MediaType::HEARTBEAT.into();
    let mut meta = HeartbeatMetadata::new();
    meta.echo_timestamp = heartbeat.timestamp;
    meta.loss_permille = loss_permille;
    answer.heartbeat_metadata = MessageField::some(meta);
    Some(answer)
}

/// A chat line for the room.
pub fn chat(text: &str) -> MediaPacket {
    let mut media = MediaPacket::new();
    media.media_type = MediaType::CHAT.into();
    media.data = bytes::Bytes::copy_from_slice(text.as_bytes());
    media
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_are_answered_once() {
        let mut beat = MediaPacket::new();
        beat.media_type = MediaType::HEARTBEAT.into();
        beat.timestamp = 1234.5;
        let answer = heartbeat_answer(&beat, 7).expect("a heartbeat to the room is answered");
        assert_eq!(answer.heartbeat_metadata.echo_timestamp, 1234.5);
        assert_eq!(answer.heartbeat_metadata.loss_permille, 7);
        assert!(heartbeat_answer(&answer, 0).is_none(), "an answer is not answered");
        assert!(heartbeat_answer(&chat("hi"), 0).is_none());
    }

    #[test]
    fn keyframe_requests_name_the_stream() {
        assert_eq!(keyframe_request(true, 0).frame_type, SCREEN);
        assert_eq!(keyframe_request(false, 0).frame_type, "");
        assert_eq!(keyframe_request(false, 0).media_type.enum_value(), Ok(MediaType::KEYFRAME_REQUEST));
        assert_eq!(keyframe_request(false, 2).video_metadata.layer, 2);
    }
}
