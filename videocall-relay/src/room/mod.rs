//! One room on one relay, as a state machine with no I/O and no clock reads.
//!
//! Inputs carry the time (`join(now, …)`, `handle_bus(now, …)`, `handle_timeout(now)`); what
//! the driver must do comes out of [`Room::poll_output`]: publish on the bus, wake a session's
//! writer, close a session. Packets for local sessions wait in their bounded [`Outbox`] until
//! the driver drains them.
//!
//! Every packet a client sends goes out on the bus and comes back through the relay's one
//! subscription for the room ([`Room::handle_bus`]), so a packet reaches the other sessions on
//! this relay the same way it reaches those on other relays, and the sender never gets its own.
//! (Media of a room no other relay serves, [`Room::served_elsewhere`], the driver hands to the
//! bus for this relay's subscription alone: nobody elsewhere would take it.)
//! Presence is the exception: a relay tells its own sessions about joins and leaves directly and
//! ignores its own presence packets when they come back from the bus.
//!
//! Moderation (a host's remove, mute or end) arrives on the bus from the relay side (sender 0)
//! and is carried out here for this relay's sessions.
//!
//! Simulcast video is forwarded per receiver ([`forward`]): each receiver gets one layer of
//! each sender's stream, as its subscription and its queue allow, and every relay publishes what
//! its receivers take of each sender so that the sender's relay can tell it which layers to
//! encode.

pub mod forward;
mod moderation;
mod presence;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protobuf::Message as _;
use videocall_types::{PacketType, PacketWrapper, RoomId, UserId};

pub use forward::{Forwarding, Kind, SubscriptionError, Wants};
pub use moderation::Moderation;
pub use presence::{Member, PresenceEvent};

use crate::outbox::{Dropped, Outbox, OutboxLimits, PacketClass, Refused};
use crate::{SessionId, limits, wire};

/// The rules of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomConfig {
    pub outbox: OutboxLimits,
    pub heartbeat_timeout: Duration,
    pub presence_refresh: Duration,
    pub remote_member_timeout: Duration,
    pub max_participants: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            outbox: OutboxLimits { max_packets: limits::OUTBOX_MAX_PACKETS, max_bytes: limits::OUTBOX_MAX_BYTES },
            heartbeat_timeout: limits::HEARTBEAT_TIMEOUT,
            presence_refresh: limits::PRESENCE_REFRESH,
            remote_member_timeout: limits::REMOTE_MEMBER_TIMEOUT,
            max_participants: limits::MAX_PARTICIPANTS,
        }
    }
}

/// Why the relay ends a session: defined with the wire protocol, clients read it too.
pub use videocall_types::CloseReason;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomOutput {
    /// Publish on the bus; `from` is the sender session, `None` for the relay itself.
    Publish { from: Option<SessionId>, payload: Bytes },
    /// This session's outbox has packets and was empty before.
    Wake(SessionId),
    /// The relay ended this session; it is no longer in the room.
    Close { session: SessionId, reason: CloseReason },
}

/// What delivering one bus packet did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub packets: u64,
    pub bytes: u64,
    pub dropped: Dropped,
    /// The packet was not a valid `PacketWrapper` and went nowhere.
    pub invalid: bool,
    /// Receivers that did not get the packet because its sender already filled its share of
    /// their control queue (the sender is closed when it is on this relay).
    pub refused_over_share: u64,
    /// Receivers a video frame was not forwarded to: another layer of that stream is theirs.
    pub other_layer: u64,
}

impl Delivery {
    fn add(&mut self, other: Delivery) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.dropped.packets += other.dropped.packets;
        self.dropped.bytes += other.dropped.bytes;
        self.invalid |= other.invalid;
        self.refused_over_share += other.refused_over_share;
        self.other_layer += other.other_layer;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    #[error("the room is full ({max} participants)")]
    RoomFull { max: usize },
    #[error("session {0} is already in the room")]
    SessionExists(SessionId),
}

#[derive(Debug)]
struct LocalSession {
    member: Member,
    last_seen: Instant,
    outbox: Outbox,
}

#[derive(Debug)]
struct RemoteMember {
    member: Member,
    origin: u64,
    last_seen: Instant,
}

#[derive(Debug)]
pub struct Room {
    id: RoomId,
    origin: u64,
    config: RoomConfig,
    local: BTreeMap<SessionId, LocalSession>,
    remote: BTreeMap<SessionId, RemoteMember>,
    outputs: VecDeque<RoomOutput>,
    next_refresh: Option<Instant>,
    forwarding: Forwarding,
}

/// Which local sessions a packet goes to.
#[derive(Clone, Copy)]
enum Audience<'a> {
    AllExcept(Option<SessionId>),
    Only(SessionId),
    User(&'a UserId),
}

impl Room {
    /// `origin` identifies this relay instance in presence packets; it must differ between relays.
    pub fn new(id: RoomId, origin: u64, config: RoomConfig) -> Self {
        Self {
            id,
            origin,
            config,
            local: BTreeMap::new(),
            remote: BTreeMap::new(),
            outputs: VecDeque::new(),
            next_refresh: None,
            forwarding: Forwarding::default(),
        }
    }

    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// Sessions on this relay.
    pub fn local_count(&self) -> usize {
        self.local.len()
    }

    pub fn has_local(&self) -> bool {
        !self.local.is_empty()
    }

    /// Whether another relay has members in this room: only then need its media go on the bus.
    pub fn served_elsewhere(&self) -> bool {
        !self.remote.is_empty()
    }

    /// Everyone in the room as this relay knows it, local sessions first.
    pub fn members(&self) -> Vec<Member> {
        let local = self.local.values().map(|s| s.member.clone());
        local.chain(self.remote.values().map(|r| r.member.clone())).collect()
    }

    /// Adds a session of this relay. It receives the member list; everyone else learns it joined.
    /// An older session of the same user on this relay is closed as [`CloseReason::Replaced`].
    pub fn join(&mut self, now: Instant, member: Member) -> Result<(), JoinError> {
        let session = member.session;
        if self.local.contains_key(&session) || self.remote.contains_key(&session) {
            return Err(JoinError::SessionExists(session));
        }
        let replaced: Vec<SessionId> =
            self.local.values().filter(|s| s.member.user == member.user).map(|s| s.member.session).collect();
        let seats_freed = replaced.len();
        if self.local.len() + self.remote.len() - seats_freed >= self.config.max_participants {
            return Err(JoinError::RoomFull { max: self.config.max_participants });
        }
        self.end_sessions(replaced, CloseReason::Replaced);

        let first_here = self.local.is_empty();
        let mut outbox = Outbox::new(self.config.outbox);
        let others = self.local.values().map(|s| &s.member).chain(self.remote.values().map(|r| &r.member));
        // A fresh outbox holds one control packet: this push cannot overflow.
        let _ = outbox.push(presence::welcome(self.origin, &member, others), PacketClass::Control);
        self.outputs.push_back(RoomOutput::Wake(session));

        let joined = presence::joined(self.origin, &member);
        self.local.insert(session, LocalSession { member, last_seen: now, outbox });
        self.forwarding.add_receiver(session);
        let (_, too_slow) = self.fan_out(&joined, PacketClass::Control, Audience::AllExcept(Some(session)));
        self.outputs.push_back(RoomOutput::Publish { from: Some(session), payload: joined });
        if first_here {
            self.outputs.push_back(RoomOutput::Publish { from: None, payload: presence::sync_request(self.origin) });
            self.next_refresh = Some(now + self.config.presence_refresh);
        }
        self.end_sessions(too_slow, CloseReason::TooSlow);
        self.flush_forwarding(Some(now));
        Ok(())
    }

    /// What a session of this relay wants of the room's video (its `Subscription`), replacing
    /// what it asked before. Senders are told the layers that changed.
    pub fn subscribe(
        &mut self,
        now: Instant,
        session: SessionId,
        subscription: &[u8],
    ) -> Result<(), SubscriptionError> {
        let wants = Wants::parse(subscription)?;
        self.forwarding.subscribe(session, wants);
        self.flush_forwarding(Some(now));
        Ok(())
    }

    /// The per-receiver forwarding state (layers forwarded, caps).
    pub fn forwarding(&self) -> &Forwarding {
        &self.forwarding
    }

    /// Publishes this relay's changed demand for senders, and tells this relay's senders what
    /// all relays take of them.
    fn flush_forwarding(&mut self, now: Option<Instant>) {
        let known = |s: SessionId| self.local.contains_key(&s) || self.remote.contains_key(&s);
        let outputs = self.forwarding.poll(now, known);
        self.forward_outputs(outputs);
    }

    fn forward_outputs(&mut self, outputs: Vec<forward::ForwardOutput>) {
        for output in outputs {
            match output {
                forward::ForwardOutput::Publish { sender, demand } => {
                    let payload = demand_packet(sender, forward::encode(self.origin, sender, &demand));
                    self.outputs.push_back(RoomOutput::Publish { from: None, payload });
                }
                forward::ForwardOutput::Tell { sender, demand } => {
                    let payload = demand_packet(sender, forward::encode(0, sender, &demand));
                    let (_, too_slow) = self.fan_out(&payload, PacketClass::Control, Audience::Only(sender));
                    self.end_sessions(too_slow, CloseReason::TooSlow);
                }
            }
        }
    }

    /// Removes a session of this relay; the others learn it left. False if it was not here.
    pub fn leave(&mut self, session: SessionId) -> bool {
        let present = self.local.contains_key(&session);
        self.end_sessions(vec![session], CloseReason::Left);
        present
    }

    /// Records that a session was heard from.
    pub fn touch(&mut self, now: Instant, session: SessionId) {
        if let Some(s) = self.local.get_mut(&session) {
            s.last_seen = now;
        }
    }

    /// Takes up to `max` packets waiting for `session`.
    pub fn drain(&mut self, session: SessionId, out: &mut Vec<Bytes>, max: usize) {
        if let Some(s) = self.local.get_mut(&session) {
            s.outbox.drain_into(out, max);
        }
    }

    /// A packet from the room's bus subscription; `from` is the subject's sender token.
    pub fn handle_bus(&mut self, now: Instant, from: Option<SessionId>, packet: Bytes) -> Delivery {
        let Ok(header) = wire::scan(&packet) else {
            return Delivery { invalid: true, ..Delivery::default() };
        };
        if header.packet_type == PacketType::PRESENCE {
            return self.handle_presence(now, &packet);
        }
        if header.packet_type == PacketType::MODERATION {
            return self.handle_moderation(from, &packet);
        }
        if header.packet_type == PacketType::LAYER_DEMAND {
            return self.handle_demand(now, from, &packet);
        }
        if let Some(remote) = from.and_then(|from| self.remote.get_mut(&from)) {
            remote.last_seen = now;
        }
        let class = match (header.packet_type, header.route.keyframe) {
            (PacketType::MEDIA, true) => PacketClass::KeyMedia,
            (PacketType::MEDIA, false) => PacketClass::Media,
            _ => PacketClass::Control,
        };
        let audience = match header.to_session {
            Some(to) if Some(to) != from => Audience::Only(to),
            Some(_) => return Delivery::default(),
            None => Audience::AllExcept(from),
        };
        let kind = forward::Kind::of(&header.route).filter(|_| header.packet_type == PacketType::MEDIA);
        let (delivery, too_slow) = match (kind, from, audience) {
            (Some(kind), Some(sender), Audience::AllExcept(_)) => {
                self.fan_out_routed(now, &packet, class, sender, kind, &header.route)
            }
            _ => self.fan_out_from(&packet, class, audience, from),
        };
        self.end_sessions(too_slow, CloseReason::TooSlow);
        self.flush_forwarding(Some(now));
        // The sender, not its receivers, pays for filling their queues.
        if delivery.refused_over_share > 0
            && let Some(sender) = from.filter(|s| self.local.contains_key(s))
        {
            self.end_sessions(vec![sender], CloseReason::Flooding);
        }
        delivery
    }

    /// Ends silent sessions, forgets remote members whose relay went quiet, and publishes the
    /// periodic presence refresh (and with it this relay's demand for senders, so that other
    /// relays keep it; theirs expire as their members do).
    pub fn handle_timeout(&mut self, now: Instant) {
        let silent: Vec<SessionId> = self
            .local
            .values()
            .filter(|s| now.saturating_duration_since(s.last_seen) >= self.config.heartbeat_timeout)
            .map(|s| s.member.session)
            .collect();
        self.end_sessions(silent, CloseReason::TimedOut);

        let gone: Vec<SessionId> = self
            .remote
            .values()
            .filter(|r| now.saturating_duration_since(r.last_seen) >= self.config.remote_member_timeout)
            .map(|r| r.member.session)
            .collect();
        for session in gone {
            self.forget_remote(session, CloseReason::TimedOut);
        }

        let refresh = self.next_refresh.is_some_and(|due| now >= due);
        if refresh {
            self.publish_refresh();
            self.next_refresh = Some(now + self.config.presence_refresh);
        }
        let expired = now.checked_sub(self.config.remote_member_timeout).unwrap_or(now);
        let outputs = self.forwarding.expire(expired, refresh);
        self.forward_outputs(outputs);
    }

    /// When [`Room::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let local = self.local.values().map(|s| s.last_seen + self.config.heartbeat_timeout);
        let remote = self.remote.values().map(|r| r.last_seen + self.config.remote_member_timeout);
        local.chain(remote).chain(self.next_refresh).min()
    }

    pub fn poll_output(&mut self) -> Option<RoomOutput> {
        self.outputs.pop_front()
    }

    fn publish_refresh(&mut self) {
        let payload = presence::members(self.origin, self.local.values().map(|s| &s.member));
        self.outputs.push_back(RoomOutput::Publish { from: None, payload });
    }

    fn handle_presence(&mut self, now: Instant, packet: &Bytes) -> Delivery {
        let Some((origin, event)) = presence::parse(packet) else {
            return Delivery { invalid: true, ..Delivery::default() };
        };
        if origin == self.origin {
            return Delivery::default();
        }
        let mut delivery = Delivery::default();
        match event {
            PresenceEvent::Joined(member) => {
                if self.upsert_remote(now, origin, member) {
                    delivery = self.fan_out_checked(packet, Audience::AllExcept(None));
                }
            }
            PresenceEvent::Left(member) => {
                self.forwarding.forget(member.session);
                if self.remote.remove(&member.session).is_some() {
                    delivery = self.fan_out_checked(packet, Audience::AllExcept(None));
                }
            }
            PresenceEvent::Members(list) => {
                let listed: Vec<SessionId> = list.iter().map(|m| m.session).collect();
                for member in list {
                    let joined = presence::joined(origin, &member);
                    if self.upsert_remote(now, origin, member) {
                        delivery.add(self.fan_out_checked(&joined, Audience::AllExcept(None)));
                    }
                }
                // That relay's whole list: its members missing from it are gone.
                let missing: Vec<SessionId> = self
                    .remote
                    .values()
                    .filter(|r| r.origin == origin && !listed.contains(&r.member.session))
                    .map(|r| r.member.session)
                    .collect();
                for session in missing {
                    self.forget_remote(session, CloseReason::Left);
                }
            }
            PresenceEvent::SyncRequest => {
                if self.has_local() {
                    self.publish_refresh();
                }
            }
        }
        delivery
    }

    /// A relay's demand for a sender's layers; only relays (sender 0) publish one. Acted on by
    /// the sender's relay alone.
    fn handle_demand(&mut self, now: Instant, from: Option<SessionId>, packet: &Bytes) -> Delivery {
        let demand = PacketWrapper::parse_from_bytes(packet).ok().and_then(|w| forward::decode(&w.data));
        let Some((origin, sender, demand)) = demand.filter(|_| from.is_none()) else {
            return Delivery { invalid: true, ..Delivery::default() };
        };
        if !self.local.contains_key(&sender) {
            return Delivery::default();
        }
        if let Some(tell) = self.forwarding.on_demand(now, origin, sender, demand) {
            self.forward_outputs(vec![tell]);
        }
        Delivery::default()
    }

    /// A host's action; only the relay side (sender 0) may publish one.
    fn handle_moderation(&mut self, from: Option<SessionId>, packet: &Bytes) -> Delivery {
        let moderation = if from.is_none() { Moderation::parse(packet) } else { None };
        let Some(moderation) = moderation else {
            return Delivery { invalid: true, ..Delivery::default() };
        };
        match moderation {
            Moderation::Remove(user) => {
                let theirs = self.local.values().filter(|s| s.member.user == user).map(|s| s.member.session).collect();
                self.end_sessions(theirs, CloseReason::Removed);
                Delivery::default()
            }
            Moderation::End => {
                let everyone = self.local.keys().copied().collect();
                self.end_sessions(everyone, CloseReason::Ended);
                Delivery::default()
            }
            Moderation::Mute(user) => self.fan_out_checked(packet, Audience::User(&user)),
        }
    }

    /// True when the member was not known before.
    fn upsert_remote(&mut self, now: Instant, origin: u64, member: Member) -> bool {
        if self.local.contains_key(&member.session) {
            return false;
        }
        match self.remote.get_mut(&member.session) {
            Some(known) => {
                known.last_seen = now;
                known.origin = origin;
                false
            }
            None => {
                self.remote.insert(member.session, RemoteMember { member, origin, last_seen: now });
                true
            }
        }
    }

    fn forget_remote(&mut self, session: SessionId, reason: CloseReason) {
        self.forwarding.forget(session);
        if let Some(gone) = self.remote.remove(&session) {
            let left = presence::left(self.origin, &gone.member, reason.as_str());
            self.fan_out_checked(&left, Audience::AllExcept(None));
        }
    }

    /// Fan-out of a control packet, ending the sessions that cannot take it.
    fn fan_out_checked(&mut self, packet: &Bytes, audience: Audience) -> Delivery {
        let (delivery, too_slow) = self.fan_out(packet, PacketClass::Control, audience);
        self.end_sessions(too_slow, CloseReason::TooSlow);
        delivery
    }

    /// Queues a packet of the relay's own for the audience; returns what happened and the
    /// sessions that overflowed.
    fn fan_out(&mut self, packet: &Bytes, class: PacketClass, audience: Audience) -> (Delivery, Vec<SessionId>) {
        self.fan_out_from(packet, class, audience, None)
    }

    /// Queues `packet` from the session `from` for the audience.
    fn fan_out_from(
        &mut self,
        packet: &Bytes,
        class: PacketClass,
        audience: Audience,
        from: Option<SessionId>,
    ) -> (Delivery, Vec<SessionId>) {
        let mut fan = FanOut { packet, class, from, delivery: Delivery::default(), too_slow: Vec::new() };
        let Self { local, outputs, .. } = self;
        match audience {
            Audience::Only(to) => {
                if let Some(s) = local.get_mut(&to) {
                    fan.enqueue(to, &mut s.outbox, outputs);
                }
            }
            Audience::AllExcept(except) => {
                for (id, s) in local.iter_mut().filter(|(id, _)| Some(**id) != except) {
                    fan.enqueue(*id, &mut s.outbox, outputs);
                }
            }
            Audience::User(user) => {
                for (id, s) in local.iter_mut().filter(|(_, s)| s.member.user == *user) {
                    fan.enqueue(*id, &mut s.outbox, outputs);
                }
            }
        }
        (fan.delivery, fan.too_slow)
    }

    /// Queues a sender's video frame for each receiver whose layer of that stream it is; each
    /// receiver's queue moves its layers.
    fn fan_out_routed(
        &mut self,
        now: Instant,
        packet: &Bytes,
        class: PacketClass,
        sender: SessionId,
        kind: forward::Kind,
        route: &videocall_types::Route,
    ) -> (Delivery, Vec<SessionId>) {
        let mut fan = FanOut { packet, class, from: Some(sender), delivery: Delivery::default(), too_slow: Vec::new() };
        let Self { local, outputs, forwarding, .. } = self;
        for (id, s) in local.iter_mut().filter(|(id, _)| **id != sender) {
            if !forwarding.admit(now, *id, sender, kind, route) {
                fan.delivery.other_layer += 1;
                continue;
            }
            let dropped_before = fan.delivery.dropped.packets;
            fan.enqueue(*id, &mut s.outbox, outputs);
            let dropped = fan.delivery.dropped.packets > dropped_before;
            forwarding.observe_queue(now, *id, s.outbox.bytes(), dropped);
        }
        (fan.delivery, fan.too_slow)
    }

    /// Removes sessions of this relay and tells everyone. Sessions that overflow on the way
    /// (their outbox cannot take the leave notice) are ended as too slow.
    fn end_sessions(&mut self, sessions: Vec<SessionId>, reason: CloseReason) {
        let mut work: Vec<(SessionId, CloseReason)> = sessions.into_iter().map(|s| (s, reason)).collect();
        let mut ended = false;
        while let Some((session, reason)) = work.pop() {
            let Some(gone) = self.local.remove(&session) else { continue };
            ended = true;
            self.forwarding.forget(session);
            if reason != CloseReason::Left {
                self.outputs.push_back(RoomOutput::Close { session, reason });
            }
            let left = presence::left(self.origin, &gone.member, reason.as_str());
            let (_, too_slow) = self.fan_out(&left, PacketClass::Control, Audience::AllExcept(None));
            work.extend(too_slow.into_iter().map(|s| (s, CloseReason::TooSlow)));
            self.outputs.push_back(RoomOutput::Publish { from: Some(session), payload: left });
        }
        if self.local.is_empty() {
            self.next_refresh = None;
        }
        // Who left took their demand with them.
        if ended {
            self.flush_forwarding(None);
        }
    }
}

/// A `LAYER_DEMAND` packet about `sender`, addressed to it.
fn demand_packet(sender: SessionId, data: Vec<u8>) -> Bytes {
    let packet = PacketWrapper {
        packet_type: PacketType::LAYER_DEMAND.into(),
        to_session_id: sender.get(),
        data,
        ..Default::default()
    };
    Bytes::from(packet.write_to_bytes().unwrap_or_default())
}

struct FanOut<'a> {
    packet: &'a Bytes,
    class: PacketClass,
    from: Option<SessionId>,
    delivery: Delivery,
    too_slow: Vec<SessionId>,
}

impl FanOut<'_> {
    fn enqueue(&mut self, session: SessionId, outbox: &mut Outbox, outputs: &mut VecDeque<RoomOutput>) {
        let was_empty = outbox.is_empty();
        match outbox.push_from(self.packet.clone(), self.class, self.from) {
            Ok(dropped) => {
                self.delivery.packets += 1;
                self.delivery.bytes += self.packet.len() as u64;
                self.delivery.dropped.packets += dropped.packets;
                self.delivery.dropped.bytes += dropped.bytes;
                if was_empty {
                    outputs.push_back(RoomOutput::Wake(session));
                }
            }
            Err(Refused::SenderShare) => self.delivery.refused_over_share += 1,
            Err(_) => self.too_slow.push(session),
        }
    }
}

#[cfg(test)]
mod tests;
