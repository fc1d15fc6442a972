//! A simulated room for the client core's tests and benchmark: a relay that stamps identities,
//! routes addressed packets to their one session and everything else to the others, and
//! reports presence. Virtual time; no sockets; private-key work done locally (or deferred, as
//! an asynchronous WebCrypto call would be). It can also act as a hostile relay: `inject`
//! hands a member whatever it likes, stamped as whoever it likes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::crypto::LocalIdentity;
use videocall_client::packets::{PacketError, Refusal};
use videocall_client::peers::{Event, PeerState};
use videocall_types::presence_packet;
use videocall_types::{MemberList, PacketType, PacketWrapper, Participant, ParticipantLeft, PresencePacket};

pub const ROOM: &str = "room-1";

/// Identity `n`, seeded, made once per run when first asked for (RSA-2048 generation is slow).
pub fn identity(n: usize) -> &'static LocalIdentity {
    static KEYS: Mutex<BTreeMap<usize, &'static LocalIdentity>> = Mutex::new(BTreeMap::new());
    let mut keys = KEYS.lock().unwrap();
    keys.entry(n).or_insert_with(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1_000 + n as u64);
        Box::leak(Box::new(LocalIdentity::generate(&mut rng).unwrap()))
    })
}

pub struct Member {
    pub user: String,
    pub key: usize,
    pub state: PeerState<ChaCha20Rng>,
    pub events: Vec<Event>,
    /// Time spent on this member's key work and packet handling (the benchmark's figure).
    pub cpu: Duration,
    /// When set, private-key work waits (as an asynchronous WebCrypto call would).
    pub defer_work: bool,
}

#[derive(Default)]
pub struct Room {
    pub members: BTreeMap<u64, Member>,
    /// Every packet the relay forwarded, as (recipient, bytes): what a relay sees.
    pub forwarded: Vec<(u64, Vec<u8>)>,
    /// Summed over [`Room::settle`]'s rounds, the busiest member's time in each: how long the
    /// exchange takes with members working in parallel on a network with no delay.
    pub critical_path: Duration,
}

pub fn presence(event: presence_packet::Event) -> PacketWrapper {
    let mut p = PresencePacket::new();
    p.event = Some(event);
    let mut w = PacketWrapper::new();
    w.packet_type = PacketType::PRESENCE.into();
    w.data = p.write_to_bytes().unwrap();
    w
}

pub fn participant(session: u64, user: &str) -> Participant {
    let mut p = Participant::new();
    p.session_id = session;
    p.user_id = user.into();
    p.display_name = user.to_uppercase();
    p
}

pub fn joined(session: u64, user: &str) -> PacketWrapper {
    presence(presence_packet::Event::Joined(participant(session, user)))
}

impl Member {
    pub fn new(user: &str, key: usize, seed: u64) -> Self {
        let mut state = PeerState::new(ChaCha20Rng::seed_from_u64(seed), identity(key).public().clone());
        state.restart(user, ROOM);
        Self { user: user.into(), key, state, events: Vec::new(), cpu: Duration::ZERO, defer_work: false }
    }

    pub fn work(&mut self, now: u64) {
        let started = Instant::now();
        self.state.work_locally(identity(self.key), now);
        self.cpu += started.elapsed();
    }

    fn handle(&mut self, now: u64, bytes: &[u8]) {
        let started = Instant::now();
        self.state.handle_packet(now, PacketWrapper::parse_from_bytes(bytes).unwrap());
        self.cpu += started.elapsed();
    }

    pub fn collect(&mut self) {
        while let Some(e) = self.state.poll_event() {
            self.events.push(e);
        }
    }

    /// Refusals of key packets, in order.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Dropped { error: PacketError::Refused(r), .. } => Some(*r),
                _ => None,
            })
            .collect()
    }
}

impl Room {
    pub fn join(&mut self, session: u64, user: &str, key: usize) {
        self.enter(session, Member::new(user, key, session));
    }

    /// `member` (new, or back after a reconnect) gets the member list naming it; the others see
    /// it join.
    pub fn enter(&mut self, session: u64, mut member: Member) {
        let user = member.user.clone();
        let mut members = MemberList::new();
        members.participants = self.members.iter().map(|(s, m)| participant(*s, &m.user)).collect();
        members.you = Some(participant(session, &user)).into();
        member.state.handle_packet(0, presence(presence_packet::Event::Members(members)));
        for other in self.members.values_mut() {
            other.state.handle_packet(0, joined(session, &user));
        }
        self.members.insert(session, member);
    }

    pub fn leave(&mut self, session: u64, now: u64) -> Member {
        let gone = self.members.remove(&session).unwrap();
        let mut left = ParticipantLeft::new();
        left.participant = Some(participant(session, &gone.user)).into();
        for other in self.members.values_mut() {
            other.state.handle_packet(now, presence(presence_packet::Event::Left(left.clone())));
        }
        gone
    }

    pub fn member(&mut self, session: u64) -> &mut Member {
        self.members.get_mut(&session).unwrap()
    }

    /// What the relay would deliver of `packet` from `from`: stamped, as bytes.
    pub fn stamp(&self, from: u64, mut packet: PacketWrapper) -> Vec<u8> {
        packet.email = self.members.get(&from).map(|m| m.user.clone()).unwrap_or_else(|| "mallory".into());
        packet.session_id = from;
        packet.write_to_bytes().unwrap()
    }

    /// The relay hands `to` a packet it made or kept, stamped as coming from `from`.
    pub fn inject(&mut self, now: u64, to: u64, from: u64, packet: PacketWrapper) {
        let bytes = self.stamp(from, packet);
        let member = self.member(to);
        member.state.handle_packet(now, PacketWrapper::parse_from_bytes(&bytes).unwrap());
        member.collect();
    }

    /// Delivers everything queued until nobody has anything to send.
    pub fn settle(&mut self, now: u64) {
        loop {
            let mut moved = false;
            let before: BTreeMap<u64, Duration> = self.members.iter().map(|(s, m)| (*s, m.cpu)).collect();
            let sessions: Vec<u64> = self.members.keys().copied().collect();
            for from in sessions {
                let member = self.member(from);
                if !member.defer_work {
                    member.work(now);
                }
                while let Some(packet) = self.member(from).state.poll_transmit() {
                    moved = true;
                    let bytes = self.stamp(from, packet.clone());
                    for (to, member) in self.members.iter_mut() {
                        if *to != from && (packet.to_session_id == 0 || packet.to_session_id == *to) {
                            self.forwarded.push((*to, bytes.clone()));
                            member.handle(now, &bytes);
                        }
                    }
                }
            }
            let busiest =
                self.members.iter().map(|(s, m)| m.cpu.saturating_sub(before.get(s).copied().unwrap_or_default()));
            self.critical_path += busiest.max().unwrap_or_default();
            for member in self.members.values_mut() {
                member.collect();
            }
            if !moved {
                return;
            }
        }
    }

    /// Packets the relay forwarded to `to` since `since`, parsed.
    pub fn forwarded_to(&self, to: u64, since: usize) -> Vec<PacketWrapper> {
        self.forwarded[since..]
            .iter()
            .filter(|(t, _)| *t == to)
            .map(|(_, b)| PacketWrapper::parse_from_bytes(b).unwrap())
            .collect()
    }
}
