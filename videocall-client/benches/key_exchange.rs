//! What the key exchange costs as a room grows, natively, on the client core's simulated room
//! (the same one the tests use: real RSA, ECDSA, HKDF and AES-GCM, no network delay).
//!
//! For rooms of 2, 10 and 25 it prints, for a join and for a leave:
//! - the time from the presence event to every member holding the new keys, with members working
//!   in parallel (the sum over delivery rounds of the busiest member's time);
//! - the key work (signing, verifying, wrapping, unwrapping, packet handling) of the member who
//!   works hardest, and the mean over members;
//! - the key packets the relay carried.
//!
//! `cargo bench -p videocall-client --bench key_exchange`

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use sim::{Room, identity};
use videocall_types::PacketType;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Figures {
    critical_ms: f64,
    busiest_ms: f64,
    mean_ms: f64,
    key_packets: usize,
}

/// Runs `change` on a settled room and measures what settling it costs.
fn measure(room: &mut Room, now: u64, change: impl FnOnce(&mut Room)) -> Figures {
    for m in room.members.values_mut() {
        m.cpu = Duration::ZERO;
    }
    room.critical_path = Duration::ZERO;
    let since = room.forwarded.len();
    change(room);
    room.settle(now);
    let cpu: Vec<Duration> = room.members.values().map(|m| m.cpu).collect();
    let key_packets = room.forwarded[since..]
        .iter()
        .filter(|(_, bytes)| {
            let packet = <videocall_types::PacketWrapper as protobuf::Message>::parse_from_bytes(bytes).unwrap();
            matches!(packet.packet_type.enum_value(), Ok(PacketType::AES_KEY | PacketType::RSA_PUB_KEY))
        })
        .count();
    Figures {
        critical_ms: ms(room.critical_path),
        busiest_ms: ms(cpu.iter().copied().max().unwrap_or_default()),
        mean_ms: ms(cpu.iter().sum::<Duration>()) / cpu.len().max(1) as f64,
        key_packets,
    }
}

/// Milliseconds per call of `f`, over `repeat` calls.
fn per_call(repeat: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..repeat {
        f();
    }
    ms(started.elapsed()) / f64::from(repeat)
}

/// The single operations a key packet costs, and what blinding adds to RSA decryption.
fn operations() {
    use rand_core::OsRng;
    use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
    use videocall_client::crypto::{KeyMaterial, PeerIdentity};
    let (me, them) = (identity(0), identity(1));
    let me_seen = PeerIdentity::new(me.public().clone()).unwrap();
    let them_seen = PeerIdentity::new(them.public().clone()).unwrap();
    let material = KeyMaterial::generate(&mut OsRng);
    let wrapped = them_seen.wrap(&mut OsRng, &material).unwrap();
    let statement = [7u8; 200];
    let signature = me.sign(&statement);
    let sign = per_call(200, || drop(me.sign(&statement)));
    let verify = per_call(200, || assert!(me_seen.verifies(&statement, &signature)));
    let wrap = per_call(200, || drop(them_seen.wrap(&mut OsRng, &material).unwrap()));
    let unwrap = per_call(200, || {
        them.unwrap_key(&mut OsRng, &wrapped).unwrap();
    });
    // The same RSA-OAEP decryption unblinded, as before: what the blinding costs.
    let rsa = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let ciphertext = RsaPublicKey::from(&rsa).encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), &[1; 36]).unwrap();
    let unblinded = per_call(200, || drop(rsa.decrypt(Oaep::new::<sha2::Sha256>(), &ciphertext).unwrap()));
    println!(
        "one operation: sign {sign:.3} ms, verify {verify:.3} ms, wrap {wrap:.3} ms, unwrap {unwrap:.3} ms \
         (blinded; {unblinded:.3} ms unblinded)"
    );
}

fn main() {
    let largest = 25;
    let started = Instant::now();
    for n in 0..=largest {
        identity(n);
    }
    println!(
        "{} identities generated in {:.1} s (not part of any figure)",
        largest + 1,
        started.elapsed().as_secs_f64()
    );
    operations();
    println!();
    println!(
        "| room | event | to every member holding the new keys | busiest member's key work | mean key work | key packets |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for size in [2usize, 10, 25] {
        // In a room of 2, a leave leaves one person: there is nobody to give a key to.
        let mut room = Room::default();
        for n in 1..size {
            room.join(n as u64, &format!("user-{n}"), n);
            room.settle(0);
        }
        let join = measure(&mut room, 10, |room| room.join(size as u64, &format!("user-{size}"), size));
        let leave = measure(&mut room, 20, |room| {
            room.leave(1, 20);
        });
        let events = if size > 2 { vec![("join", join), ("leave", leave)] } else { vec![("join", join)] };
        for (event, f) in events {
            println!(
                "| {size} | {event} | {:.1} ms | {:.1} ms | {:.2} ms | {} |",
                f.critical_ms, f.busiest_ms, f.mean_ms, f.key_packets
            );
        }
    }
}
