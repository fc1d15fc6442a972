//! Building and reading moderation packets: a host's action, published by the server that took
//! it to the room's subject as the relay itself (sender session 0), so every relay serving the
//! room carries it out for its own sessions.

use bytes::Bytes;
use protobuf::Message;
use videocall_types::{ModerationPacket, PacketType, PacketWrapper, UserId, moderation_packet::Action};

/// What a host asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Close this user's sessions.
    Remove(UserId),
    /// Close every session.
    End,
    /// Ask this user's sessions to turn their microphone off.
    Mute(UserId),
}

impl Moderation {
    /// The packet to publish.
    pub fn to_packet(&self) -> Bytes {
        let action = match self {
            Self::Remove(user) => Action::RemoveUser(user.to_string()),
            Self::End => Action::EndMeeting(true),
            Self::Mute(user) => Action::MuteUser(user.to_string()),
        };
        let moderation = ModerationPacket { action: Some(action), ..Default::default() };
        let wrapper = PacketWrapper {
            packet_type: PacketType::MODERATION.into(),
            data: moderation.write_to_bytes().unwrap_or_default(),
            ..Default::default()
        };
        // Encoding a message we built ourselves into a Vec cannot fail.
        Bytes::from(wrapper.write_to_bytes().unwrap_or_default())
    }

    /// Reads a moderation packet from the bus; `None` when it is not one we understand.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let wrapper = PacketWrapper::parse_from_bytes(packet).ok()?;
        let moderation = ModerationPacket::parse_from_bytes(&wrapper.data).ok()?;
        Some(match moderation.action? {
            Action::RemoveUser(user) => Self::Remove(UserId::parse(&user).ok()?),
            Action::EndMeeting(true) => Self::End,
            Action::MuteUser(user) => Self::Mute(UserId::parse(&user).ok()?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moderation_round_trips_and_rejects_what_it_does_not_know() {
        let ada = UserId::parse("ada").unwrap();
        for m in [Moderation::Remove(ada.clone()), Moderation::End, Moderation::Mute(ada)] {
            assert_eq!(Moderation::parse(&m.to_packet()), Some(m));
        }
        assert_eq!(Moderation::parse(b"\xff\xff"), None);
        let bad_user = ModerationPacket { action: Some(Action::RemoveUser("a b".into())), ..Default::default() };
        let wrapper = PacketWrapper { data: bad_user.write_to_bytes().unwrap(), ..Default::default() };
        assert_eq!(Moderation::parse(&wrapper.write_to_bytes().unwrap()), None);
        let empty = PacketWrapper { packet_type: PacketType::MODERATION.into(), ..Default::default() };
        assert_eq!(Moderation::parse(&empty.write_to_bytes().unwrap()), None);
    }
}
