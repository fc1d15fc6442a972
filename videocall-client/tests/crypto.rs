//! The end-to-end encryption core, natively: key exchange, wrap and unwrap, signatures, tamper
//! and replay refused, nonces unique, rotation with its grace and the join ratchet, fingerprints
//! and the room safety code.

use std::collections::HashSet;
use std::sync::OnceLock;

use protobuf::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::crypto::{
    KeyError, KeyRing, LocalIdentity, OpenError, PeerIdentity, SafetyCode, SenderKey, StaleKey,
};
use videocall_client::tunables::{REPLAY_WINDOW, ROTATION_GRACE_MS};
use videocall_types::{EncryptedMedia, MediaStream, Route};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// RSA-2048 generation takes a while even natively: three identities, made once.
fn identities() -> &'static [LocalIdentity; 3] {
    static KEYS: OnceLock<[LocalIdentity; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut r = rng(1);
        [(); 3].map(|()| LocalIdentity::generate(&mut r).expect("key generation"))
    })
}

fn peer(identity: &LocalIdentity) -> PeerIdentity {
    PeerIdentity::new(identity.public().clone()).unwrap()
}

/// Alice's key, wrapped to `to`, unwrapped by it and installed in its ring.
fn deliver_key(sender: &SenderKey, to: &LocalIdentity, ring: &mut KeyRing, session: u64, now: u64) {
    let wrapped = peer(to).wrap(&mut rng(9), sender.material()).unwrap();
    let material = to.unwrap_key(&mut rng(10), &wrapped).unwrap();
    assert_eq!(&material, sender.material());
    ring.install(session, sender.key_id(), material, now).unwrap();
}

#[test]
fn a_wrapped_key_opens_only_for_its_recipient() {
    let [alice, bob, carol] = identities();
    let key = SenderKey::generate(&mut rng(2), 1);
    let wrapped = peer(bob).wrap(&mut rng(3), key.material()).unwrap();
    let r = &mut rng(4);
    assert_eq!(&bob.unwrap_key(r, &wrapped).unwrap(), key.material());
    assert!(matches!(carol.unwrap_key(r, &wrapped), Err(KeyError::Unwrap)));
    assert!(matches!(alice.unwrap_key(r, &wrapped), Err(KeyError::Unwrap)));
    let mut bent = wrapped.clone();
    bent[10] ^= 1;
    assert!(matches!(bob.unwrap_key(r, &bent), Err(KeyError::Unwrap)));
}

#[test]
fn frames_open_for_key_holders_and_tampering_is_refused() {
    let [_, bob, _] = identities();
    let mut key = SenderKey::generate(&mut rng(4), 7);
    let mut ring = KeyRing::default();
    deliver_key(&key, bob, &mut ring, 11, 0);

    let sealed = key.seal("alice@example.org", &Route::default(), b"a video frame").unwrap();
    assert_ne!(sealed.ciphertext, &b"a video frame"[..]);
    assert_eq!(
        ring.open(11, "alice@example.org", &Route::default(), sealed.clone(), 0).unwrap(),
        &b"a video frame"[..]
    );

    // Every part of the frame and its context is bound.
    let mut bits = key.seal("alice@example.org", &Route::default(), b"flip").unwrap();
    bits.ciphertext = flip(&bits.ciphertext, 0, 0x80);
    let mut renumbered = key.seal("alice@example.org", &Route::default(), b"next").unwrap();
    renumbered.sequence += 1;
    let other_user = key.seal("alice@example.org", &Route::default(), b"mine").unwrap();
    for (what, frame, user) in [
        ("flipped bit", &bits, "alice@example.org"),
        ("changed sequence", &renumbered, "alice@example.org"),
        ("re-attributed", &other_user, "mallory@example.org"),
    ] {
        assert_eq!(ring.open(11, user, &Route::default(), frame.clone(), 0), Err(OpenError::Tampered), "{what}");
    }
    // A forged frame does not use up its sequence: the real one still opens.
    let real = key.seal("alice@example.org", &Route::default(), b"real").unwrap();
    let mut forged = real.clone();
    forged.ciphertext = flip(&forged.ciphertext, 3, 1);
    assert_eq!(ring.open(11, "alice@example.org", &Route::default(), forged.clone(), 0), Err(OpenError::Tampered));
    assert_eq!(ring.open(11, "alice@example.org", &Route::default(), real.clone(), 0).unwrap(), &b"real"[..]);
    // Unknown sender, unknown key id.
    assert!(matches!(
        ring.open(12, "alice@example.org", &Route::default(), real.clone(), 0),
        Err(OpenError::UnknownKey { .. })
    ));
    let mut wrong_id = real.clone();
    wrong_id.key_id = 8;
    assert_eq!(
        ring.open(11, "alice@example.org", &Route::default(), wrong_id.clone(), 0),
        Err(OpenError::UnknownKey { key_id: 8 })
    );
}

/// The routing header the relay reads is bound to the frame: a relay that relabels a layer, a
/// stream, the keyframe flag or the frame counter makes the frame fail to open.
#[test]
fn a_relabelled_routing_header_does_not_open() {
    let [_, bob, _] = identities();
    let mut key = SenderKey::generate(&mut rng(6), 1);
    let mut ring = KeyRing::default();
    deliver_key(&key, bob, &mut ring, 1, 0);
    let route = Route::video(MediaStream::STREAM_CAMERA, 0, 3, true, 17);
    let relabelled = [
        Route { layer: 2, ..route },
        Route { layers: 1, ..route },
        Route { stream: MediaStream::STREAM_SCREEN.into(), ..route },
        Route { keyframe: false, ..route },
        Route { frame: 18, ..route },
        Route::default(),
    ];
    for other in relabelled {
        let sealed = key.seal("alice", &route, b"small layer").unwrap();
        assert_eq!(ring.open(1, "alice", &other, sealed.clone(), 0), Err(OpenError::Tampered), "{other:?}");
        // Refused without using up the sequence: the frame as sent still opens.
        assert_eq!(ring.open(1, "alice", &route, sealed, 0).unwrap(), &b"small layer"[..]);
    }
}

#[test]
fn replays_are_refused_and_reordering_is_not() {
    let [_, bob, _] = identities();
    let mut key = SenderKey::generate(&mut rng(5), 1);
    let mut ring = KeyRing::default();
    deliver_key(&key, bob, &mut ring, 1, 0);
    let frames: Vec<EncryptedMedia> =
        (0..100).map(|i| key.seal("a", &Route::default(), format!("{i}").as_bytes()).unwrap()).collect();
    // Out of order within the window: fine.
    for i in (0..100).rev() {
        assert_eq!(ring.open(1, "a", &Route::default(), frames[i].clone(), 0).unwrap(), format!("{i}").as_bytes());
    }
    for frame in &frames {
        assert_eq!(ring.open(1, "a", &Route::default(), frame.clone(), 0), Err(OpenError::Replayed));
    }
    // Far behind the newest: refused even if never seen.
    let old = key.seal("a", &Route::default(), b"old").unwrap();
    for _ in 0..REPLAY_WINDOW {
        key.seal("a", &Route::default(), b"x").unwrap();
    }
    let newest = key.seal("a", &Route::default(), b"newest").unwrap();
    ring.open(1, "a", &Route::default(), newest.clone(), 0).unwrap();
    assert_eq!(ring.open(1, "a", &Route::default(), old.clone(), 0), Err(OpenError::TooOld));
}

#[test]
fn nonces_never_repeat_under_a_key() {
    // The nonce is salt ‖ sequence: unique per key as long as sequences are. Check sequences
    // over many frames, and that two keys (even with the same id) do not share a salt.
    let mut key = SenderKey::generate(&mut rng(6), 1);
    let mut seen = HashSet::new();
    for _ in 0..100_000 {
        assert!(seen.insert(key.seal("a", &Route::default(), b"").unwrap().sequence));
    }
    let salts: HashSet<[u8; 4]> =
        (0..1000u64).map(|s| SenderKey::generate(&mut rng(100 + s), 1).material().salt).collect();
    assert!(salts.len() > 990, "salts come from the RNG");
    // Identical plaintexts seal to different ciphertexts.
    let (a, b) =
        (key.seal("a", &Route::default(), b"same").unwrap(), key.seal("a", &Route::default(), b"same").unwrap());
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn rotation_locks_out_who_left_and_keeps_a_grace_for_frames_in_flight() {
    let [_, bob, carol] = identities();
    let mut old = SenderKey::generate(&mut rng(7), 1);
    let (mut bob_ring, mut carol_ring) = (KeyRing::default(), KeyRing::default());
    deliver_key(&old, bob, &mut bob_ring, 1, 0);
    deliver_key(&old, carol, &mut carol_ring, 1, 0);
    let before = old.seal("alice", &Route::default(), b"before").unwrap();
    let in_flight = old.seal("alice", &Route::default(), b"in flight").unwrap();
    assert_eq!(carol_ring.open(1, "alice", &Route::default(), before.clone(), 0).unwrap(), &b"before"[..]);

    // Carol leaves at t = 1000; Alice rotates and wraps the new key to Bob only.
    let mut new = SenderKey::generate(&mut rng(8), 2);
    deliver_key(&new, bob, &mut bob_ring, 1, 1000);
    assert_eq!(bob_ring.current_key_id(1), Some(2));
    let after = new.seal("alice", &Route::default(), b"after").unwrap();
    assert_eq!(bob_ring.open(1, "alice", &Route::default(), after.clone(), 1001).unwrap(), &b"after"[..]);
    assert!(matches!(
        carol_ring.open(1, "alice", &Route::default(), after.clone(), 1001),
        Err(OpenError::UnknownKey { key_id: 2 })
    ));

    // The old key still opens frames in flight, within the grace only.
    assert_eq!(
        bob_ring.open(1, "alice", &Route::default(), in_flight.clone(), 1000 + ROTATION_GRACE_MS).unwrap(),
        &b"in flight"[..]
    );
    let late = old.seal("alice", &Route::default(), b"late").unwrap();
    assert!(matches!(
        bob_ring.open(1, "alice", &Route::default(), late.clone(), 1001 + ROTATION_GRACE_MS),
        Err(OpenError::UnknownKey { .. })
    ));

    // A key id already held (a replayed grant, or the same key again) is never installed
    // again, not even after the sender is forgotten and reported back.
    let again = bob_ring.install(1, 2, new.material().clone(), 5000);
    assert_eq!(again, Err(StaleKey { key_id: 2, newest: 2 }));
    assert_eq!(bob_ring.install(1, 1, old.material().clone(), 5000), Err(StaleKey { key_id: 1, newest: 2 }));
    assert_eq!(
        bob_ring
            .open(1, "alice", &Route::default(), new.seal("alice", &Route::default(), b"again").unwrap(), 5000)
            .unwrap(),
        &b"again"[..]
    );
    bob_ring.forget(1);
    assert_eq!(bob_ring.current_key_id(1), None);
    assert!(bob_ring.install(1, 2, new.material().clone(), 6000).is_err());
}

/// A join moves the sender one step along its ratchet: holders of the old key follow as the
/// frames arrive; a newcomer given the new key cannot step back.
#[test]
fn the_join_ratchet_is_followed_forward_and_never_back() {
    let [_, bob, newcomer] = identities();
    let mut k1 = SenderKey::generate(&mut rng(20), 1);
    let mut bob_ring = KeyRing::default();
    deliver_key(&k1, bob, &mut bob_ring, 1, 0);
    let before = k1.seal("alice", &Route::default(), b"before the join").unwrap();

    let mut k2 = k1.ratchet();
    assert_eq!(k2.key_id(), 2);
    assert_ne!(k2.material(), k1.material());
    let mut new_ring = KeyRing::default();
    deliver_key(&k2, newcomer, &mut new_ring, 1, 100);
    let after = k2.seal("alice", &Route::default(), b"after the join").unwrap();

    // Bob steps forward on the first frame under key 2; the old key keeps its grace.
    assert_eq!(bob_ring.open(1, "alice", &Route::default(), after.clone(), 100).unwrap(), &b"after the join"[..]);
    assert_eq!(bob_ring.current_key_id(1), Some(2));
    let late = k1.seal("alice", &Route::default(), b"in flight").unwrap();
    assert_eq!(bob_ring.open(1, "alice", &Route::default(), late.clone(), 101).unwrap(), &b"in flight"[..]);
    // The newcomer opens what follows, not what came before.
    assert!(matches!(
        new_ring.open(1, "alice", &Route::default(), before.clone(), 100),
        Err(OpenError::UnknownKey { key_id: 1 })
    ));
    assert_eq!(
        new_ring
            .open(1, "alice", &Route::default(), k2.seal("alice", &Route::default(), b"next").unwrap(), 100)
            .unwrap(),
        &b"next"[..]
    );

    // Several joins in a row: followed in one go, within the limit.
    let mut k5 = k2.ratchet().ratchet().ratchet();
    assert_eq!(
        bob_ring
            .open(1, "alice", &Route::default(), k5.seal("alice", &Route::default(), b"five").unwrap(), 200)
            .unwrap(),
        &b"five"[..]
    );
    // A frame claiming a key further ahead than the ratchet reaches, or forged under the next
    // one, moves nothing.
    let mut far = k5.seal("alice", &Route::default(), b"far").unwrap();
    far.key_id = 5 + videocall_client::tunables::MAX_RATCHET_STEPS + 1;
    assert!(matches!(
        bob_ring.open(1, "alice", &Route::default(), far.clone(), 200),
        Err(OpenError::UnknownKey { .. })
    ));
    let mut forged = k5.ratchet().seal("alice", &Route::default(), b"forged").unwrap();
    forged.ciphertext = flip(&forged.ciphertext, 0, 1);
    assert!(matches!(
        bob_ring.open(1, "alice", &Route::default(), forged.clone(), 200),
        Err(OpenError::UnknownKey { .. })
    ));
    assert_eq!(bob_ring.current_key_id(1), Some(5));
}

#[test]
fn fingerprints_are_stable_and_distinct() {
    let [alice, bob, _] = identities();
    assert_eq!(alice.fingerprint(), peer(alice).fingerprint());
    assert_ne!(alice.fingerprint(), bob.fingerprint());
    let shown = alice.fingerprint().to_string();
    assert_eq!(shown.len(), 16 * 4 + 15, "{shown}");
    assert!(shown.split(' ').all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit())));
    // The fingerprint covers both keys: the same RSA key with another signing key differs.
    use rsa::pkcs8::EncodePrivateKey;
    let private = rsa::RsaPrivateKey::new(&mut rng(10), 2048).unwrap();
    let der = private.to_pkcs8_der().unwrap();
    let a = LocalIdentity::from_parts(der.as_bytes(), &[7; 32]).unwrap();
    let b = LocalIdentity::from_parts(der.as_bytes(), &[7; 32]).unwrap();
    let c = LocalIdentity::from_parts(der.as_bytes(), &[8; 32]).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), c.fingerprint());
}

#[test]
fn signatures_verify_only_for_their_identity_and_message() {
    let [alice, bob, _] = identities();
    let signature = alice.sign(b"statement");
    assert_eq!(signature.len(), 64, "r || s, as WebCrypto signs");
    assert!(peer(alice).verifies(b"statement", &signature));
    assert!(!peer(alice).verifies(b"statemenT", &signature));
    assert!(!peer(bob).verifies(b"statement", &signature));
    assert!(!peer(alice).verifies(b"statement", &signature[..63]));
    let mut bent = signature.clone();
    bent[5] ^= 1;
    assert!(!peer(alice).verifies(b"statement", &bent));
}

#[test]
fn the_room_safety_code_is_one_per_set_of_people_and_keys() {
    let [alice, bob, carol] = identities();
    let room = [("alice", alice.fingerprint()), ("bob", bob.fingerprint()), ("carol", carol.fingerprint())];
    let code = SafetyCode::of(room);
    // The same set in any order, as every participant sees it.
    assert_eq!(SafetyCode::of([room[2], room[0], room[1]]), code);
    // One substituted key, one missing person, one renamed: another code.
    assert_ne!(SafetyCode::of([room[0], room[1], ("carol", alice.fingerprint())]), code);
    assert_ne!(SafetyCode::of([room[0], room[1]]), code);
    assert_ne!(SafetyCode::of([room[0], room[1], ("mallory", carol.fingerprint())]), code);
    let shown = code.to_string();
    assert_eq!(shown.len(), 4 * 5 + 3, "{shown}");
    assert!(shown.split(' ').all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit())));
}

#[test]
fn small_or_malformed_peer_keys_are_refused() {
    use rsa::pkcs8::EncodePublicKey;
    let small = rsa::RsaPrivateKey::new(&mut rng(11), 1024).unwrap();
    let der = rsa::RsaPublicKey::from(&small).to_public_key_der().unwrap();
    let signing_key = identities()[0].public().signing_key.clone();
    let with = |encryption_der: &[u8], signing_key: &[u8]| {
        PeerIdentity::new(videocall_client::crypto::IdentityPublic {
            encryption_der: encryption_der.to_vec(),
            signing_key: signing_key.to_vec(),
        })
    };
    assert!(matches!(with(der.as_bytes(), &signing_key), Err(KeyError::TooSmall { bits: 1024 })));
    assert!(matches!(with(b"not a key", &signing_key), Err(KeyError::Invalid(_))));
    let good_der = &identities()[0].public().encryption_der;
    assert!(matches!(with(good_der, &[4; 65]), Err(KeyError::InvalidSigningKey)));
    assert!(with(good_der, &signing_key).is_ok());
    // A sealed frame survives the protobuf round trip.
    let mut key = SenderKey::generate(&mut rng(12), 3);
    let sealed = key.seal("a", &Route::default(), b"payload").unwrap();
    let parsed = EncryptedMedia::parse_from_bytes(&sealed.write_to_bytes().unwrap()).unwrap();
    assert_eq!(parsed, sealed);
}

#[test]
fn a_key_exchange_through_packets_as_a_relay_would_carry_them() {
    use videocall_client::crypto::statement::Envelope;
    use videocall_client::packets::{self, PacketError, Refusal};
    use videocall_types::{MediaPacket, MediaType, PacketWrapper};
    let [alice, bob, _] = identities();
    let mut r = rng(13);
    // What the relay does to every packet: stamp the sender's identity, and carry the bytes.
    let relay = |p: &PacketWrapper, user: &str, session: u64| {
        let mut p = PacketWrapper::parse_from_bytes(&p.write_to_bytes().unwrap()).unwrap();
        p.email = user.into();
        p.session_id = session;
        p
    };
    let sign = |who: &LocalIdentity, unsigned: packets::Unsigned| {
        let signature = who.sign(&unsigned.message);
        unsigned.finish(signature).unwrap()
    };
    // Bob (session 2) announces his identity to room "r"; Alice (session 1) reads it.
    let envelope = Envelope { room: "r", sender_session: 2, recipient_session: 0, counter: 1 };
    let announced = sign(bob, packets::announcement(bob.public(), "bob", &envelope));
    let (bob_seen, counter) = packets::read_announcement(&relay(&announced, "bob", 2), "r", 1).unwrap();
    assert_eq!((bob_seen.fingerprint(), counter), (bob.fingerprint(), 1));
    // Restamped as another session, or carried to another room: refused.
    for (room, session) in [("r", 3), ("other room", 2)] {
        let e = packets::read_announcement(&relay(&announced, "bob", session), room, 1).unwrap_err();
        assert!(matches!(e, PacketError::Refused(Refusal::BadSignature)), "{room} {session}: {e}");
    }

    // Alice grants her key to Bob, addressed to his session and signed.
    let mut alice_media = SenderKey::generate(&mut r, 1);
    let envelope = Envelope { room: "r", sender_session: 1, recipient_session: 2, counter: 7 };
    let granted = sign(alice, packets::key_grant(&mut r, &alice_media, &bob_seen, &envelope).unwrap());
    assert_eq!(granted.to_session_id, 2);
    let at_bob = relay(&granted, "alice", 1);
    let grant = packets::read_key_grant(&at_bob, "r", 2, &bob.fingerprint(), &peer(alice)).unwrap();
    assert_eq!((grant.key_id, grant.counter), (1, 7));
    // Stamped as someone else, or checked against the wrong identity: refused.
    let as_carol = relay(&granted, "carol", 3);
    assert!(packets::read_key_grant(&as_carol, "r", 2, &bob.fingerprint(), &peer(alice)).is_err());
    assert!(packets::read_key_grant(&at_bob, "r", 2, &bob.fingerprint(), &peer(bob)).is_err());
    let material = bob.unwrap_key(&mut r, &grant.wrapped).unwrap();
    assert!(alice.unwrap_key(&mut r, &grant.wrapped).is_err(), "only Bob opens it");
    let mut ring = KeyRing::default();
    ring.install(1, grant.key_id, material, 0).unwrap();

    let mut frame = MediaPacket::new();
    frame.media_type = MediaType::VIDEO.into();
    frame.data = b"MARKER-IN-THE-PICTURE".to_vec().into();
    frame.frame_type = "key".into();
    let sealed =
        packets::seal_media(&mut alice_media, "alice", &frame, &Route { keyframe: true, ..Route::default() }).unwrap();
    assert!(sealed.keyframe);
    let on_the_wire = sealed.write_to_bytes().unwrap();
    assert!(!on_the_wire.windows(6).any(|w| w == b"MARKER"), "the relay sees only ciphertext");
    // As a receiver has it: parsed from the wire. The frame is opened where it arrived, not
    // copied: the picture's bytes lie inside the received payload's own buffer.
    let received = PacketWrapper::parse_from_bytes(&relay(&sealed, "alice", 1).write_to_bytes().unwrap()).unwrap();
    let arrived = received.data.as_ptr_range();
    let opened = packets::open_media(&mut ring, received, 0).unwrap();
    assert_eq!(opened, frame);
    assert!(arrived.contains(&opened.data.as_ptr()), "opened in place");
    // The same bytes stamped as someone else do not open.
    assert!(packets::open_media(&mut ring, relay(&sealed, "mallory", 1), 0).is_err());
}

/// `bytes` with `mask` xored into byte `at`: a bit flipped in transit.
fn flip(bytes: &[u8], at: usize, mask: u8) -> bytes::Bytes {
    let mut flipped = bytes.to_vec();
    flipped[at] ^= mask;
    flipped.into()
}
