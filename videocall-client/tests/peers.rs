//! Participants' key exchange on a simulated room: a relay that stamps identities, routes
//! addressed packets to their one session and everything else to the others, and reports
//! presence. Virtual time; no sockets. The hostile-relay tests at the end inject what a relay
//! operator (or anyone who can publish on the room's bus) could.

mod sim;

use std::collections::BTreeMap;

use protobuf::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sim::{Member, ROOM, Room, identity, joined};
use videocall_client::crypto::statement::Envelope;
use videocall_client::crypto::{LocalIdentity, SenderKey};
use videocall_client::packets::{self, Refusal};
use videocall_client::peers::Event;
use videocall_types::{MediaPacket, PacketType, PacketWrapper, Route};

/// The relay's own identity, for the attacks.
fn mallory() -> &'static LocalIdentity {
    identity(99)
}

/// A routing header for a frame that is not a stream's (every receiver gets it).
fn route(keyframe: bool) -> Route {
    Route { keyframe, ..Route::default() }
}

fn frame(text: &str) -> MediaPacket {
    let mut m = MediaPacket::new();
    m.data = text.as_bytes().to_vec().into();
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

    // Everyone holds everyone's identity and media key; fingerprints are the real ones.
    for (session, member) in &room.members {
        assert_eq!(member.state.peers().len(), 2, "{session}");
        assert!(member.state.peers().values().all(|p| p.identity.is_some()), "{session}");
        for other in member.state.peers().keys() {
            assert!(member.state.peer_key_id(*other).is_some(), "{session} holds {other}'s media key");
        }
    }
    let bob_seen_by_alice = room.members[&1].events.iter().find_map(|e| match e {
        Event::PeerKey { session: 2, fingerprint } => Some(*fingerprint),
        _ => None,
    });
    assert_eq!(bob_seen_by_alice, Some(identity(1).fingerprint()));

    for (session, text) in [(1, "from alice"), (2, "from bob"), (3, "from carol")] {
        room.members.get_mut(&session).unwrap().state.seal(&frame(text), &route(false)).unwrap();
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
    room.members.get_mut(&1).unwrap().state.seal(&frame("after carol"), &route(true)).unwrap();
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
    bob.state.restart("bob", ROOM);
    bob.collect();
    assert!(bob.events.iter().any(|e| matches!(e, Event::Left { session: 1 })), "{:?}", bob.events);
    assert!(bob.state.peers().is_empty());
    assert_ne!(bob.state.key_id(), bob_key_before, "a new key after a reconnect");
    bob.events.clear();
    room.enter(5, bob);
    room.settle(200);

    for (from, to, text) in [(1, 5, "alice to new bob"), (5, 1, "new bob to alice")] {
        room.members.get_mut(&from).unwrap().state.seal(&frame(text), &route(true)).unwrap();
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
    room.members.get_mut(&1).unwrap().state.seal_to(&frame("for bob"), &route(false), 2).unwrap();
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
        let alice = room.member(1);
        alice.state.seal(&frame(&format!("frame {i}")), &route(false)).unwrap();
        let p = alice.state.poll_transmit().unwrap();
        sealed.push(PacketWrapper::parse_from_bytes(&room.stamp(1, p)).unwrap());
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
    bob.collect();
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

// ---------------------------------------------------------------------------------------------
// A hostile relay. Each attack is what the relay operator, or anyone who can publish on the
// room's bus, could do; each must be refused or raised, and honest frames must keep flowing.

/// Alice (1), Bob (2) and Carol (3), keys exchanged, events cleared.
fn honest_room() -> Room {
    let mut room = Room::default();
    room.join(1, "alice", 0);
    room.join(2, "bob", 1);
    room.join(3, "carol", 2);
    room.settle(0);
    for m in room.members.values_mut() {
        assert!(m.refusals().is_empty(), "{:?}", m.events);
        m.events.clear();
    }
    room
}

/// `from` seals `text` to the room; returns what each member opened from it.
fn say(room: &mut Room, now: u64, from: u64, text: &str) -> BTreeMap<u64, bool> {
    room.member(from).state.seal(&frame(text), &route(true)).unwrap();
    room.settle(now);
    let sessions: Vec<u64> = room.members.keys().copied().filter(|s| *s != from).collect();
    sessions.into_iter().map(|s| (s, opened(room.member(s)).contains(&(from, text.to_owned())))).collect()
}

fn everyone_opens(room: &mut Room, now: u64) {
    for from in room.members.keys().copied().collect::<Vec<_>>() {
        let got = say(room, now, from, &format!("honest from {from} at {now}"));
        assert!(got.values().all(|o| *o), "{from}'s frame at {now}: {got:?}");
    }
}

/// An identity announcement signed by `who`, as if from `session`.
fn announcement_by(who: &LocalIdentity, session: u64, to: u64, counter: u64) -> PacketWrapper {
    let envelope = Envelope { room: ROOM, sender_session: session, recipient_session: to, counter };
    let unsigned = packets::announcement(who.public(), "mallory", &envelope);
    let signature = who.sign(&unsigned.message);
    unsigned.finish(signature).unwrap()
}

/// A media key of the relay's, wrapped to `to`'s real identity and signed by `who`, as if from
/// `session`.
fn grant_by(who: &LocalIdentity, key: &SenderKey, session: u64, to: u64, to_key: usize, counter: u64) -> PacketWrapper {
    let recipient = videocall_client::crypto::PeerIdentity::new(identity(to_key).public().clone()).unwrap();
    let envelope = Envelope { room: ROOM, sender_session: session, recipient_session: to, counter };
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let unsigned = packets::key_grant(&mut rng, key, &recipient, &envelope).unwrap();
    let signature = who.sign(&unsigned.message);
    unsigned.finish(signature).unwrap()
}

#[test]
fn a_ghost_announcement_is_refused_and_gets_no_key() {
    let mut room = honest_room();
    let since = room.forwarded.len();
    // The relay announces its own identity as session 66, which presence never reported, to
    // the room and addressed to Bob.
    room.inject(10, 1, 66, announcement_by(mallory(), 66, 0, 1));
    room.inject(10, 2, 66, announcement_by(mallory(), 66, 2, 2));
    room.settle(10);
    assert_eq!(room.member(1).refusals(), vec![Refusal::UnknownSession]);
    assert_eq!(room.member(2).refusals(), vec![Refusal::UnknownSession]);
    assert_eq!(room.member(2).state.refused().get("unknown_session"), Some(&1), "counted");
    for member in room.members.values() {
        assert!(!member.state.peers().contains_key(&66));
    }
    // Nobody wrapped anything to it: nothing was addressed to session 66.
    let sent_to_ghost = room.forwarded[since..].iter().any(|(to, _)| *to == 66);
    assert!(!sent_to_ghost);
    everyone_opens(&mut room, 20);
}

#[test]
fn a_member_the_relay_invents_shows_up_as_a_person() {
    let mut room = honest_room();
    let code_before = room.member(1).state.safety_code();
    // The relay tells Bob alone that "mallory" (66) joined, and announces her identity.
    room.inject(10, 2, 0, joined(66, "mallory"));
    room.inject(10, 2, 66, announcement_by(mallory(), 66, 0, 1));
    room.settle(10);
    let bob = room.member(2);
    assert!(bob.events.iter().any(|e| matches!(e, Event::Joined { session: 66 })));
    let shown = bob.events.iter().find_map(|e| match e {
        Event::PeerKey { session: 66, fingerprint } => Some(*fingerprint),
        _ => None,
    });
    assert_eq!(shown, Some(mallory().fingerprint()), "she is in Bob's list, with her fingerprint");
    // The room's safety code on Bob's page no longer matches the others'.
    assert_ne!(room.member(2).state.safety_code(), code_before);
    assert_eq!(room.member(3).state.safety_code(), code_before);
}

#[test]
fn honest_rooms_agree_on_the_safety_code() {
    let mut room = honest_room();
    let codes: Vec<_> = room.members.values().map(|m| m.state.safety_code()).collect();
    assert!(codes.windows(2).all(|w| w[0] == w[1]), "{codes:?}");
    room.join(4, "dave", 3);
    room.settle(10);
    let after: Vec<_> = room.members.values().map(|m| m.state.safety_code()).collect();
    assert!(after.windows(2).all(|w| w[0] == w[1]), "{after:?}");
    assert_ne!(after[0], codes[0]);
}

#[test]
fn a_substituted_key_for_a_known_session_is_an_alarm_and_gets_nothing_until_accepted() {
    let mut room = honest_room();
    let code = room.member(2).state.safety_code();
    // The relay announces its identity to Bob as Alice (session 1), properly self-signed.
    room.inject(10, 2, 1, announcement_by(mallory(), 1, 2, 1_000));
    room.settle(10);
    let bob = room.member(2);
    let alarm = bob.events.iter().find_map(|e| match e {
        Event::KeyChanged { session: 1, fingerprint } => Some(*fingerprint),
        _ => None,
    });
    assert_eq!(alarm, Some(mallory().fingerprint()));
    let alice = &bob.state.peers()[&1];
    assert_eq!(alice.identity.as_ref().unwrap().fingerprint(), identity(0).fingerprint(), "the shown key stays");
    assert_eq!(bob.state.safety_code(), code, "the code follows what is shown");

    // Carol leaves: Bob moves to a fresh key and grants it to Alice's real identity only.
    let since = room.forwarded.len();
    room.leave(3, 20);
    room.settle(20);
    let grants: Vec<PacketWrapper> = room
        .forwarded_to(1, since)
        .into_iter()
        .filter(|p| p.session_id == 2 && p.packet_type.enum_value() == Ok(PacketType::AES_KEY))
        .collect();
    assert_eq!(grants.len(), 1);
    let aes = videocall_types::AesPacket::parse_from_bytes(&grants[0].data).unwrap();
    assert!(mallory().unwrap_key(&mut ChaCha20Rng::seed_from_u64(1), &aes.key).is_err(), "not wrapped to the relay");
    everyone_opens(&mut room, 30);

    // Once Bob accepts the change, the new identity is shown and the code moves.
    room.member(2).state.accept_key_change(40, 1).unwrap();
    room.settle(40);
    assert_ne!(room.member(2).state.safety_code(), room.member(1).state.safety_code());
}

#[test]
fn a_forged_key_grant_stamped_as_another_sender_is_refused() {
    let mut room = honest_room();
    // The relay wraps its own media key to Bob, stamps it as Alice's, and signs it with its own
    // identity (it cannot sign as Alice); then sends frames under it as Alice.
    let mut relay_key = SenderKey::generate(&mut ChaCha20Rng::seed_from_u64(5), 900);
    room.inject(10, 2, 1, grant_by(mallory(), &relay_key, 1, 2, 1, 5_000));
    // An unsigned grant fares no better.
    let mut unsigned = grant_by(mallory(), &relay_key, 1, 2, 1, 5_001);
    let mut aes = videocall_types::AesPacket::parse_from_bytes(&unsigned.data).unwrap();
    aes.signature.clear();
    unsigned.data = aes.write_to_bytes().unwrap();
    room.inject(10, 2, 1, unsigned);
    let forged =
        packets::seal_media(&mut relay_key, "alice", &frame("the relay speaking as alice"), &route(true)).unwrap();
    room.inject(10, 2, 1, forged);
    room.settle(10);
    let bob = room.member(2);
    assert_eq!(bob.refusals(), vec![Refusal::BadSignature, Refusal::BadSignature]);
    assert!(opened(bob).is_empty(), "nothing the relay sealed plays as Alice");
    assert!(!bob.events.iter().any(|e| matches!(e, Event::MediaKey { .. })));
    everyone_opens(&mut room, 20);
}

#[test]
fn a_replayed_key_grant_and_replayed_frames_are_refused() {
    let mut room = honest_room();
    let since = room.forwarded.len();
    room.member(1).state.seal(&frame("said once"), &route(true)).unwrap();
    room.settle(10);
    // What the relay kept: Alice's earlier grant to Bob, and her frame.
    let kept_grant = room
        .forwarded_to(2, 0)
        .into_iter()
        .find(|p| p.session_id == 1 && p.packet_type.enum_value() == Ok(PacketType::AES_KEY))
        .unwrap();
    let kept_frame = room.forwarded_to(2, since).into_iter().find(|p| p.session_id == 1).unwrap();
    assert_eq!(opened(room.member(2)), vec![(1, "said once".to_owned())]);

    // Carol leaves; everyone moves to fresh keys and time passes beyond the grace.
    room.leave(3, 100);
    room.settle(100);
    let now = 100 + videocall_client::tunables::ROTATION_GRACE_MS + 1;
    let bob_holds = room.member(2).state.peer_key_id(1);
    room.member(2).events.clear();
    room.inject(now, 2, 1, kept_grant.clone());
    room.inject(now, 2, 1, kept_frame.clone());
    room.settle(now);
    let bob = room.member(2);
    assert!(matches!(bob.refusals()[..], [Refusal::StaleCounter { .. }]), "{:?}", bob.events);
    assert_eq!(bob.state.peer_key_id(1), bob_holds, "the old key is not installed again");
    assert!(opened(bob).is_empty(), "the old frame does not play again");

    // With the counter forged higher the signature fails; re-signed it cannot be.
    let mut bumped = kept_grant;
    let mut aes = videocall_types::AesPacket::parse_from_bytes(&bumped.data).unwrap();
    aes.counter += 1_000;
    bumped.data = aes.write_to_bytes().unwrap();
    room.inject(now, 2, 1, bumped);
    assert_eq!(room.member(2).refusals().last(), Some(&Refusal::BadSignature));
    // And a replayed frame under the current key opens once only.
    room.member(1).state.seal(&frame("fresh"), &route(true)).unwrap();
    room.settle(now);
    let fresh = room.forwarded.last().map(|(_, b)| PacketWrapper::parse_from_bytes(b).unwrap()).unwrap();
    assert_eq!(opened(room.member(2)), vec![(1, "fresh".to_owned())]);
    room.inject(now, 2, 1, fresh);
    assert!(opened(room.member(2)).is_empty());
    everyone_opens(&mut room, now + 1);
}

#[test]
fn a_newcomer_cannot_open_what_was_sealed_before_it_joined() {
    let mut room = honest_room();
    let since = room.forwarded.len();
    room.member(1).state.seal(&frame("before dave"), &route(true)).unwrap();
    room.settle(10);
    let before: Vec<PacketWrapper> = room.forwarded_to(2, since);
    let alice_key = room.member(1).state.key_id();
    room.join(4, "dave", 3);
    room.settle(20);
    // Alice stepped her key for the join: Dave holds the new one, not the old.
    assert_eq!(room.member(1).state.key_id(), alice_key + 1);
    assert_eq!(room.member(4).state.peer_key_id(1), Some(alice_key + 1));
    // The relay hands Dave the frames sealed before he joined: none opens.
    for packet in before {
        room.inject(20, 4, 1, packet);
    }
    assert!(opened(room.member(4)).is_empty());
    // Members who were there follow the ratchet without a new grant.
    let grants_to_bob = room
        .forwarded_to(2, since)
        .into_iter()
        .filter(|p| p.packet_type.enum_value() == Ok(PacketType::AES_KEY) && p.session_id != 4)
        .count();
    assert_eq!(grants_to_bob, 0, "a join costs existing members no key packets");
    everyone_opens(&mut room, 30);
}

#[test]
fn a_departed_member_cannot_open_what_is_sealed_after_it_left() {
    let mut room = honest_room();
    let mut carol = room.leave(3, 10);
    room.settle(10);
    let since = room.forwarded.len();
    room.member(1).state.seal(&frame("after carol"), &route(true)).unwrap();
    room.settle(11);
    // Everything the relay forwarded to Bob since, handed to Carol (keys included): nothing
    // opens for her.
    for packet in room.forwarded_to(2, since) {
        carol.state.handle_packet(11, packet);
    }
    carol.work(11);
    carol.collect();
    assert!(opened(&mut carol).is_empty());
    assert_eq!(opened(room.member(2)), vec![(1, "after carol".to_owned())]);
}

/// In a browser, signing and unwrapping are asynchronous WebCrypto calls: packets wait behind
/// an unsigned key packet, and frames that arrive while their key is unwrapped are held, so
/// the first frames under a new key (the keyframe) are not lost.
#[test]
fn frames_wait_for_asynchronous_key_work_and_none_is_lost() {
    let mut room = Room::default();
    room.join(1, "alice", 0);
    room.settle(0);
    room.join(2, "bob", 1);
    room.member(1).defer_work = true;
    room.member(2).defer_work = true;
    // Nothing leaves while the announcement is unsigned.
    room.settle(0);
    assert!(room.forwarded.is_empty());
    // Step by step: sign, deliver, and let Alice send frames right after her grant.
    for step in 0..6 {
        room.member(2).work(step);
        room.settle(step);
        room.member(1).work(step);
        room.member(1).state.seal(&frame(&format!("frame {step}")), &route(step == 0)).unwrap();
        room.settle(step);
    }
    room.member(2).work(10);
    room.member(2).collect();
    let got: Vec<String> = opened(room.member(2)).into_iter().map(|(_, t)| t).collect();
    let sent: Vec<String> = (0..6).map(|i| format!("frame {i}")).collect();
    assert_eq!(got, sent, "every frame, in order, the first one held while its key was unwrapped");
    let bob = room.member(2);
    let lost = bob.events.iter().filter(|e| matches!(e, Event::Dropped { .. })).count();
    assert_eq!(lost, 0, "{:?}", bob.events);
}
