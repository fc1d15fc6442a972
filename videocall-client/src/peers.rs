//! The end-to-end encryption state of one participant in a room: who is there, whose public
//! keys and media keys we hold, and what to send whom. Packets in (`handle_packet`), packets
//! out (`poll_transmit`) and events (`poll_event`); time passed in, no I/O.
//!
//! The exchange: on joining we announce our public key to the room. Whoever receives a public
//! key for the first time answers the sender with its own public key (addressed) and its media
//! key wrapped to the sender (addressed). When someone leaves, we forget their keys and move to
//! a new media key, wrapped to everyone still here, so the departed cannot open what follows.
//! `seal` queues the sealed frame behind any key packets, so receivers always get a key before
//! the frames sealed with it (the transports keep a sender's order).

use std::collections::{BTreeMap, VecDeque};

use protobuf::Message as _;
use rand_core::CryptoRngCore;
use videocall_types::moderation_packet::Action;
use videocall_types::presence_packet::Event as Presence;
use videocall_types::{MediaPacket, ModerationPacket, PacketType, PacketWrapper, PresencePacket};

use crate::Millis;
use crate::crypto::{Fingerprint, IdentityKey, KeyRing, PeerKey, SenderKey};
use crate::packets::{self, PacketError};

/// Another session in the room.
#[derive(Debug, Clone)]
pub struct Peer {
    pub user: String,
    pub display_name: String,
    pub key: Option<PeerKey>,
    /// Our media key id this peer was last given.
    pub given_key_id: Option<u32>,
}

impl Peer {
    fn new(user: String, display_name: String) -> Self {
        Self { user, display_name, key: None, given_key_id: None }
    }
}

#[derive(Debug)]
pub enum Event {
    Joined {
        session: u64,
    },
    Left {
        session: u64,
    },
    /// A peer's public key arrived; its fingerprint is what users compare.
    PeerKey {
        session: u64,
        fingerprint: Fingerprint,
    },
    /// A peer's media key arrived (first, or rotated).
    MediaKey {
        session: u64,
        key_id: u32,
    },
    /// We moved to a new media key.
    Rotated {
        key_id: u32,
    },
    Media {
        session: u64,
        user: String,
        media: MediaPacket,
    },
    /// The host asked us to turn our microphone off (the relay delivers this to us only).
    MutedByHost,
    /// A packet we could not use (counted; the session goes on).
    Dropped {
        session: u64,
        error: PacketError,
    },
}

pub struct PeerState<R> {
    rng: R,
    identity: IdentityKey,
    user: String,
    sender: SenderKey,
    peers: BTreeMap<u64, Peer>,
    ring: KeyRing,
    transmit: VecDeque<PacketWrapper>,
    events: VecDeque<Event>,
}

impl<R: CryptoRngCore> PeerState<R> {
    /// Joins as `user` with `identity` (made before joining: generating one is slow).
    pub fn new(mut rng: R, identity: IdentityKey, user: &str) -> Result<Self, PacketError> {
        let sender = SenderKey::generate(&mut rng, 1);
        let mut state = Self {
            rng,
            identity,
            user: user.to_owned(),
            sender,
            peers: BTreeMap::new(),
            ring: KeyRing::default(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        let announce = packets::public_key(&state.identity, user, 0)?;
        state.transmit.push_back(announce);
        Ok(state)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    pub fn key_id(&self) -> u32 {
        self.sender.key_id()
    }

    pub fn peers(&self) -> &BTreeMap<u64, Peer> {
        &self.peers
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<PacketWrapper> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Seals a frame for the room and queues it behind any key packets.
    pub fn seal(&mut self, media: &MediaPacket, keyframe: bool) -> Result<(), PacketError> {
        self.seal_to(media, keyframe, 0)
    }

    /// Seals a frame for one session (`0`: the room): chat replies, keyframe requests,
    /// heartbeat answers.
    pub fn seal_to(&mut self, media: &MediaPacket, keyframe: bool, to_session: u64) -> Result<(), PacketError> {
        let mut packet = packets::seal_media(&mut self.sender, &self.user, media, keyframe)?;
        packet.to_session_id = to_session;
        self.transmit.push_back(packet);
        Ok(())
    }

    /// The media key id we hold for `session`, if any.
    pub fn peer_key_id(&self, session: u64) -> Option<u32> {
        self.ring.current_key_id(session)
    }

    /// The user id the relay stamps on our packets (bound into every sealed frame).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Before each (re)connection: the relay will give us a new session, perhaps under a new
    /// user id (a fresh token), and a fresh member list. Forget everyone, move to a new media
    /// key (we cannot know who saw the old one) and announce our public key again. Unsent
    /// packets are dropped: they were addressed to old sessions.
    pub fn restart(&mut self, user: &str) -> Result<(), PacketError> {
        self.user = user.to_owned();
        let sessions: Vec<u64> = self.peers.keys().copied().collect();
        for session in sessions {
            self.ring.forget(session);
            self.events.push_back(Event::Left { session });
        }
        self.peers.clear();
        self.transmit.clear();
        self.rotate()?;
        let announce = packets::public_key(&self.identity, &self.user, 0)?;
        self.transmit.push_back(announce);
        Ok(())
    }

    /// A packet from the relay (identity already stamped by it).
    pub fn handle_packet(&mut self, now: Millis, packet: PacketWrapper) {
        let session = packet.session_id;
        let result = match packet.packet_type.enum_value() {
            Ok(PacketType::PRESENCE) => self.on_presence(&packet),
            Ok(PacketType::RSA_PUB_KEY) => self.on_public_key(&packet),
            Ok(PacketType::AES_KEY) => self.on_media_key(now, &packet),
            Ok(PacketType::MEDIA) => packets::open_media(&mut self.ring, &packet, now).map(|media| {
                self.events.push_back(Event::Media { session, user: packet.email.clone(), media });
            }),
            Ok(PacketType::MODERATION) => self.on_moderation(&packet),
            _ => Ok(()),
        };
        if let Err(error) = result {
            self.events.push_back(Event::Dropped { session, error });
        }
    }

    fn on_presence(&mut self, packet: &PacketWrapper) -> Result<(), PacketError> {
        let presence = PresencePacket::parse_from_bytes(&packet.data)
            .map_err(|source| PacketError::Malformed { what: "PresencePacket", source })?;
        match presence.event {
            Some(Presence::Members(list)) => {
                for p in list.participants {
                    self.add_peer(p.session_id, p.user_id, p.display_name);
                }
            }
            Some(Presence::Joined(p)) => self.add_peer(p.session_id, p.user_id, p.display_name),
            Some(Presence::Left(left)) => {
                let session = left.participant.session_id;
                if self.peers.remove(&session).is_some() {
                    self.ring.forget(session);
                    self.events.push_back(Event::Left { session });
                    self.rotate()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Moderation from the relay side (session 0); only a mute addressed to us means anything
    /// to a client (removal and ending close the connection instead).
    fn on_moderation(&mut self, packet: &PacketWrapper) -> Result<(), PacketError> {
        let moderation = ModerationPacket::parse_from_bytes(&packet.data)
            .map_err(|source| PacketError::Malformed { what: "ModerationPacket", source })?;
        if packet.session_id == 0 && moderation.action == Some(Action::MuteUser(self.user.clone())) {
            self.events.push_back(Event::MutedByHost);
        }
        Ok(())
    }

    fn add_peer(&mut self, session: u64, user: String, display_name: String) {
        if !self.peers.contains_key(&session) {
            self.peers.insert(session, Peer::new(user, display_name));
            self.events.push_back(Event::Joined { session });
        }
    }

    fn on_public_key(&mut self, packet: &PacketWrapper) -> Result<(), PacketError> {
        let session = packet.session_id;
        let key = packets::read_public_key(packet)?;
        let peer = self.peers.entry(session).or_insert_with(|| Peer::new(packet.email.clone(), String::new()));
        let first = peer.key.is_none();
        let fingerprint = key.fingerprint();
        peer.key = Some(key);
        if first {
            self.events.push_back(Event::PeerKey { session, fingerprint });
            // They announced to the room: answer with our key, since they joined after our
            // announcement. An addressed key is already an answer.
            if packet.to_session_id == 0 {
                let reply = packets::public_key(&self.identity, &self.user, session)?;
                self.transmit.push_back(reply);
            }
        }
        self.give_key(session)
    }

    fn on_media_key(&mut self, now: Millis, packet: &PacketWrapper) -> Result<(), PacketError> {
        let (key_id, material) = packets::read_wrapped_key(&self.identity, packet)?;
        if self.ring.install(packet.session_id, key_id, material, now) {
            self.events.push_back(Event::MediaKey { session: packet.session_id, key_id });
        }
        Ok(())
    }

    /// Sends our current media key to `session` unless it already has it.
    fn give_key(&mut self, session: u64) -> Result<(), PacketError> {
        let Some(peer) = self.peers.get_mut(&session) else { return Ok(()) };
        let Some(key) = &peer.key else { return Ok(()) };
        if peer.given_key_id == Some(self.sender.key_id()) {
            return Ok(());
        }
        let packet = packets::wrapped_key(&mut self.rng, &self.sender, key, session)?;
        peer.given_key_id = Some(self.sender.key_id());
        self.transmit.push_back(packet);
        Ok(())
    }

    /// A new media key, given to everyone still here.
    fn rotate(&mut self) -> Result<(), PacketError> {
        let next = self.sender.key_id().wrapping_add(1).max(1);
        self.sender = SenderKey::generate(&mut self.rng, next);
        self.events.push_back(Event::Rotated { key_id: next });
        let sessions: Vec<u64> = self.peers.keys().copied().collect();
        for session in sessions {
            self.give_key(session)?;
        }
        Ok(())
    }
}
