//! Building and reading presence packets. Presence travels as ordinary `PacketWrapper`s of type
//! `PRESENCE`, so clients and relays read it the same way.

use bytes::Bytes;
use protobuf::Message;
use videocall_types::{
    DisplayName, MemberList, PacketType, PacketWrapper, Participant, ParticipantLeft, PresencePacket, UserId,
    presence_packet::Event,
};

use crate::SessionId;

/// A participant as the relay knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub session: SessionId,
    pub user: UserId,
    pub name: DisplayName,
    /// The token was a recorder's.
    pub recorder: bool,
}

impl Member {
    fn to_proto(&self) -> Participant {
        Participant {
            session_id: self.session.get(),
            user_id: self.user.to_string(),
            display_name: self.name.to_string(),
            recorder: self.recorder,
            ..Default::default()
        }
    }

    fn from_proto(p: &Participant) -> Option<Self> {
        Some(Self {
            session: SessionId::new(p.session_id)?,
            user: UserId::parse(&p.user_id).ok()?,
            name: DisplayName::parse(&p.display_name).ok()?,
            recorder: p.recorder,
        })
    }
}

/// A presence event read from the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    Joined(Member),
    Left(Member),
    Members(Vec<Member>),
    SyncRequest,
}

fn wrap(origin: u64, about: Option<&Member>, event: Event) -> Bytes {
    let presence = PresencePacket { origin, event: Some(event), ..Default::default() };
    let wrapper = PacketWrapper {
        packet_type: PacketType::PRESENCE.into(),
        email: about.map(|m| m.user.to_string()).unwrap_or_default(),
        session_id: about.map_or(0, |m| m.session.get()),
        data: presence.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    };
    // Encoding a message we built ourselves into a Vec cannot fail.
    Bytes::from(wrapper.write_to_bytes().unwrap_or_default())
}

pub fn joined(origin: u64, member: &Member) -> Bytes {
    wrap(origin, Some(member), Event::Joined(member.to_proto()))
}

pub fn left(origin: u64, member: &Member, reason: &str) -> Bytes {
    let left = ParticipantLeft {
        participant: Some(member.to_proto()).into(),
        reason: reason.to_owned(),
        ..Default::default()
    };
    wrap(origin, Some(member), Event::Left(left))
}

pub fn members<'a>(origin: u64, members: impl IntoIterator<Item = &'a Member>) -> Bytes {
    let list = MemberList { participants: members.into_iter().map(Member::to_proto).collect(), ..Default::default() };
    wrap(origin, None, Event::Members(list))
}

/// What a session gets on joining: everyone else, and itself (clients sign their session).
pub fn welcome<'a>(origin: u64, you: &Member, others: impl IntoIterator<Item = &'a Member>) -> Bytes {
    let list = MemberList {
        participants: others.into_iter().map(Member::to_proto).collect(),
        you: Some(you.to_proto()).into(),
        ..Default::default()
    };
    wrap(origin, None, Event::Members(list))
}

pub fn sync_request(origin: u64) -> Bytes {
    wrap(origin, None, Event::SyncRequest(true))
}

/// Reads a presence packet another relay published. `None` when it is not one we understand;
/// invalid participants inside a list are skipped.
pub fn parse(packet: &[u8]) -> Option<(u64, PresenceEvent)> {
    let wrapper = PacketWrapper::parse_from_bytes(packet).ok()?;
    let presence = PresencePacket::parse_from_bytes(&wrapper.data).ok()?;
    let event = match presence.event? {
        Event::Joined(p) => PresenceEvent::Joined(Member::from_proto(&p)?),
        Event::Left(l) => PresenceEvent::Left(Member::from_proto(l.participant.as_ref()?)?),
        Event::Members(list) => {
            PresenceEvent::Members(list.participants.iter().filter_map(Member::from_proto).collect())
        }
        Event::SyncRequest(_) => PresenceEvent::SyncRequest,
        _ => return None,
    };
    Some((presence.origin, event))
}
