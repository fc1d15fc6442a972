//! The end-to-end encryption state of one participant in a room: who is there, whose
//! identities and media keys we hold, and what to send whom. Packets in (`handle_packet`),
//! packets out (`poll_transmit`), private-key work out (`poll_work`) and back (`complete`),
//! events (`poll_event`); time passed in, no I/O.
//!
//! The relay is not trusted with keys. What it can still do, and what stops it:
//! - It reports who is in the room, and we wrap our media key only to those: an identity
//!   announced by a session presence never reported is refused. A session it invents shows up
//!   as a person, with a fingerprint to compare.
//! - Every announcement and every wrapped key is signed by the sender's identity, binding the
//!   room, both sessions and a per-sender counter: a key packet it forges, redirects or replays
//!   does not verify or is stale.
//! - A second, different identity for a session already shown is an alarm
//!   ([`Event::KeyChanged`]); nothing is wrapped to it until the user accepts it
//!   ([`PeerState::accept_key_change`]).
//! - Key ids from a sender only go forward, so an old key is never installed again.
//! - On every join each sender steps its key along a one-way ratchet (the newcomer gets only
//!   the new key); on every leave it draws a fresh one for those still here.
//!
//! The exchange: once the relay's member list tells us our session, we announce our identity
//! to the room. Whoever receives an identity for the first time answers the sender with its own
//! (addressed) and its media key wrapped to the sender (addressed). `seal` queues the sealed
//! frame behind any key packets, including those still waiting for their signature, so
//! receivers always get a key before the frames sealed with it (the transports keep a sender's
//! order). Frames that arrive while their sender's new key is being unwrapped are held.

use std::collections::{BTreeMap, HashMap, VecDeque};

use protobuf::Message as _;
use rand_core::CryptoRngCore;
use videocall_types::moderation_packet::Action;
use videocall_types::presence_packet::Event as Presence;
use videocall_types::{MediaPacket, ModerationPacket, PacketType, PacketWrapper, Participant, PresencePacket, Route};

use crate::Millis;
use crate::crypto::statement::Envelope;
use crate::crypto::{
    Fingerprint, IdentityPublic, KeyError, KeyMaterial, KeyRing, LocalIdentity, OpenError, PeerIdentity, SafetyCode,
    SenderKey,
};
use crate::packets::{self, PacketError, Refusal, Unsigned};
use crate::tunables::{HELD_WHILE_UNWRAPPING, MAX_RATCHET_STEPS, MAX_REMEMBERED_DEPARTED};

/// Another session in the room.
#[derive(Debug, Clone)]
pub struct Peer {
    pub user: String,
    pub display_name: String,
    /// Presence says this session records the room (its token was a recorder's).
    pub recorder: bool,
    /// The identity shown for this person: the first announced, or a change the user accepted.
    pub identity: Option<PeerIdentity>,
    /// A different identity announced for this session since: an alarm until accepted.
    pub changed: Option<PeerIdentity>,
    /// The fresh key (by id) this peer was last given; from it, it follows our ratchet.
    given_epoch: Option<u32>,
}

impl Peer {
    fn new(user: String, display_name: String, recorder: bool) -> Self {
        Self { user, display_name, recorder, identity: None, changed: None, given_epoch: None }
    }
}

/// A private-key operation the core needs. In a browser it is an asynchronous WebCrypto call on
/// a non-extractable key; natively, [`LocalIdentity::perform`]. Answer with
/// [`PeerState::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Sign `message` with the identity's signing key (ECDSA P-256, SHA-256, `r || s`).
    Sign { id: u64, message: Vec<u8> },
    /// Open a media key wrapped to the identity (RSA-OAEP, SHA-256).
    Unwrap { id: u64, wrapped: Vec<u8> },
}

/// The answer to a [`Work`].
#[derive(Debug)]
pub enum Done {
    Signed {
        id: u64,
        signature: Vec<u8>,
    },
    /// `None`: it did not open.
    Unwrapped {
        id: u64,
        key: Option<KeyMaterial>,
    },
}

impl LocalIdentity {
    /// Performs `work` with this identity's private keys.
    pub fn perform(&self, rng: &mut impl CryptoRngCore, work: Work) -> Done {
        match work {
            Work::Sign { id, message } => Done::Signed { id, signature: self.sign(&message) },
            Work::Unwrap { id, wrapped } => Done::Unwrapped { id, key: self.unwrap_key(rng, &wrapped).ok() },
        }
    }
}

#[derive(Debug)]
pub enum Event {
    /// The relay told us our session and user id.
    Welcomed {
        session: u64,
        user: String,
    },
    Joined {
        session: u64,
    },
    Left {
        session: u64,
    },
    /// A peer's identity is shown: its fingerprint is what users compare.
    PeerKey {
        session: u64,
        fingerprint: Fingerprint,
    },
    /// A session already shown announced a different identity. Alarm: the user should compare
    /// again; nothing goes to the new identity until [`PeerState::accept_key_change`].
    KeyChanged {
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
        /// Its routing header, authenticated with it.
        route: Route,
        media: MediaPacket,
    },
    /// The host asked us to turn our microphone off (the relay delivers this to us only).
    MutedByHost,
    /// A packet we could not use or refused (counted; the session goes on).
    Dropped {
        session: u64,
        error: PacketError,
    },
}

/// What goes out, in order; a key packet may still wait for its signature.
enum Outgoing {
    Ready(PacketWrapper),
    Signing { id: u64, unsigned: Unsigned },
}

struct Unwrapping {
    session: u64,
    key_id: u32,
}

pub struct PeerState<R> {
    rng: R,
    identity: IdentityPublic,
    fingerprint: Fingerprint,
    room: String,
    user: String,
    /// Ours, once the relay's member list told us.
    session: Option<u64>,
    sender: SenderKey,
    /// The id of our last fresh (not ratcheted) media key.
    epoch: u32,
    /// The last counter we signed.
    counter: u64,
    peers: BTreeMap<u64, Peer>,
    /// Identities of sessions that left, should presence report them back (a healed network).
    departed: HashMap<u64, PeerIdentity>,
    /// Departed sessions, oldest first: past [`MAX_REMEMBERED_DEPARTED`] the oldest is
    /// forgotten (a relay inventing members must not grow this without bound).
    departed_order: VecDeque<u64>,
    /// The last counter accepted from each session and identity, kept after it leaves. Per
    /// identity, so packets signed by another key (a substitution) cannot move an honest
    /// sender's counter.
    counters: HashMap<(u64, Fingerprint), u64>,
    ring: KeyRing,
    transmit: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    work: VecDeque<Work>,
    next_work: u64,
    unwrapping: HashMap<u64, Unwrapping>,
    /// Frames from senders whose new key is being unwrapped.
    held: HashMap<u64, VecDeque<PacketWrapper>>,
    /// The latest key grant signed by a changed identity, for when the user accepts it.
    held_grants: HashMap<u64, PacketWrapper>,
    /// Key packets refused, by [`Refusal::label`].
    refused: BTreeMap<&'static str, u64>,
}

impl<R: CryptoRngCore> PeerState<R> {
    /// A participant with `identity` (made before joining: generating one is slow). Nothing is
    /// sent before [`restart`](Self::restart).
    pub fn new(mut rng: R, identity: IdentityPublic) -> Self {
        let sender = SenderKey::generate(&mut rng, 1);
        Self {
            rng,
            fingerprint: identity.fingerprint(),
            identity,
            room: String::new(),
            user: String::new(),
            session: None,
            epoch: sender.key_id(),
            sender,
            counter: 0,
            peers: BTreeMap::new(),
            departed: HashMap::new(),
            departed_order: VecDeque::new(),
            counters: HashMap::new(),
            ring: KeyRing::default(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            work: VecDeque::new(),
            next_work: 0,
            unwrapping: HashMap::new(),
            held: HashMap::new(),
            held_grants: HashMap::new(),
            refused: BTreeMap::new(),
        }
    }

    /// Key packets refused so far, by reason ([`Refusal::label`]): what a hostile relay sent.
    pub fn refused(&self) -> &BTreeMap<&'static str, u64> {
        &self.refused
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn key_id(&self) -> u32 {
        self.sender.key_id()
    }

    pub fn peers(&self) -> &BTreeMap<u64, Peer> {
        &self.peers
    }

    /// Our session, once the relay told us.
    pub fn session(&self) -> Option<u64> {
        self.session
    }

    /// The user id the relay stamps on our packets (bound into every sealed frame).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The room our signatures bind.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The room's safety code as we see it: everyone shown with an identity, and us.
    pub fn safety_code(&self) -> SafetyCode {
        let others = self.peers.values().filter_map(|p| Some((p.user.as_str(), p.identity.as_ref()?.fingerprint())));
        SafetyCode::of(others.chain([(self.user.as_str(), self.fingerprint)]))
    }

    /// The next packet to send. A key packet waiting for its signature holds back what follows.
    pub fn poll_transmit(&mut self) -> Option<PacketWrapper> {
        match self.transmit.front()? {
            Outgoing::Ready(_) => match self.transmit.pop_front() {
                Some(Outgoing::Ready(packet)) => Some(packet),
                _ => None,
            },
            Outgoing::Signing { .. } => None,
        }
    }

    /// The next private-key operation to perform.
    pub fn poll_work(&mut self) -> Option<Work> {
        self.work.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Performs all pending work with a local identity (the bot, tests).
    pub fn work_locally(&mut self, identity: &LocalIdentity, now: Millis) {
        while let Some(work) = self.poll_work() {
            let done = identity.perform(&mut self.rng, work);
            self.complete(now, done);
        }
    }

    /// The answer to a [`Work`]. Answers to work from before a [`restart`](Self::restart) are
    /// ignored.
    pub fn complete(&mut self, now: Millis, done: Done) {
        match done {
            Done::Signed { id, signature } => {
                let Some(index) =
                    self.transmit.iter().position(|o| matches!(o, Outgoing::Signing { id: i, .. } if *i == id))
                else {
                    return;
                };
                let Some(Outgoing::Signing { unsigned, .. }) = self.transmit.remove(index) else { return };
                match unsigned.finish(signature) {
                    Ok(packet) => self.transmit.insert(index, Outgoing::Ready(packet)),
                    Err(error) => self.events.push_back(Event::Dropped { session: 0, error }),
                }
            }
            Done::Unwrapped { id, key } => {
                let Some(Unwrapping { session, key_id }) = self.unwrapping.remove(&id) else { return };
                match key {
                    Some(material) if self.peers.contains_key(&session) => {
                        match self.ring.install(session, key_id, material, now) {
                            Ok(()) => self.events.push_back(Event::MediaKey { session, key_id }),
                            Err(stale) => self.refuse(session, Refusal::StaleKey(stale)),
                        }
                    }
                    Some(_) => {}
                    None => self.events.push_back(Event::Dropped { session, error: KeyError::Unwrap.into() }),
                }
                if !self.unwrapping.values().any(|u| u.session == session) {
                    for packet in self.held.remove(&session).unwrap_or_default() {
                        self.on_media(now, packet);
                    }
                }
            }
        }
    }

    /// Seals a frame for the room with its routing header and queues it behind any key
    /// packets. Before the relay has welcomed us nobody can hold our key, so nothing is queued.
    pub fn seal(&mut self, media: &MediaPacket, route: &Route) -> Result<(), PacketError> {
        self.seal_to(media, route, 0)
    }

    /// Seals a frame for one session (`0`: the room): chat replies, keyframe requests,
    /// heartbeat answers.
    pub fn seal_to(&mut self, media: &MediaPacket, route: &Route, to_session: u64) -> Result<(), PacketError> {
        if self.session.is_none() {
            return Ok(());
        }
        let mut packet = packets::seal_media(&mut self.sender, &self.user, media, route)?;
        packet.to_session_id = to_session;
        self.transmit.push_back(Outgoing::Ready(packet));
        Ok(())
    }

    /// The media key id we hold for `session`, if any.
    pub fn peer_key_id(&self, session: u64) -> Option<u32> {
        self.ring.current_key_id(session)
    }

    /// Before each (re)connection to `room` as `user` (the token's): the relay will give us a
    /// new session and a fresh member list. Forget everyone (remembering their identities),
    /// move to a fresh media key (we cannot know who saw the old one) and wait for the
    /// welcome. Unsent packets and unfinished work are dropped: they were for old sessions.
    pub fn restart(&mut self, user: &str, room: &str) {
        self.user = user.to_owned();
        self.room = room.to_owned();
        self.session = None;
        let sessions: Vec<u64> = self.peers.keys().copied().collect();
        for session in sessions {
            self.remove_peer(session);
        }
        self.transmit.clear();
        self.work.clear();
        self.unwrapping.clear();
        self.held.clear();
        self.held_grants.clear();
        self.sender = SenderKey::generate(&mut self.rng, self.sender.key_id().wrapping_add(1));
        self.epoch = self.sender.key_id();
        self.events.push_back(Event::Rotated { key_id: self.epoch });
    }

    /// The user accepts `session`'s changed identity: it is shown from now on, and it gets a
    /// fresh media key (so it cannot open what was sealed for the identity it replaced).
    pub fn accept_key_change(&mut self, now: Millis, session: u64) -> Result<(), PacketError> {
        let Some(peer) = self.peers.get_mut(&session) else { return Ok(()) };
        let Some(identity) = peer.changed.take() else { return Ok(()) };
        self.events.push_back(Event::PeerKey { session, fingerprint: identity.fingerprint() });
        peer.identity = Some(identity);
        peer.given_epoch = None;
        self.rotate_fresh()?;
        if let Some(grant) = self.held_grants.remove(&session) {
            self.handle_packet(now, grant);
        }
        Ok(())
    }

    /// A packet from the relay (sender identity stamped by it).
    pub fn handle_packet(&mut self, now: Millis, packet: PacketWrapper) {
        let session = packet.session_id;
        let result = match packet.packet_type.enum_value() {
            Ok(PacketType::PRESENCE) => self.on_presence(&packet),
            Ok(PacketType::RSA_PUB_KEY) => self.on_announcement(&packet),
            Ok(PacketType::AES_KEY) => self.on_key_grant(packet),
            Ok(PacketType::MEDIA) => {
                self.on_media(now, packet);
                Ok(())
            }
            Ok(PacketType::MODERATION) => self.on_moderation(&packet),
            _ => Ok(()),
        };
        if let Err(error) = result {
            self.drop_packet(session, error);
        }
    }

    fn refuse(&mut self, session: u64, refusal: Refusal) {
        self.drop_packet(session, PacketError::Refused(refusal));
    }

    /// A packet we cannot use; a refused key packet is counted.
    fn drop_packet(&mut self, session: u64, error: PacketError) {
        if let PacketError::Refused(refusal) = &error {
            *self.refused.entry(refusal.label()).or_default() += 1;
        }
        self.events.push_back(Event::Dropped { session, error });
    }

    fn on_media(&mut self, now: Millis, packet: PacketWrapper) {
        let session = packet.session_id;
        if let Some(held) = self.held.get_mut(&session) {
            if held.len() < HELD_WHILE_UNWRAPPING {
                held.push_back(packet);
            } else {
                let error = OpenError::UnknownKey { key_id: 0 }.into();
                self.events.push_back(Event::Dropped { session, error });
            }
            return;
        }
        let user = packet.email.clone();
        let route = Route::of(&packet);
        match packets::open_media(&mut self.ring, packet, now) {
            Ok(media) => self.events.push_back(Event::Media { session, user, route, media }),
            Err(error) => self.events.push_back(Event::Dropped { session, error }),
        }
    }

    fn on_presence(&mut self, packet: &PacketWrapper) -> Result<(), PacketError> {
        let presence = PresencePacket::parse_from_bytes(&packet.data)
            .map_err(|source| PacketError::Malformed { what: "PresencePacket", source })?;
        match presence.event {
            Some(Presence::Members(list)) => {
                let Some(you) = list.you.into_option() else { return Err(Refusal::NotWelcomed.into()) };
                self.on_welcome(you)?;
                for p in list.participants {
                    self.add_peer(p, false)?;
                }
            }
            Some(Presence::Joined(p)) if self.session.is_some() => {
                let new = self.add_peer(p, true)?;
                if new {
                    self.ratchet()?;
                }
            }
            Some(Presence::Left(left)) => {
                let session = left.participant.session_id;
                if self.remove_peer(session) {
                    self.rotate_fresh()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The relay's member list names us: announce our identity to the room. A second welcome
    /// naming another session is refused (the relay does not move us).
    fn on_welcome(&mut self, you: Participant) -> Result<(), PacketError> {
        match self.session {
            Some(ours) if ours == you.session_id => return Ok(()),
            Some(_) => return Err(Refusal::Misaddressed.into()),
            None if you.session_id == 0 => return Err(Refusal::NotWelcomed.into()),
            None => {}
        }
        self.session = Some(you.session_id);
        self.user = you.user_id;
        self.events.push_back(Event::Welcomed { session: you.session_id, user: self.user.clone() });
        self.announce(0);
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

    /// Adds a member presence reported; true if it is new. One that left and is reported back
    /// keeps the identity it had (a changed one is an alarm); `greet` sends it ours, since it
    /// will not announce to a room it believes it is already in.
    fn add_peer(&mut self, p: Participant, greet: bool) -> Result<bool, PacketError> {
        let session = p.session_id;
        if session == 0 || Some(session) == self.session || self.peers.contains_key(&session) {
            return Ok(false);
        }
        let mut peer = Peer::new(p.user_id, p.display_name, p.recorder);
        let remembered = self.departed.remove(&session);
        if let Some(identity) = &remembered {
            self.events.push_back(Event::PeerKey { session, fingerprint: identity.fingerprint() });
        }
        peer.identity = remembered;
        let known = peer.identity.is_some();
        self.peers.insert(session, peer);
        self.events.push_back(Event::Joined { session });
        if known {
            if greet {
                self.announce(session);
            }
            self.give_key(session)?;
        }
        Ok(true)
    }

    /// Forgets a member; true if it was here.
    fn remove_peer(&mut self, session: u64) -> bool {
        let Some(peer) = self.peers.remove(&session) else { return false };
        if let Some(changed) = &peer.changed {
            self.counters.remove(&(session, changed.fingerprint()));
        }
        if let Some(identity) = peer.identity {
            self.departed.insert(session, identity);
        }
        self.departed_order.retain(|s| *s != session);
        self.departed_order.push_back(session);
        while self.departed_order.len() > MAX_REMEMBERED_DEPARTED {
            let Some(oldest) = self.departed_order.pop_front() else { break };
            self.departed.remove(&oldest);
            self.counters.retain(|(s, _), _| *s != oldest);
            self.ring.forget_entirely(oldest);
        }
        self.ring.forget(session);
        self.held.remove(&session);
        self.held_grants.remove(&session);
        self.unwrapping.retain(|_, u| u.session != session);
        self.events.push_back(Event::Left { session });
        true
    }

    /// Accepts `counter` from `session`, signed by `signer`, if it is past the last one.
    fn advance_counter(&mut self, session: u64, signer: Fingerprint, counter: u64) -> Result<(), Refusal> {
        self.check_counter(session, signer, counter)?;
        self.counters.insert((session, signer), counter);
        Ok(())
    }

    /// Whether `counter` from `session`, signed by `signer`, is past the last one accepted.
    fn check_counter(&self, session: u64, signer: Fingerprint, counter: u64) -> Result<(), Refusal> {
        let last = self.counters.get(&(session, signer)).copied().unwrap_or(0);
        if counter <= last { Err(Refusal::StaleCounter { counter, last }) } else { Ok(()) }
    }

    fn on_announcement(&mut self, packet: &PacketWrapper) -> Result<(), PacketError> {
        let session = packet.session_id;
        let ours = self.session.ok_or(Refusal::NotWelcomed)?;
        if !self.peers.contains_key(&session) {
            return Err(Refusal::UnknownSession.into());
        }
        let (identity, counter) = packets::read_announcement(packet, &self.room, ours)?;
        let fingerprint = identity.fingerprint();
        self.advance_counter(session, fingerprint, counter)?;
        let Some(peer) = self.peers.get_mut(&session) else { return Ok(()) };
        match &peer.identity {
            None => {
                peer.identity = Some(identity);
                self.events.push_back(Event::PeerKey { session, fingerprint });
                // They announced to the room: answer with ours, since they joined after our
                // announcement. An addressed identity is already an answer.
                if packet.to_session_id == 0 {
                    self.announce(session);
                }
            }
            Some(shown) if shown.fingerprint() == fingerprint => {}
            Some(_) => {
                let previous = peer.changed.as_ref().map(PeerIdentity::fingerprint);
                if previous != Some(fingerprint) {
                    peer.changed = Some(identity);
                    self.events.push_back(Event::KeyChanged { session, fingerprint });
                    // Only the latest changed identity is kept, and its counter with it.
                    if let Some(previous) = previous {
                        self.counters.remove(&(session, previous));
                    }
                }
            }
        }
        self.give_key(session)
    }

    fn on_key_grant(&mut self, packet: PacketWrapper) -> Result<(), PacketError> {
        let session = packet.session_id;
        let ours = self.session.ok_or(Refusal::NotWelcomed)?;
        let peer = self.peers.get(&session).ok_or(Refusal::UnknownSession)?;
        let Some(shown) = &peer.identity else { return Err(Refusal::Unconfirmed.into()) };
        let signer = shown.fingerprint();
        let grant = match packets::read_key_grant(&packet, &self.room, ours, &self.fingerprint, shown) {
            Ok(grant) => grant,
            Err(PacketError::Refused(Refusal::BadSignature)) => {
                // Signed by the identity the user has not accepted yet: keep it for then.
                let changed = peer.changed.as_ref();
                if changed
                    .is_some_and(|c| packets::read_key_grant(&packet, &self.room, ours, &self.fingerprint, c).is_ok())
                {
                    self.held_grants.insert(session, packet);
                    return Err(Refusal::Unconfirmed.into());
                }
                return Err(Refusal::BadSignature.into());
            }
            Err(e) => return Err(e),
        };
        self.check_counter(session, signer, grant.counter)?;
        self.ring.check(session, grant.key_id).map_err(Refusal::StaleKey)?;
        let pending = self.unwrapping.values().filter(|u| u.session == session).map(|u| u.key_id).max();
        if let Some(newest) = pending.filter(|&newest| grant.key_id <= newest) {
            return Err(Refusal::StaleKey(crate::crypto::StaleKey { key_id: grant.key_id, newest }).into());
        }
        self.advance_counter(session, signer, grant.counter)?;
        let id = self.work_id();
        self.unwrapping.insert(id, Unwrapping { session, key_id: grant.key_id });
        self.held.entry(session).or_default();
        self.work.push_back(Work::Unwrap { id, wrapped: grant.wrapped });
        Ok(())
    }

    fn work_id(&mut self) -> u64 {
        self.next_work += 1;
        self.next_work
    }

    /// The next counter, and our session; `None` before the welcome.
    fn next_signed(&mut self) -> Option<(u64, u64)> {
        let session = self.session?;
        self.counter += 1;
        Some((session, self.counter))
    }

    fn queue_signed(&mut self, unsigned: Unsigned) {
        let id = self.work_id();
        self.work.push_back(Work::Sign { id, message: unsigned.message.clone() });
        self.transmit.push_back(Outgoing::Signing { id, unsigned });
    }

    /// Our identity, to the room (`to` 0) or to one session.
    fn announce(&mut self, to: u64) {
        let Some((sender_session, counter)) = self.next_signed() else { return };
        let envelope = Envelope { room: &self.room, sender_session, recipient_session: to, counter };
        let unsigned = packets::announcement(&self.identity, &self.user, &envelope);
        self.queue_signed(unsigned);
    }

    /// Sends our media key to `session`'s shown identity unless it already holds it or an
    /// earlier step of our ratchet.
    fn give_key(&mut self, session: u64) -> Result<(), PacketError> {
        let epoch = self.epoch;
        let Some(peer) = self.peers.get(&session) else { return Ok(()) };
        let Some(identity) = peer.identity.clone() else { return Ok(()) };
        if peer.given_epoch == Some(epoch) {
            return Ok(());
        }
        let Some((sender_session, counter)) = self.next_signed() else { return Ok(()) };
        let envelope = Envelope { room: &self.room, sender_session, recipient_session: session, counter };
        let unsigned = packets::key_grant(&mut self.rng, &self.sender, &identity, &envelope)?;
        self.queue_signed(unsigned);
        if let Some(peer) = self.peers.get_mut(&session) {
            peer.given_epoch = Some(epoch);
        }
        Ok(())
    }

    /// Someone joined: step our key along the ratchet, so what they are given cannot open what
    /// came before. Far from the last fresh key, draw a fresh one instead, so nobody has to
    /// follow more than [`MAX_RATCHET_STEPS`].
    fn ratchet(&mut self) -> Result<(), PacketError> {
        if self.sender.key_id().wrapping_sub(self.epoch) >= MAX_RATCHET_STEPS / 2 {
            return self.rotate_fresh();
        }
        self.sender = self.sender.ratchet();
        self.events.push_back(Event::Rotated { key_id: self.sender.key_id() });
        Ok(())
    }

    /// A fresh media key, given to everyone still here.
    fn rotate_fresh(&mut self) -> Result<(), PacketError> {
        let next = self.sender.key_id().wrapping_add(1);
        self.sender = SenderKey::generate(&mut self.rng, next);
        self.epoch = next;
        self.events.push_back(Event::Rotated { key_id: next });
        let sessions: Vec<u64> = self.peers.keys().copied().collect();
        for session in sessions {
            self.give_key(session)?;
        }
        Ok(())
    }
}
