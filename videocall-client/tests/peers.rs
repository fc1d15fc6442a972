//! Participants' key exchange on a simulated room: a relay that stamps identities, routes
//! addressed packets to their one session and everything else to the others, and reports
//! presence. Virtual time; no sockets.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use protobuf::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::crypto::IdentityKey;
use videocall_client::peers::{Event, PeerState};
use videocall_types::{MediaPacket, MemberList, PacketWrapper, Participant, ParticipantLeft, PresencePacket};
use videocall_types::{PacketType, presence_packet};

fn identity(n: usize) -> IdentityKey {
    static KEYS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        (0..4)
            .map(|_| rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap().to_pkcs8_der().unwrap().as_bytes().to_vec())
            .collect()
    });
    IdentityKey::from_pkcs8_der(&keys[n]).unwrap()
}

struct Member {
    user: String,
    state: PeerState<ChaCha20Rng>,
    events: Vec<Event>,
}

#[derive(Default)]
struct Room {
    members: BTreeMap<u64, Member>,
    /// Every packet the relay forwarded, as bytes: what a relay (or an eavesdropper on it) sees.
    forwarded: Vec<(u64, Vec<u8>)>,
}

fn presence(event: presence_packet::Event) -> PacketWrapper {
    let mut p = PresencePacket::new();
    p.event = Some(event);
    let mut w = PacketWrapper::new();
    w.packet_type = PacketType::PRESENCE.into();
    w.data = p.write_to_bytes().unwrap();
    w
}

fn participant(session: u64, user: &str) -> Participant {
    let mut p = Participant::new();
    p.session_id = session;
    p.user_id = user.into();
    p.display_name = user.to_uppercase();
    p
}

impl Room {
    fn join(&mut self, session: u64, user: &str, key: usize) {
        let state = PeerState::new(ChaCha20Rng::seed_from_u64(session), identity(key), user).unwrap();
        self.enter(session, Member { user: user.into(), state, events: Vec::new() });
    }

    /// `member` (new, or back after a reconnect) gets the member list; the others see it join.
    fn enter(&mut self, session: u64, mut member: Member) {
        let user = member.user.clone();
        let user = user.as_str();
        let mut members = MemberList::new();
        members.participants = self.members.iter().map(|(s, m)| participant(*s, &m.user)).collect();
        member.state.handle_packet(0, presence(presence_packet::Event::Members(members)));
        for other in self.members.values_mut() {
            other.state.handle_packet(0, presence(presence_packet::Event::Joined(participant(session, user))));
        }
        self.members.insert(session, member);
    }

    fn leave(&mut self, session: u64, now: u64) -> Member {
        let gone = self.members.remove(&session).unwrap();
        let mut left = ParticipantLeft::new();
        left.participant = Some(participant(session, &gone.user)).into();
        for other in self.members.values_mut() {
            other.state.handle_packet(now, presence(presence_packet::Event::Left(left.clone())));
        }
        gone
    }

    /// Delivers everything queued until nobody has anything to send.
    fn settle(&mut self, now: u64) {
        loop {
            let mut moved = false;
            let sessions: Vec<u64> = self.members.keys().copied().collect();
            for from in sessions {
                while let Some(mut packet) = self.members.get_mut(&from).unwrap().state.poll_transmit() {
                    moved = true;
                    packet.email = self.members[&from].user.clone();
                    packet.session_id = from;
                    let bytes = packet.write_to_bytes().unwrap();
                    for (to, member) in self.members.iter_mut() {
                        if *to != from && (packet.to_session_id == 0 || packet.to_session_id == *to) {
                            self.forwarded.push((*to, bytes.clone()));
                            member.state.handle_packet(now, PacketWrapper::parse_from_bytes(&bytes).unwrap());
                        }
                    }
                }
            }
            for member in self.members.values_mut() {
                while let Some(e) = member.state.poll_event() {
                    member.events.push(e);
                }
            }
            if !moved {
                return;
            }
        }
    }
}

fn frame(text: &str) -> MediaPacket {
    let mut m = MediaPacket::new();
    m.data = text.as_bytes().to_vec();
    m
}

/// Media texts `member` opened, by sending session, removing them from its events.
fn opened(member: &mut Member) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    member.events.retain(|e| match e {
        Event::Media { session, media, .. } => {
            out.push((*session, String::from_utf8_lossy(&media.data).into_owned()));
            false
        }
        _ => true,
    });
    out
}

#[test]
fn three_join_exchange_keys_and_one_leaves() {
    let mut room = Room::default();
    room.join(1, "alice", 0);
    room.settle(0);
    room.join(2, "bob", 1);
    room.join(3, "carol", 2);
    room.settle(0);

    // Everyone holds everyone's public key and media key; fingerprints are the real ones.
    for (session, member) in &room.members {
        assert_eq!(member.state.peers().len(), 2, "{session}");
        assert!(member.state.peers().values().all(|p| p.key.is_some()), "{session}");
    }
    let bob_seen_by_alice = room.members[&1].events.iter().find_map(|e| match e {
        Event::PeerKey { session: 2, fingerprint } => Some(*fingerprint),
        _ => None,
    });
    assert_eq!(bob_seen_by_alice, Some(identity(1).fingerprint()));

    for (session, text) in [(1, "from alice"), (2, "from bob"), (3, "from carol")] {
        room.members.get_mut(&session).unwrap().state.seal(&frame(text), false).unwrap();
    }
    room.settle(10);
    for (session, member) in room.members.iter_mut() {
        let mut got = opened(member);
        got.sort();
        let expected: Vec<(u64, String)> = [(1, "from alice"), (2, "from bob"), (3, "from carol")]
            .into_iter()
            .filter(|(s, _)| s != session)
            .map(|(s, t)| (s, t.to_owned()))
            .collect();
        assert_eq!(got, expected, "session {session}");
        assert!(!member.events.iter().any(|e| matches!(e, Event::Dropped { .. })), "{:?}", member.events);
    }

    // Carol leaves: Alice and Bob move to new keys, given only to each other.
    let (alice_before, bob_before) = (room.members[&1].state.key_id(), room.members[&2].state.key_id());
    let mut carol = room.leave(3, 1000);
    room.settle(1000);
    assert_ne!(room.members[&1].state.key_id(), alice_before);
    assert_ne!(room.members[&2].state.key_id(), bob_before);
    room.members.get_mut(&1).unwrap().state.seal(&frame("after carol"), true).unwrap();
    room.settle(1001);
    assert_eq!(opened(room.members.get_mut(&2).unwrap()), vec![(1, "after carol".to_owned())]);

    // Carol, handed what the relay forwarded to Bob after she left, opens none of it.
    let after: Vec<Vec<u8>> = room.forwarded.iter().filter(|(to, _)| *to == 2).map(|(_, b)| b.clone()).collect();
    for bytes in after.iter().rev().take(1) {
        carol.state.handle_packet(1001, PacketWrapper::parse_from_bytes(bytes).unwrap());
    }
    while let Some(e) = carol.state.poll_event() {
        assert!(!matches!(e, Event::Media { .. }), "a departed member opened a later frame");
    }
    // And the relay never saw a frame's plaintext.
    assert!(room.forwarded.iter().all(|(_, b)| !b.windows(10).any(|w| w == b"from alice")));
}

#[test]
fn a_reconnect_re_exchanges_keys_under_a_new_session() {
    let mut room = Room::default();
    room.join(1, "alice", 0);
    room.join(2, "bob", 1);
    room.settle(0);
    let bob_key_before = room.members[&2].state.key_id();

    // Bob's network drops: the relay reports him gone, he comes back as session 5.
    let mut bob = room.leave(2, 100);
    bob.state.restart("bob").unwrap();
    while let Some(e) = bob.state.poll_event() {
        bob.events.push(e);
    }
    assert!(bob.events.iter().any(|e| matches!(e, Event::Left { session: 1 })), "{:?}", bob.events);
    assert!(bob.state.peers().is_empty());
    assert_ne!(bob.state.key_id(), bob_key_before, "a new key after a reconnect");
    bob.events.clear();
    room.enter(5, bob);
    room.settle(200);

    for (from, to, text) in [(1, 5, "alice to new bob"), (5, 1, "new bob to alice")] {
        room.members.get_mut(&from).unwrap().state.seal(&frame(text), true).unwrap();
        room.settle(300);
        assert_eq!(opened(room.members.get_mut(&to).unwrap()), vec![(from, text.to_owned())]);
    }
    assert_eq!(room.members[&1].state.peer_key_id(5), Some(room.members[&5].state.key_id()));
    for member in room.members.values() {
        assert!(!member.events.iter().any(|e| matches!(e, Event::Dropped { .. })), "{:?}", member.events);
    }
}

#[test]
fn addressed_frames_reach_only_their_session() {
    let mut room = Room::default();
    room.join(1, "alice", 0);
    room.join(2, "bob", 1);
    room.join(3, "carol", 2);
    room.settle(0);
    room.members.get_mut(&1).unwrap().state.seal_to(&frame("for bob"), false, 2).unwrap();
    room.settle(10);
    assert_eq!(opened(room.members.get_mut(&2).unwrap()), vec![(1, "for bob".to_owned())]);
    assert!(opened(room.members.get_mut(&3).unwrap()).is_empty());
}

/// The network may lose, reorder and duplicate frames: each frame opens at most once, in any
/// order within the window, and what is lost is simply missing.
#[test]
fn lost_reordered_and_duplicated_frames() {
    use rand_core::RngCore;
    let mut room = Room::default();
    room.join(1, "alice", 0);
    room.join(2, "bob", 1);
    room.settle(0);
    let mut sealed = Vec::new();
    for i in 0..60 {
        let alice = room.members.get_mut(&1).unwrap();
        alice.state.seal(&frame(&format!("frame {i}")), false).unwrap();
        let mut p = alice.state.poll_transmit().unwrap();
        (p.email, p.session_id) = ("alice".into(), 1);
        sealed.push(p);
    }
    // Lose every tenth, duplicate every seventh, then shuffle (seeded).
    let mut wire: Vec<PacketWrapper> =
        sealed.iter().enumerate().filter(|(i, _)| i % 10 != 3).map(|(_, p)| p.clone()).collect();
    let duplicates: Vec<PacketWrapper> = wire.iter().step_by(7).cloned().collect();
    wire.extend(duplicates.iter().cloned());
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for i in (1..wire.len()).rev() {
        wire.swap(i, rng.next_u32() as usize % (i + 1));
    }
    let bob = room.members.get_mut(&2).unwrap();
    for p in wire {
        bob.state.handle_packet(10, p);
    }
    while let Some(e) = bob.state.poll_event() {
        bob.events.push(e);
    }
    let mut got: Vec<String> = opened(bob).into_iter().map(|(_, t)| t).collect();
    got.sort();
    let mut expected: Vec<String> = (0..60).filter(|i| i % 10 != 3).map(|i| format!("frame {i}")).collect();
    expected.sort();
    assert_eq!(got, expected);
    let replays = bob
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Dropped {
                    error: videocall_client::packets::PacketError::Open(videocall_client::crypto::OpenError::Replayed),
                    ..
                }
            )
        })
        .count();
    assert_eq!(replays, duplicates.len(), "{:?}", bob.events);
}

/// A host's mute reaches the client as a moderation packet from the relay side: it means
/// something only when it names this client, and only from the relay (session 0).
#[test]
fn a_mute_from_the_relay_for_us_is_an_event() {
    use videocall_types::{ModerationPacket, moderation_packet::Action};
    let moderation = |user: &str, session: u64| {
        let mut m = ModerationPacket::new();
        m.action = Some(Action::MuteUser(user.into()));
        let mut w = PacketWrapper::new();
        w.packet_type = PacketType::MODERATION.into();
        w.data = m.write_to_bytes().unwrap();
        w.session_id = session;
        w
    };
    let mut room = Room::default();
    room.join(1, "alice", 0);
    room.settle(0);
    let alice = room.members.get_mut(&1).unwrap();
    alice.events.clear();
    alice.state.handle_packet(5, moderation("bob", 0));
    alice.state.handle_packet(5, moderation("alice", 7));
    assert!(alice.state.poll_event().is_none(), "not for us, or not from the relay");
    alice.state.handle_packet(6, moderation("alice", 0));
    assert!(matches!(alice.state.poll_event(), Some(Event::MutedByHost)));
}
