//! End-to-end encryption as the relay and a hostile participant see it: what the relay
//! forwards is ciphertext only; tampered or replayed frames are dropped and counted while the
//! call goes on; and a hostile relay (anyone holding the relays' bus key, publishing on the
//! room's NATS subjects as a relay would) can neither slip a ghost key in nor substitute one
//! without the page raising it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::web_client::{Participant, click, start_with_client, start_with_client_and, type_into, wait};
use common::*;
use futures_util::{SinkExt, StreamExt};
use protobuf::Message as _;
use rand_core::OsRng;
use tokio_tungstenite::tungstenite::Message;
use videocall_client::crypto::LocalIdentity;
use videocall_client::crypto::statement::Envelope;
use videocall_client::packets;
use videocall_client::peers::PeerState;
use videocall_types::{EncryptedMedia, MediaPacket, MediaType, PacketType, PacketWrapper, Route};

/// Byte patterns that only plaintext media would hold: a `MediaPacket`'s `frame_type` and a
/// `VideoMetadata` codec (`codec`, the one the sender chose) as protobuf encodes them.
fn plaintext_signs(codec: &str) -> Vec<Vec<u8>> {
    let mut codec_field = vec![0x12, codec.len() as u8];
    codec_field.extend_from_slice(codec.as_bytes());
    vec![b"\x22\x05delta".to_vec(), b"\x22\x03key".to_vec(), codec_field]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_forwards_only_ciphertext() {
    let server = start_with_client().await;
    let ada = Participant::join(&server.http, "sealed", "Ada", "auto").await;
    let bob = Participant::join(&server.http, "sealed", "Bob", "websocket").await;

    // A plain WebSocket member of the room: it receives what the relay forwards to everyone.
    let observer = Client::join(&server.http, &guest(&server.http, "sealed", "Eve").await).await;
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let sink = seen.clone();
    let mut ws = observer.ws;
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Binary(bytes) = message {
                sink.lock().unwrap().push(bytes.to_vec());
            }
        }
    });

    bob.wait_for_peers(2, Duration::from_secs(20), |p| {
        p["name"] == "Eve" || p["frames_decoded"].as_u64().unwrap_or(0) >= 30
    })
    .await;
    let marker = "MARKER-the-relay-must-never-see-this-7f3a9c";
    type_into(&ada.browser, "#chat-input", marker).await;
    click(&ada.browser, "#chat-send").await;
    wait(&bob.browser, &format!("return document.querySelector('#chat-lines').textContent.includes({marker:?})"), 10)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    reader.abort();

    let codec = ada.stats().await["codec"].as_str().unwrap().to_owned();
    assert!(!codec.is_empty());
    let signs = plaintext_signs(&codec);
    let seen = seen.lock().unwrap();
    let mut media = 0;
    for bytes in seen.iter() {
        assert!(!contains(bytes, marker.as_bytes()), "the chat marker crossed the relay in clear");
        let packet = PacketWrapper::parse_from_bytes(bytes).unwrap();
        if packet.packet_type.enum_value() == Ok(PacketType::MEDIA) {
            media += 1;
            let sealed = EncryptedMedia::parse_from_bytes(&packet.data).expect("media is sealed");
            assert!(sealed.key_id > 0 && sealed.ciphertext.len() > 16);
            for sign in &signs {
                assert!(!contains(&packet.data, sign), "plaintext media pattern {sign:?} in a forwarded packet");
            }
        }
    }
    assert!(media > 100, "the observer saw {media} media packets");
    println!("{media} media packets forwarded, all sealed");
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}

/// A participant that speaks the protocol natively: a real key exchange, then whatever it likes.
struct Mallory {
    identity: LocalIdentity,
    state: PeerState<OsRng>,
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Mallory {
    async fn join(http: &str, room: &str) -> Self {
        let g = guest(http, room, "Mallory").await;
        // Raw: the member list that names her session is the state machine's to read.
        let path = format!("/lobby/{}/{}?token={}", g.user, g.room, g.token);
        let client = Client::connect_raw(http, &path).await.expect("joins");
        let identity = LocalIdentity::generate(&mut OsRng).unwrap();
        let mut state = PeerState::new(OsRng, identity.public().clone());
        state.restart(&g.user, &g.room);
        Self { identity, state, ws: client.ws }
    }

    async fn flush(&mut self) {
        while let Some(p) = self.state.poll_transmit() {
            self.ws.send(Message::Binary(p.write_to_bytes().unwrap().into())).await.unwrap();
        }
    }

    /// Handles what arrives for `for_how_long`, answering key exchanges.
    async fn pump(&mut self, for_how_long: Duration) {
        let deadline = tokio::time::Instant::now() + for_how_long;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Binary(bytes) = message {
                let packet = PacketWrapper::parse_from_bytes(&bytes).unwrap();
                self.state.handle_packet(0, packet);
                self.state.work_locally(&self.identity, 0);
                self.flush().await;
            }
        }
        while self.state.poll_event().is_some() {}
    }

    /// A sealed chat message, as the packet that would carry it.
    fn sealed_chat(&mut self, text: &str) -> PacketWrapper {
        let mut media = MediaPacket::new();
        media.media_type = MediaType::CHAT.into();
        media.data = text.as_bytes().to_vec().into();
        self.state.seal(&media, &Route::default()).unwrap();
        std::iter::from_fn(|| self.state.poll_transmit()).last().unwrap()
    }

    async fn send(&mut self, packet: &PacketWrapper) {
        self.ws.send(Message::Binary(packet.write_to_bytes().unwrap().into())).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_replayed_frames_are_dropped_and_counted() {
    let server = start_with_client().await;
    let ada = Participant::join(&server.http, "hostile", "Ada", "auto").await;
    let bob = Participant::join(&server.http, "hostile", "Bob", "auto").await;
    let mut mallory = Mallory::join(&server.http, "hostile").await;
    mallory.flush().await;
    mallory.pump(Duration::from_secs(3)).await;
    assert!(mallory.state.peers().values().filter(|p| p.identity.is_some()).count() == 2, "Mallory met both");

    // One honest message: delivered and shown.
    let honest = mallory.sealed_chat("hello from mallory");
    mallory.send(&honest).await;
    // Replays of it, and copies with one ciphertext bit flipped.
    for _ in 0..5 {
        mallory.send(&honest).await;
    }
    for i in 0..5 {
        let mut tampered = honest.clone();
        let mut sealed = EncryptedMedia::parse_from_bytes(&tampered.data).unwrap();
        let mut ciphertext = sealed.ciphertext.to_vec();
        let n = ciphertext.len();
        ciphertext[(i * 7) % n] ^= 0x01;
        sealed.ciphertext = ciphertext.into();
        sealed.sequence += 1_000 + i as u64;
        tampered.data = sealed.write_to_bytes().unwrap();
        mallory.send(&tampered).await;
    }
    // Garbage that is not even a sealed frame.
    let mut junk = honest.clone();
    junk.data = vec![0xff; 64];
    mallory.send(&junk).await;
    let before = bob.stats().await;
    mallory.pump(Duration::from_secs(3)).await;

    for p in [&ada, &bob] {
        wait(&p.browser, "return document.querySelector('#chat-lines').textContent.includes('hello from mallory')", 10)
            .await;
        let lines = p
            .browser
            .eval("return [...document.querySelectorAll('#chat-lines li')].filter(l => l.textContent.includes('hello from mallory')).length")
            .await
            .unwrap();
        assert_eq!(lines, 1, "{}: a replay was shown", p.name);
        let stats = p.stats().await;
        assert!(stats["dropped"].as_u64().unwrap() >= 11, "{}: {stats:#}", p.name);
    }
    // And Ada's video still reaches Bob.
    let ada_frames = before["peers"].as_array().unwrap().iter().find(|p| p["name"] == "Ada").unwrap()["frames_decoded"]
        .as_u64()
        .unwrap();
    bob.wait_for_peers(2, Duration::from_secs(10), |p| {
        p["name"] != "Ada" || p["frames_decoded"].as_u64().unwrap_or(0) > ada_frames + 15
    })
    .await;
    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}

/// What the page shows as the room safety code.
async fn safety_code(p: &Participant) -> String {
    let code = p.browser.eval("return document.querySelector('#safety-code')?.textContent ?? ''").await.unwrap();
    code.as_str().unwrap_or_default().to_owned()
}

/// The relay as the attacker. It holds what every relay holds (the bus key, derived from the
/// token secret) and publishes on the room's NATS subjects as a relay would: a key
/// announcement from a session presence never reported (a ghost), and another identity
/// announced as Ada's to Bob (a substitution). The ghost is refused and counted on every page;
/// the substitution is an alarm on Ada in Bob's people list, and the room safety code, equal on
/// every honest page, differs on Bob's once he accepts the substituted key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_relay_cannot_slip_in_a_ghost_key_or_substitute_one_unseen() {
    use videocall_relay::bus::{self, BusKey};
    use videocall_relay::{SessionId, TokenKey};
    use videocall_types::RoomId;

    let nats = testkit::NatsServer::start().unwrap();
    let server = start_with_client_and(|c| c.relay.nats_url = Some(nats.url())).await;
    let ada = Participant::join(&server.http, "overheard", "Ada", "websocket").await;
    let bob = Participant::join(&server.http, "overheard", "Bob", "websocket").await;
    let keyed = |p: &serde_json::Value| p["fingerprint"].is_string() && p["key_id"].is_u64();
    let ada_stats = ada.wait_for_peers(1, Duration::from_secs(20), keyed).await;
    let bob_stats = bob.wait_for_peers(1, Duration::from_secs(20), keyed).await;
    let (ada_session, bob_session) = (ada_stats["session"].as_u64().unwrap(), bob_stats["session"].as_u64().unwrap());
    let ada_user = bob_stats["peers"][0]["user"].as_str().unwrap().to_owned();
    let honest = safety_code(&ada).await;
    assert!(!honest.is_empty());
    assert_eq!(safety_code(&bob).await, honest, "an honest room shows one code on every page");

    let relay_identity = LocalIdentity::generate(&mut OsRng).unwrap();
    let announcement = |session: u64, to: u64, user: &str| {
        let envelope = Envelope { room: "overheard", sender_session: session, recipient_session: to, counter: 1 << 40 };
        let unsigned = packets::announcement(relay_identity.public(), user, &envelope);
        let signature = relay_identity.sign(&unsigned.message);
        let mut packet = unsigned.finish(signature).unwrap();
        (packet.session_id, packet.email) = (session, user.to_owned());
        packet
    };
    let bus_key = BusKey::derive(&TokenKey::from_secret(b"test secret that is long enough for HS256").unwrap());
    let room = RoomId::parse("overheard").unwrap();
    let nats_client = async_nats::connect(nats.url()).await.unwrap();
    let publish = |from: u64, packet: PacketWrapper| {
        let subject = bus::subject(&room, SessionId::new(from));
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let sealed = bus_key.seal(&subject, now_ms, &packet.write_to_bytes().unwrap());
        let client = nats_client.clone();
        async move { client.publish(subject, sealed).await.unwrap() }
    };
    const GHOST: u64 = 909_090;
    publish(GHOST, announcement(GHOST, 0, "ghost@relay.example")).await;
    publish(ada_session, announcement(ada_session, bob_session, &ada_user)).await;
    nats_client.flush().await.unwrap();

    // The ghost: refused and shown as refused on both pages, and in nobody's list.
    for p in [&ada, &bob] {
        wait(&p.browser, "return !!document.querySelector('#refused-keys')", 15).await;
        let stats = p.stats().await;
        assert_eq!(stats["refused"]["unknown_session"], 1, "{}: {stats:#}", p.name);
        assert_eq!(stats["peers"].as_array().unwrap().len(), 1, "{}: the ghost is not a person", p.name);
    }
    // The substitution: an alarm on Ada in Bob's list, nothing on Ada's page.
    let alarm = format!("return !!document.querySelector('li[data-session=\"{ada_session}\"] .key-changed')");
    wait(&bob.browser, &alarm, 15).await;
    let relay_fingerprint = relay_identity.fingerprint().to_string();
    let bob_stats = bob.stats().await;
    assert_eq!(bob_stats["peers"][0]["key_changed"], relay_fingerprint.as_str());
    assert_ne!(bob_stats["peers"][0]["fingerprint"], relay_fingerprint.as_str(), "the shown key stays Ada's");
    assert_eq!(ada.browser.eval("return document.querySelectorAll('.key-changed').length").await.unwrap(), 0);
    // Until Bob accepts, his page shows the honest code, and Ada's video keeps coming.
    assert_eq!(safety_code(&bob).await, honest);
    let frames = bob.stats().await["peers"][0]["frames_decoded"].as_u64().unwrap_or(0);
    bob.wait_for_peers(1, Duration::from_secs(15), |p| p["frames_decoded"].as_u64().unwrap_or(0) > frames + 15).await;

    // Bob accepts the substituted key: his code no longer matches Ada's, which is what a
    // comparison by voice would catch.
    click(&bob.browser, &format!("li[data-session=\"{ada_session}\"] .accept-key")).await;
    let differs = format!("return document.querySelector('#safety-code')?.textContent !== {honest:?}");
    wait(&bob.browser, &differs, 10).await;
    assert_eq!(safety_code(&ada).await, honest);
    assert_eq!(bob.stats().await["peers"][0]["fingerprint"], relay_fingerprint.as_str());

    ada.quit().await;
    bob.quit().await;
    server.stop().await;
}
