//! The end-to-end encryption core, natively: key exchange, wrap and unwrap, tamper and replay
//! refused, nonces unique, rotation with its grace, fingerprints stable.

use std::collections::HashSet;
use std::sync::OnceLock;

use protobuf::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::crypto::{Fingerprint, IdentityKey, KeyError, KeyRing, OpenError, PeerKey, SenderKey};
use videocall_client::tunables::{REPLAY_WINDOW, ROTATION_GRACE_MS};
use videocall_types::EncryptedMedia;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// RSA-2048 generation takes a while even natively: three identities, made once.
fn identities() -> &'static [IdentityKey; 3] {
    static KEYS: OnceLock<[IdentityKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut r = rng(1);
        [(); 3].map(|()| IdentityKey::generate(&mut r).expect("key generation"))
    })
}

/// Alice's key, wrapped to `to`, unwrapped by it and installed in its ring.
fn deliver_key(sender: &SenderKey, to: &IdentityKey, ring: &mut KeyRing, session: u64, now: u64) {
    let peer = PeerKey::from_der(to.public_der()).unwrap();
    let wrapped = peer.wrap(&mut rng(9), sender.material()).unwrap();
    let material = to.unwrap_key(&wrapped).unwrap();
    assert_eq!(&material, sender.material());
    ring.install(session, sender.key_id(), material, now);
}

#[test]
fn a_wrapped_key_opens_only_for_its_recipient() {
    let [alice, bob, carol] = identities();
    let key = SenderKey::generate(&mut rng(2), 1);
    let wrapped = PeerKey::from_der(bob.public_der()).unwrap().wrap(&mut rng(3), key.material()).unwrap();
    assert_eq!(&bob.unwrap_key(&wrapped).unwrap(), key.material());
    assert!(matches!(carol.unwrap_key(&wrapped), Err(KeyError::Unwrap)));
    assert!(matches!(alice.unwrap_key(&wrapped), Err(KeyError::Unwrap)));
    let mut bent = wrapped.clone();
    bent[10] ^= 1;
    assert!(matches!(bob.unwrap_key(&bent), Err(KeyError::Unwrap)));
}

#[test]
fn frames_open_for_key_holders_and_tampering_is_refused() {
    let [_, bob, _] = identities();
    let mut key = SenderKey::generate(&mut rng(4), 7);
    let mut ring = KeyRing::default();
    deliver_key(&key, bob, &mut ring, 11, 0);

    let sealed = key.seal("alice@example.org", b"a video frame").unwrap();
    assert_ne!(sealed.ciphertext, b"a video frame");
    assert_eq!(ring.open(11, "alice@example.org", &sealed, 0).unwrap(), b"a video frame");

    // Every part of the frame and its context is bound.
    let mut bits = key.seal("alice@example.org", b"flip").unwrap();
    bits.ciphertext[0] ^= 0x80;
    let mut renumbered = key.seal("alice@example.org", b"next").unwrap();
    renumbered.sequence += 1;
    let other_user = key.seal("alice@example.org", b"mine").unwrap();
    for (what, frame, user) in [
        ("flipped bit", &bits, "alice@example.org"),
        ("changed sequence", &renumbered, "alice@example.org"),
        ("re-attributed", &other_user, "mallory@example.org"),
    ] {
        assert_eq!(ring.open(11, user, frame, 0), Err(OpenError::Tampered), "{what}");
    }
    // A forged frame does not use up its sequence: the real one still opens.
    let real = key.seal("alice@example.org", b"real").unwrap();
    let mut forged = real.clone();
    forged.ciphertext[3] ^= 1;
    assert_eq!(ring.open(11, "alice@example.org", &forged, 0), Err(OpenError::Tampered));
    assert_eq!(ring.open(11, "alice@example.org", &real, 0).unwrap(), b"real");
    // Unknown sender, unknown key id.
    assert!(matches!(ring.open(12, "alice@example.org", &real, 0), Err(OpenError::UnknownKey { .. })));
    let mut wrong_id = real.clone();
    wrong_id.key_id = 8;
    assert_eq!(ring.open(11, "alice@example.org", &wrong_id, 0), Err(OpenError::UnknownKey { key_id: 8 }));
}

#[test]
fn replays_are_refused_and_reordering_is_not() {
    let [_, bob, _] = identities();
    let mut key = SenderKey::generate(&mut rng(5), 1);
    let mut ring = KeyRing::default();
    deliver_key(&key, bob, &mut ring, 1, 0);
    let frames: Vec<EncryptedMedia> = (0..100).map(|i| key.seal("a", format!("{i}").as_bytes()).unwrap()).collect();
    // Out of order within the window: fine.
    for i in (0..100).rev() {
        assert_eq!(ring.open(1, "a", &frames[i], 0).unwrap(), format!("{i}").as_bytes());
    }
    for frame in &frames {
        assert_eq!(ring.open(1, "a", frame, 0), Err(OpenError::Replayed));
    }
    // Far behind the newest: refused even if never seen.
    let old = key.seal("a", b"old").unwrap();
    for _ in 0..REPLAY_WINDOW {
        key.seal("a", b"x").unwrap();
    }
    let newest = key.seal("a", b"newest").unwrap();
    ring.open(1, "a", &newest, 0).unwrap();
    assert_eq!(ring.open(1, "a", &old, 0), Err(OpenError::TooOld));
}

#[test]
fn nonces_never_repeat_under_a_key() {
    // The nonce is salt ‖ sequence: unique per key as long as sequences are. Check sequences
    // over many frames, and that two keys (even with the same id) do not share a salt.
    let mut key = SenderKey::generate(&mut rng(6), 1);
    let mut seen = HashSet::new();
    for _ in 0..100_000 {
        assert!(seen.insert(key.seal("a", b"").unwrap().sequence));
    }
    let salts: HashSet<[u8; 4]> =
        (0..1000u64).map(|s| SenderKey::generate(&mut rng(100 + s), 1).material().salt).collect();
    assert!(salts.len() > 990, "salts come from the RNG");
    // Identical plaintexts seal to different ciphertexts.
    let (a, b) = (key.seal("a", b"same").unwrap(), key.seal("a", b"same").unwrap());
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn rotation_locks_out_who_left_and_keeps_a_grace_for_frames_in_flight() {
    let [_, bob, carol] = identities();
    let mut old = SenderKey::generate(&mut rng(7), 1);
    let (mut bob_ring, mut carol_ring) = (KeyRing::default(), KeyRing::default());
    deliver_key(&old, bob, &mut bob_ring, 1, 0);
    deliver_key(&old, carol, &mut carol_ring, 1, 0);
    let before = old.seal("alice", b"before").unwrap();
    let in_flight = old.seal("alice", b"in flight").unwrap();
    assert_eq!(carol_ring.open(1, "alice", &before, 0).unwrap(), b"before");

    // Carol leaves at t = 1000; Alice rotates and wraps the new key to Bob only.
    let mut new = SenderKey::generate(&mut rng(8), 2);
    deliver_key(&new, bob, &mut bob_ring, 1, 1000);
    assert_eq!(bob_ring.current_key_id(1), Some(2));
    let after = new.seal("alice", b"after").unwrap();
    assert_eq!(bob_ring.open(1, "alice", &after, 1001).unwrap(), b"after");
    assert!(matches!(carol_ring.open(1, "alice", &after, 1001), Err(OpenError::UnknownKey { key_id: 2 })));

    // The old key still opens frames in flight, within the grace only.
    assert_eq!(bob_ring.open(1, "alice", &in_flight, 1000 + ROTATION_GRACE_MS).unwrap(), b"in flight");
    let late = old.seal("alice", b"late").unwrap();
    assert!(matches!(bob_ring.open(1, "alice", &late, 1001 + ROTATION_GRACE_MS), Err(OpenError::UnknownKey { .. })));

    // The same key delivered twice (a reconnect) is not a rotation.
    deliver_key(&new, bob, &mut bob_ring, 1, 5000);
    assert_eq!(bob_ring.open(1, "alice", &new.seal("alice", b"again").unwrap(), 5000).unwrap(), b"again");
    bob_ring.forget(1);
    assert_eq!(bob_ring.current_key_id(1), None);
}

#[test]
fn fingerprints_are_stable_and_distinct() {
    let [alice, bob, _] = identities();
    let from_peer = PeerKey::from_der(alice.public_der()).unwrap().fingerprint();
    assert_eq!(alice.fingerprint(), from_peer);
    assert_eq!(alice.fingerprint(), Fingerprint::of_public_der(alice.public_der()));
    assert_ne!(alice.fingerprint(), bob.fingerprint());
    let shown = alice.fingerprint().to_string();
    assert_eq!(shown.len(), 16 * 4 + 15, "{shown}");
    assert!(shown.split(' ').all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit())));
    // A key imported from PKCS#8 (as WebCrypto exports it) has one fingerprint however often
    // it is imported.
    use rsa::pkcs8::EncodePrivateKey;
    let private = rsa::RsaPrivateKey::new(&mut rng(10), 2048).unwrap();
    let der = private.to_pkcs8_der().unwrap();
    let a = IdentityKey::from_pkcs8_der(der.as_bytes()).unwrap();
    let b = IdentityKey::from_pkcs8_der(der.as_bytes()).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
}

#[test]
fn small_or_malformed_peer_keys_are_refused() {
    use rsa::pkcs8::EncodePublicKey;
    let small = rsa::RsaPrivateKey::new(&mut rng(11), 1024).unwrap();
    let der = rsa::RsaPublicKey::from(&small).to_public_key_der().unwrap();
    assert!(matches!(PeerKey::from_der(der.as_bytes()), Err(KeyError::TooSmall { bits: 1024 })));
    assert!(matches!(PeerKey::from_der(b"not a key"), Err(KeyError::Invalid(_))));
    // A sealed frame survives the protobuf round trip.
    let mut key = SenderKey::generate(&mut rng(12), 3);
    let sealed = key.seal("a", b"payload").unwrap();
    let parsed = EncryptedMedia::parse_from_bytes(&sealed.write_to_bytes().unwrap()).unwrap();
    assert_eq!(parsed, sealed);
}

#[test]
fn a_key_exchange_through_packets_as_a_relay_would_carry_them() {
    use videocall_client::packets;
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
    // Bob announces his key; Alice wraps hers to him, addressed to his session.
    let bob_pub = relay(&packets::public_key(bob, "bob", 0).unwrap(), "bob", 2);
    let bob_key = packets::read_public_key(&bob_pub).unwrap();
    assert_eq!(bob_key.fingerprint(), bob.fingerprint());
    let mut alice_media = SenderKey::generate(&mut r, 1);
    let wrapped = packets::wrapped_key(&mut r, &alice_media, &bob_key, 2).unwrap();
    assert_eq!(wrapped.to_session_id, 2);
    let (key_id, material) = packets::read_wrapped_key(bob, &relay(&wrapped, "alice", 1)).unwrap();
    assert!(packets::read_wrapped_key(alice, &relay(&wrapped, "alice", 1)).is_err(), "only Bob opens it");
    let mut ring = KeyRing::default();
    ring.install(1, key_id, material, 0);

    let mut frame = MediaPacket::new();
    frame.media_type = MediaType::VIDEO.into();
    frame.data = b"MARKER-IN-THE-PICTURE".to_vec();
    frame.frame_type = "key".into();
    let sealed = packets::seal_media(&mut alice_media, "alice", &frame, true).unwrap();
    assert!(sealed.keyframe);
    let on_the_wire = sealed.write_to_bytes().unwrap();
    assert!(!on_the_wire.windows(6).any(|w| w == b"MARKER"), "the relay sees only ciphertext");
    let opened = packets::open_media(&mut ring, &relay(&sealed, "alice", 1), 0).unwrap();
    assert_eq!(opened, frame);
    // The same bytes stamped as someone else do not open.
    assert!(packets::open_media(&mut ring, &relay(&sealed, "mallory", 1), 0).is_err());
}
