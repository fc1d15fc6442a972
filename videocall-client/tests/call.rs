//! The call engine on virtual time: engines joined through a simulated relay that assigns
//! sessions, reports presence, stamps and routes bytes with a delay, and can lose, drop and
//! forge. No sockets, no clock: every rule (joining, backoff, key exchange, keyframe requests,
//! heartbeats, the ladder, leaving) is checked here, without a browser.

mod sim;

use std::collections::BTreeMap;

use protobuf::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::Millis;
use videocall_client::call::{
    BACKOFF_MS, Connection, EncodedVideo, Engine, Failure, IncomingVideo, LOWER_LAYERS, MAX_CHAT_CHARS, MediaState,
    Output, QUEUE_HOLD_VIDEO_BYTES, RUNGS, Rung, TransportKind, Update, VideoStream, View, Want,
};
use videocall_types::presence_packet::Event as Presence;
use videocall_types::{
    CloseReason, LayerDemand, MediaStream, MemberList, ModerationPacket, PacketType, PacketWrapper, ParticipantLeft,
    Route, StreamDemand, Subscription, moderation_packet::Action,
};

use sim::{ROOM, identity, joined, participant, presence};

const ON: MediaState = MediaState { audio_on: true, video_on: true, screen_on: false };

/// One participant: the engine and everything it asked of its adapter.
struct Client {
    engine: Engine<ChaCha20Rng>,
    key: usize,
    user: String,
    /// The generation of the attempt the engine asked for, until the relay admits it.
    pending: Option<u32>,
    /// The connected transport's generation and the session the relay gave it.
    link: Option<(u32, u64)>,
    outputs: Vec<Output>,
}

impl Client {
    fn new(name: &str, key: usize) -> Self {
        let engine = Engine::new(ChaCha20Rng::seed_from_u64(key as u64), identity(key).public().clone(), name, ON);
        Self { engine, key, user: name.into(), pending: None, link: None, outputs: Vec::new() }
    }

    fn collect(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            if let Output::Connect { generation } = output {
                self.pending = Some(generation);
            }
            self.outputs.push(output);
        }
    }

    fn take(&mut self) -> Vec<Output> {
        self.collect();
        std::mem::take(&mut self.outputs)
    }

    fn updates(&mut self) -> Vec<Update> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Show(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    fn generation(&self) -> u32 {
        self.link.map_or(0, |(g, _)| g)
    }
}

/// The relay and the network between it and the clients: `latency` each way.
struct Net {
    now: Millis,
    latency: Millis,
    clients: BTreeMap<&'static str, Client>,
    next_session: u64,
    /// (when, to, generation it was sent to, bytes): in flight to a client.
    in_flight: Vec<(Millis, &'static str, u32, Vec<u8>)>,
    /// Camera frames from `.0` to `.1`: every `.2`th is lost.
    lose_video: Option<(&'static str, &'static str, u64)>,
    video_seen: u64,
    /// The last subscription each client told the relay.
    subscriptions: BTreeMap<&'static str, Subscription>,
}

impl Net {
    fn new(latency: Millis) -> Self {
        Self {
            now: 0,
            latency,
            clients: BTreeMap::new(),
            next_session: 1,
            in_flight: Vec::new(),
            lose_video: None,
            video_seen: 0,
            subscriptions: BTreeMap::new(),
        }
    }

    fn client(&mut self, name: &str) -> &mut Client {
        self.clients.get_mut(name).unwrap()
    }

    /// `name` opens the page and the engine asks to connect.
    fn add(&mut self, name: &'static str, key: usize) {
        let mut client = Client::new(name, key);
        client.engine.start(self.now);
        client.collect();
        self.clients.insert(name, client);
    }

    fn session_of(&self, name: &str) -> u64 {
        self.clients[name].link.unwrap().1
    }

    /// The relay accepts `name`'s pending attempt: a new session, the member list to it, a
    /// join to the others.
    fn admit(&mut self, name: &'static str) {
        let now = self.now;
        let session = self.next_session;
        self.next_session += 1;
        let mut members = MemberList::new();
        members.participants =
            self.clients.values().filter_map(|c| Some(participant(c.link?.1, &c.user))).collect::<Vec<_>>();
        let client = self.client(name);
        let generation = client.pending.take().expect("the engine asked to connect");
        client.engine.connected_as(now, generation, TransportKind::WebSocket, name, ROOM);
        client.link = Some((generation, session));
        members.you = Some(participant(session, name)).into();
        let welcome = presence(Presence::Members(members)).write_to_bytes().unwrap();
        client.engine.handle_bytes(now, generation, &welcome);
        let hello = joined(session, name).write_to_bytes().unwrap();
        for (other, c) in self.clients.iter_mut() {
            if let Some((g, _)) = c.link.filter(|_| *other != name) {
                c.engine.handle_bytes(now, g, &hello);
            }
        }
        self.settle();
    }

    /// The relay drops `name`'s connection with `code`: it is told, the others see it leave.
    fn cut(&mut self, name: &'static str, code: u32) {
        let now = self.now;
        let client = self.client(name);
        let (generation, session) = client.link.take().unwrap();
        client.engine.closed(now, generation, code, "");
        let mut left = ParticipantLeft::new();
        left.participant = Some(participant(session, name)).into();
        let bytes = presence(Presence::Left(left)).write_to_bytes().unwrap();
        for c in self.clients.values_mut() {
            if let Some((g, _)) = c.link {
                c.engine.handle_bytes(now, g, &bytes);
            }
        }
        self.settle();
    }

    /// Moves everything sendable now into flight, and delivers what has arrived, until quiet.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            let names: Vec<&'static str> = self.clients.keys().copied().collect();
            for from in names {
                let identity = identity(self.clients[from].key);
                let now = self.now;
                let client = self.client(from);
                client.engine.work_locally(identity, now);
                client.collect();
                let Some((_, session)) = client.link else { continue };
                let mut sent = Vec::new();
                while let Some(bytes) = client.engine.poll_transmit() {
                    sent.push(bytes);
                }
                for bytes in sent {
                    moved = true;
                    self.route(from, session, &bytes);
                }
            }
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.in_flight).into_iter().partition(|f| f.0 <= now);
            self.in_flight = later;
            for (_, to, generation, bytes) in due {
                moved = true;
                let client = self.client(to);
                client.engine.handle_bytes(now, generation, &bytes);
                client.collect();
            }
            if !moved {
                return;
            }
        }
    }

    /// What the relay does with a packet from `from`: stamps it and sends it on to the room or
    /// the one session it names, losing what the test says.
    fn route(&mut self, from: &'static str, session: u64, bytes: &[u8]) {
        let mut packet = PacketWrapper::parse_from_bytes(bytes).unwrap();
        if packet.packet_type.enum_value() == Ok(PacketType::SUBSCRIPTION) {
            self.subscriptions.insert(from, Subscription::parse_from_bytes(&packet.data).unwrap());
            return;
        }
        packet.session_id = session;
        packet.email = from.into();
        let stamped = packet.write_to_bytes().unwrap();
        let targets: Vec<(&'static str, u32, u64)> =
            self.clients.iter().filter_map(|(n, c)| c.link.map(|(g, s)| (*n, g, s))).collect();
        for (to, generation, to_session) in targets {
            if to_session == session || (packet.to_session_id != 0 && packet.to_session_id != to_session) {
                continue;
            }
            let lossy = self.lose_video.filter(|(a, b, _)| *a == from && *b == to && is_video_frame(&packet));
            if let Some((_, _, every)) = lossy {
                self.video_seen += 1;
                if self.video_seen.is_multiple_of(every) {
                    continue;
                }
            }
            self.in_flight.push((self.now + 2 * self.latency, to, generation, stamped.clone()));
        }
    }

    /// Runs the clock forward by `ms`, a millisecond at a time, waking every engine when it
    /// asked to be woken.
    fn advance(&mut self, ms: Millis) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 1;
            let now = self.now;
            for client in self.clients.values_mut() {
                if client.engine.poll_timeout().is_some_and(|t| t <= now) {
                    client.engine.handle_timeout(now);
                    client.collect();
                }
            }
            self.settle();
        }
    }

    /// `from` sends a camera frame.
    fn frame(&mut self, from: &'static str, keyframe: bool, data: &[u8]) {
        let frame = EncodedVideo {
            codec: "vp8".into(),
            keyframe,
            data: data.to_vec(),
            width: 640,
            height: 360,
            ..EncodedVideo::default()
        };
        self.client(from).engine.send_video(VideoStream::Camera, frame).unwrap();
        self.settle();
    }

    /// Alice and Bob, in the room 100 ms: keys exchanged.
    fn pair() -> Self {
        let mut net = Self::new(10);
        net.add("alice", 0);
        net.add("bob", 1);
        net.admit("alice");
        net.admit("bob");
        net.advance(100);
        net
    }

    /// The same, their outputs so far taken.
    fn two() -> Self {
        let mut net = Self::pair();
        for c in net.clients.values_mut() {
            c.take();
        }
        net
    }
}

/// Is this a sealed camera frame? The relay cannot read it; the test's relay tells by size
/// instead: frames are the large media packets.
fn is_video_frame(packet: &PacketWrapper) -> bool {
    packet.packet_type.enum_value() == Ok(PacketType::MEDIA) && packet.data.len() > 200
}

fn decoded(outputs: &[Output]) -> Vec<&IncomingVideo> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Decode(v) => Some(&**v),
            _ => None,
        })
        .collect()
}

/// The ladder steps among `outputs`.
fn rungs(outputs: Vec<Output>) -> Vec<Rung> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Rung(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn connects(outputs: &[Output]) -> usize {
    outputs.iter().filter(|o| matches!(o, Output::Connect { .. })).count()
}

#[test]
fn two_join_exchange_keys_see_each_other_and_frames_flow() {
    let mut net = Net::pair();
    let bob = net.session_of("bob");
    let alice_saw = net.client("alice").take();
    let shows =
        |outputs: &[Output], f: &dyn Fn(&Update) -> bool| outputs.iter().any(|o| matches!(o, Output::Show(u) if f(u)));
    assert!(shows(&alice_saw, &|u| matches!(u, Update::Joined { session, .. } if *session == bob)));
    assert!(shows(&alice_saw, &|u| matches!(u, Update::PeerKey { session, .. } if *session == bob)));
    assert!(shows(&alice_saw, &|u| matches!(u, Update::PeerMediaKey { session, .. } if *session == bob)));
    assert!(
        shows(&alice_saw, &|u| matches!(u, Update::PeerMedia { session, state } if *session == bob && *state == ON)),
        "Bob's first heartbeat says what he has on"
    );
    assert!(
        alice_saw.contains(&Output::Keyframe { stream: VideoStream::Camera, layer: 0 }),
        "a newcomer gets a keyframe at once"
    );
    let codes: Vec<String> =
        ["alice", "bob"].iter().map(|n| net.clients[n].engine.core().safety_code().to_string()).collect();
    assert_eq!(codes[0], codes[1], "both pages show the same safety code");

    let picture = vec![7u8; 1_000];
    net.frame("alice", true, &picture);
    net.advance(30);
    let got = net.client("bob").take();
    let frames = decoded(&got);
    assert_eq!(frames.len(), 1);
    let frame = frames[0];
    assert_eq!(
        (frame.session, frame.stream, frame.keyframe, frame.codec.as_str(), &frame.data[..], frame.after_gap),
        (net.session_of("alice"), VideoStream::Camera, true, "vp8", picture.as_slice(), false)
    );
    assert_eq!(frame.sequence, 1);
}

/// Wakes `client` whenever it asks until it asks to connect; returns when that was.
fn next_attempt(client: &mut Client, mut now: Millis) -> Millis {
    loop {
        let wake = client.engine.poll_timeout().expect("the engine waits for something");
        assert!(wake > now);
        // Not a moment early.
        client.engine.handle_timeout(wake - 1);
        client.collect();
        assert!(client.pending.is_none(), "asked to connect early, at {}", wake - 1);
        now = wake;
        client.engine.handle_timeout(now);
        client.collect();
        if client.pending.is_some() {
            return now;
        }
    }
}

#[test]
fn failed_attempts_back_off_to_every_8_seconds_and_a_final_refusal_ends_it() {
    let mut client = Client::new("alice", 0);
    client.engine.start(0);
    client.collect();
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..7 {
        let generation = client.pending.take().expect("an attempt was asked for");
        client.engine.connect_failed(now, generation, Failure::Retry("the server is away".into()));
        let failed_at = now;
        now = next_attempt(&mut client, now);
        delays.push(now - failed_at);
        assert!(matches!(client.engine.connection(), Connection::Connecting { .. }));
        // A late answer to an older attempt changes nothing.
        client.engine.connect_failed(now, generation, Failure::Retry("late".into()));
        assert!(matches!(client.engine.connection(), Connection::Connecting { .. }));
    }
    let expected: Vec<Millis> = BACKOFF_MS.iter().map(|&d| Millis::from(d)).chain([8_000, 8_000]).collect();
    assert_eq!(delays, expected);
    let generation = client.pending.take().unwrap();
    client.engine.connect_failed(now, generation, Failure::Final("the host removed you".into()));
    let outputs = client.take();
    assert!(
        outputs
            .contains(&Output::Show(Update::Connection(Connection::Closed { reason: "the host removed you".into() })))
    );
    assert!(outputs.contains(&Output::Disconnect));
    assert_eq!(client.engine.poll_timeout(), None);
    client.engine.handle_timeout(now + 60_000);
    assert_eq!(connects(&client.take()), 0, "over means over");
}

#[test]
fn a_drop_forgets_everyone_then_reconnects_under_a_new_session_with_a_new_key() {
    let mut net = Net::two();
    let (old_session, old_key) = (net.session_of("alice"), net.clients["alice"].engine.core().key_id());
    let old_generation = net.clients["alice"].generation();
    net.cut("alice", 1006);
    let bob = net.clients["bob"].link.unwrap().1;
    let updates = net.client("alice").updates();
    assert!(updates.contains(&Update::Left { session: bob }), "nobody is shown we cannot hear");
    assert!(
        updates
            .iter()
            .any(|u| matches!(u, Update::Connection(Connection::Reconnecting { attempt: 1, delay_ms: 500, .. })))
    );
    net.advance(499);
    assert!(net.clients["alice"].pending.is_none(), "waits out the backoff");
    net.advance(1);
    assert!(net.clients["alice"].pending.is_some());
    net.admit("alice");
    net.advance(100);
    let new_session = net.session_of("alice");
    assert_ne!(new_session, old_session);
    assert_ne!(net.clients["alice"].engine.core().key_id(), old_key, "a new session gets a new key");
    let bob_saw = net.client("bob").updates();
    assert!(bob_saw.contains(&Update::Left { session: old_session }));
    assert!(bob_saw.iter().any(|u| matches!(u, Update::PeerKey { session, .. } if *session == new_session)));
    // Bytes still arriving on the old transport are not this connection's.
    let mut stale = PacketWrapper::new();
    stale.packet_type = PacketType::PRESENCE.into();
    stale.data = vec![1, 2, 3];
    let now = net.now;
    net.client("alice").engine.handle_bytes(now, old_generation, &stale.write_to_bytes().unwrap());
    assert_eq!(net.clients["alice"].engine.dropped(), 0, "ignored, not even counted");
    net.frame("alice", true, b"after the reconnect, a keyframe of some length to be counted as video by the relay .......................................................................................................................");
    net.advance(30);
    assert_eq!(decoded(&net.client("bob").take()).len(), 1);
}

#[test]
fn closes_that_are_final_are_not_retried() {
    for (close, says) in [
        (CloseReason::Replaced, "This room was opened in another tab"),
        (CloseReason::Removed, "The host removed you from this meeting"),
        (CloseReason::Ended, "The host ended the meeting for everyone"),
    ] {
        let mut net = Net::two();
        net.cut("alice", u32::from(close.close_code()));
        let outputs = net.client("alice").take();
        assert!(outputs.contains(&Output::Show(Update::Connection(Connection::Closed { reason: says.into() }))));
        assert!(outputs.contains(&Output::Disconnect));
        net.advance(20_000);
        assert_eq!(connects(&net.client("alice").take()), 0, "{close:?} is final");
    }
    // Too slow, timed out, flooding: the relay's reasons for a drop worth retrying.
    let mut net = Net::two();
    net.cut("alice", u32::from(CloseReason::TooSlow.close_code()));
    net.advance(600);
    assert_eq!(connects(&net.client("alice").take()), 1);
}

#[test]
fn keyframe_requests_are_throttled_per_peer_and_stream() {
    let mut net = Net::two();
    let alice = net.session_of("alice");
    let asked = |net: &mut Net| {
        net.advance(25);
        net.client("alice").take().into_iter().filter(|o| matches!(o, Output::Keyframe { .. })).collect::<Vec<_>>()
    };
    let now = net.now;
    net.client("bob").engine.need_keyframe(now, alice, VideoStream::Camera);
    net.client("bob").engine.need_keyframe(now + 1, alice, VideoStream::Camera);
    net.client("bob").engine.need_keyframe(now + 2, alice, VideoStream::Screen);
    net.settle();
    assert_eq!(
        asked(&mut net),
        [
            Output::Keyframe { stream: VideoStream::Camera, layer: 0 },
            Output::Keyframe { stream: VideoStream::Screen, layer: 0 }
        ]
    );
    let now = net.now;
    net.client("bob").engine.need_keyframe(now + 500, alice, VideoStream::Camera);
    net.settle();
    assert!(asked(&mut net).is_empty(), "within a second of the last request");
    net.advance(1_000);
    let now = net.now;
    net.client("bob").engine.need_keyframe(now, alice, VideoStream::Camera);
    net.settle();
    assert_eq!(asked(&mut net), [Output::Keyframe { stream: VideoStream::Camera, layer: 0 }]);
    // Someone the relay never reported: nothing is sealed for them.
    let now = net.now;
    net.client("bob").engine.need_keyframe(now, 999, VideoStream::Camera);
    assert!(net.client("bob").engine.poll_transmit().is_none());
}

#[test]
fn heartbeats_measure_the_round_trip_and_reported_loss_moves_the_ladder() {
    let mut net = Net::two();
    let bob = net.session_of("bob");
    // One layer: without simulcast a receiver's loss steps the camera down for everyone.
    net.client("alice").engine.set_simulcast(false);
    let rung = net.client("alice").engine.camera_opened(1280, 720);
    assert_eq!(rung, RUNGS[0]);
    net.advance(1_100);
    let rtt = net.clients["alice"].engine.link(bob).unwrap().rtt_ms.expect("Bob answered a heartbeat");
    assert_eq!(rtt, 40.0, "10 ms each way through the relay, twice");
    // Alice's camera at 30 fps; the path to Bob loses every 10th frame.
    net.lose_video = Some(("alice", "bob", 10));
    let big = vec![3u8; 1_200];
    let mut steps = Vec::new();
    for i in 0..90 {
        net.frame("alice", i % 30 == 0, &big);
        net.advance(33);
        steps.extend(rungs(net.client("alice").take()));
    }
    assert_eq!(net.clients["alice"].engine.link(bob).unwrap().reported_loss, 100, "Bob said he lost 10 %");
    assert!(!steps.is_empty() && steps[0] == RUNGS[1], "one step down on loss: {steps:?}");
    // A clean path: after ten clean seconds, one step back up.
    net.lose_video = None;
    net.advance(2_000);
    net.client("alice").take();
    let low = net.clients["alice"].engine.ladder().unwrap().rung();
    net.advance(10_000);
    let up = rungs(net.client("alice").take());
    assert_eq!(up.len(), 1, "one step up after ten clean seconds: {up:?}");
    assert!(up[0].bitrate > low.bitrate);
    // A frame lost shows as a gap to Bob's decoder.
    net.lose_video = Some(("alice", "bob", 2));
    net.frame("alice", false, &big);
    net.frame("alice", false, &big);
    net.frame("alice", false, &big);
    net.advance(30);
    let frames = net.client("bob").take();
    assert!(decoded(&frames).iter().any(|f| f.after_gap));
}

#[test]
fn a_growing_send_queue_steps_the_ladder_down() {
    let mut net = Net::two();
    net.client("alice").engine.camera_opened(640, 480);
    net.client("alice").engine.set_queued_bytes(100_000.0);
    net.advance(1_000);
    let outputs = net.client("alice").take();
    assert!(outputs.contains(&Output::Rung(RUNGS[3])), "{outputs:?}");
    assert!(outputs.iter().any(|o| matches!(o, Output::Show(Update::Sending { bitrate_bps: 350_000, .. }))));
}

#[test]
fn a_long_send_queue_holds_video_until_it_drains_to_half() {
    let mut net = Net::two();
    net.client("alice").take();
    let held = |net: &mut Net, queued: f64| {
        net.client("alice").engine.set_queued_bytes(queued);
        net.client("alice").take().into_iter().find_map(|o| match o {
            Output::HoldVideo { held } => Some(held),
            _ => None,
        })
    };
    assert_eq!(held(&mut net, 40_000.0), None);
    assert_eq!(held(&mut net, QUEUE_HOLD_VIDEO_BYTES + 1.0), Some(true));
    assert_eq!(held(&mut net, QUEUE_HOLD_VIDEO_BYTES * 0.6), None, "still more than half");
    assert_eq!(held(&mut net, QUEUE_HOLD_VIDEO_BYTES * 0.4), Some(false));
    assert_eq!(held(&mut net, 0.0), None);
}

#[test]
fn leaving_closes_the_transport_stops_the_senders_and_nothing_follows() {
    let mut net = Net::two();
    net.client("alice").engine.leave();
    let outputs = net.client("alice").take();
    for expected in [
        Output::Disconnect,
        Output::Microphone { on: false },
        Output::Camera { on: false },
        Output::Show(Update::Connection(Connection::Closed { reason: "You left the room".into() })),
    ] {
        assert!(outputs.contains(&expected), "{expected:?} in {outputs:?}");
    }
    assert_eq!(net.clients["alice"].engine.poll_timeout(), None);
    let now = net.now;
    let engine = &mut net.client("alice").engine;
    engine.start(now);
    engine.handle_timeout(now + 10_000);
    assert!(engine.poll_transmit().is_none(), "no heartbeats after leaving");
    assert!(engine.send_video(VideoStream::Camera, EncodedVideo::default()).is_ok());
    assert!(engine.poll_transmit().is_none());
    assert!(net.client("alice").take().is_empty());
}

#[test]
fn the_hosts_mute_turns_the_microphone_off_and_tells_the_room() {
    let mut net = Net::two();
    let mut mute = ModerationPacket::new();
    mute.action = Some(Action::MuteUser("alice".into()));
    let mut packet = PacketWrapper::new();
    packet.packet_type = PacketType::MODERATION.into();
    packet.data = mute.write_to_bytes().unwrap();
    let (now, generation) = (net.now, net.clients["alice"].generation());
    net.client("alice").engine.handle_bytes(now, generation, &packet.write_to_bytes().unwrap());
    let outputs = net.client("alice").take();
    assert!(outputs.contains(&Output::Microphone { on: false }));
    assert!(outputs.contains(&Output::Show(Update::Notice("The host muted your microphone".into()))));
    net.settle();
    net.advance(30);
    let alice = net.session_of("alice");
    let off = MediaState { audio_on: false, ..ON };
    assert!(net.client("bob").updates().contains(&Update::PeerMedia { session: alice, state: off }));
}

#[test]
fn chat_is_shown_with_the_senders_name_and_cut_to_length() {
    let mut net = Net::two();
    net.client("alice").engine.send_chat("  hello  ");
    assert!(net.client("alice").updates().contains(&Update::Chat {
        session: 0,
        name: "alice".into(),
        text: "hello".into()
    }));
    net.client("alice").engine.send_chat(&"x".repeat(10_000));
    net.settle();
    net.advance(30);
    let alice = net.session_of("alice");
    let lines: Vec<(String, usize)> = net
        .client("bob")
        .updates()
        .into_iter()
        .filter_map(|u| match u {
            Update::Chat { session, name, text } if session == alice => Some((name, text.chars().count())),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [("ALICE".to_owned(), 5), ("ALICE".to_owned(), MAX_CHAT_CHARS)]);
}

/// What a hostile relay can send that is not even a packet: counted, never fatal, and the call
/// goes on.
#[test]
fn garbage_is_counted_and_the_call_goes_on() {
    let mut net = Net::two();
    let (now, generation) = (net.now, net.clients["alice"].generation());
    net.client("alice").engine.handle_bytes(now, generation, &[0xff; 64]);
    assert_eq!(net.clients["alice"].engine.dropped(), 1);
    assert!(net.clients["alice"].engine.connected());
    let picture = vec![9u8; 800];
    net.frame("alice", true, &picture);
    net.advance(30);
    assert_eq!(decoded(&net.client("bob").take()).len(), 1);
}

/// A relay's demand for `sender`'s camera layers, as a relay sends it (session 0).
fn demand(sender: u64, layers: u32, keyframes: u32) -> Vec<u8> {
    let mut stream = StreamDemand::new();
    stream.stream = MediaStream::STREAM_CAMERA.into();
    (stream.layers, stream.keyframes) = (layers, keyframes);
    let mut demand = LayerDemand::new();
    demand.sender = sender;
    demand.streams.push(stream);
    let mut packet = PacketWrapper::new();
    packet.packet_type = PacketType::LAYER_DEMAND.into();
    packet.data = demand.write_to_bytes().unwrap();
    packet.write_to_bytes().unwrap()
}

/// Alice's camera frame on `layer`, sealed and taken off her queue: its routing header.
fn send_layer(net: &mut Net, layer: u32, keyframe: bool) -> Option<Route> {
    let frame = EncodedVideo { codec: "vp8".into(), layer, keyframe, data: vec![7; 300], ..EncodedVideo::default() };
    let engine = &mut net.client("alice").engine;
    engine.send_video(VideoStream::Camera, frame).unwrap();
    let bytes = engine.poll_transmit()?;
    Some(Route::of(&PacketWrapper::parse_from_bytes(&bytes).unwrap()))
}

#[test]
fn simulcast_layers_run_as_the_relay_demands_and_each_frame_names_its_layer() {
    let mut net = Net::pair();
    let alice = net.session_of("alice");
    net.client("alice").take();
    net.client("alice").engine.camera_opened(1280, 720);
    let layers = |net: &mut Net| -> Vec<(u32, Vec<u32>)> {
        let outputs = net.client("alice").take();
        let active = outputs.iter().filter_map(|o| match o {
            Output::Layers { stream: VideoStream::Camera, active } => Some(*active),
            _ => None,
        });
        let keys = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Keyframe { stream: VideoStream::Camera, layer } => Some(*layer),
                _ => None,
            })
            .collect();
        active.map(|a| (a, Vec::new())).chain([(u32::MAX, keys)]).collect()
    };
    assert_eq!(layers(&mut net), [(0b100, vec![]), (u32::MAX, vec![])], "three layers, only the top one runs");
    // Before any demand: the top layer alone goes out, as without simulcast.
    assert_eq!(send_layer(&mut net, 0, true), None, "a paused layer sends nothing");
    let top = send_layer(&mut net, 2, true).unwrap();
    assert_eq!((top.stream.enum_value(), top.layer, top.layers, top.frame), (Ok(MediaStream::STREAM_CAMERA), 2, 3, 1));

    // The relays want the two small layers, and a keyframe of the smallest.
    let generation = net.clients["alice"].generation();
    let now = net.now;
    net.client("alice").engine.handle_bytes(now, generation, &demand(alice, 0b011, 0b001));
    assert_eq!(layers(&mut net), [(0b011, vec![]), (u32::MAX, vec![0])]);
    assert_eq!(send_layer(&mut net, 2, false), None);
    let small = send_layer(&mut net, 0, true).unwrap();
    let middle = send_layer(&mut net, 1, true).unwrap();
    assert_eq!((small.layer, small.frame, small.keyframe), (0, 1, true), "frames are counted per layer");
    assert_eq!((middle.layer, middle.frame), (1, 1));
    // The same demand again: nothing changes, the keyframe is throttled.
    net.client("alice").engine.handle_bytes(now + 10, generation, &demand(alice, 0b011, 0b001));
    assert_eq!(layers(&mut net), [(u32::MAX, vec![])]);
    // A demand from a participant (the relay stamps its session) is not obeyed.
    let mut forged = PacketWrapper::parse_from_bytes(&demand(alice, 0, 0)).unwrap();
    forged.session_id = net.session_of("bob");
    net.client("alice").engine.handle_bytes(now + 20, generation, &forged.write_to_bytes().unwrap());
    assert_eq!(layers(&mut net), [(u32::MAX, vec![])]);
    assert_eq!(net.clients["alice"].engine.send_layers(VideoStream::Camera).active(), 0b011);
}

#[test]
fn a_congested_simulcast_camera_never_encodes_one_size_twice() {
    let mut net = Net::pair();
    let alice = net.session_of("alice");
    net.client("alice").engine.camera_opened(1280, 720);
    let generation = net.clients["alice"].generation();
    let now = net.now;
    net.client("alice").engine.handle_bytes(now, generation, &demand(alice, 0b111, 0));
    net.client("alice").take();
    // Each rung's width, and the layers that run if that step changed them.
    let steps = |net: &mut Net| -> Vec<(u32, Option<u32>)> {
        let mut steps: Vec<(u32, Option<u32>)> = Vec::new();
        for output in net.client("alice").take() {
            match (output, steps.last_mut()) {
                (Output::Rung(rung), _) => steps.push((rung.width, None)),
                (Output::Layers { stream: VideoStream::Camera, active }, Some(step)) => step.1 = Some(active),
                _ => {}
            }
        }
        steps
    };

    // Our own send queue grows: the top layer steps down to 960x540 over the same two layers…
    net.client("alice").engine.set_queued_bytes(100_000.0);
    net.advance(1_000);
    assert_eq!(steps(&mut net), [(960, None)]);
    assert_eq!(net.clients["alice"].engine.camera_lower_layers(), LOWER_LAYERS);
    // …then to 640x480: the 640x360 layer goes, whoever took it gets the top one.
    net.advance(1_000);
    assert_eq!(steps(&mut net), [(640, Some(0b11))], "the two that stay run: whoever took the middle gets the top");
    assert_eq!(net.clients["alice"].engine.camera_lower_layers(), &LOWER_LAYERS[..1]);
    let top = send_layer(&mut net, 1, true).unwrap();
    assert_eq!((top.layer, top.layers), (1, 2));
    assert_eq!(send_layer(&mut net, 2, false), None, "a frame of the old top, still in its encoder");
    net.advance(2_000);
    assert_eq!(steps(&mut net), [(640, None), (320, Some(0b1))], "at 320x240 the camera is one layer");
    assert!(net.clients["alice"].engine.camera_lower_layers().is_empty());

    // The queue clears: ten clean seconds a step, the layers come back paused, the top runs.
    net.client("alice").engine.set_queued_bytes(0.0);
    net.advance(10_000);
    assert_eq!(steps(&mut net), [(640, Some(0b10))]);
    net.advance(20_000);
    assert_eq!(steps(&mut net), [(640, None), (960, Some(0b100))]);
    assert_eq!(net.clients["alice"].engine.camera_lower_layers(), LOWER_LAYERS);
    assert_eq!(send_layer(&mut net, 1, true), None, "paused until a relay asks for it");
    assert_eq!(send_layer(&mut net, 2, true).map(|r| r.layers), Some(3));
}

#[test]
fn a_receiver_tells_its_relay_what_it_shows_and_again_after_reconnecting() {
    let mut net = Net::pair();
    let alice = net.session_of("alice");
    let view = View {
        wants: vec![(alice, VideoStream::Camera, Want::UpTo(2))],
        camera_default: Want::SMALLEST,
        screen_default: Want::Off,
    };
    net.client("bob").engine.set_view(view.clone());
    net.settle();
    assert_eq!(net.subscriptions["bob"], view.to_subscription());
    net.subscriptions.clear();
    net.client("bob").engine.set_view(view.clone());
    net.settle();
    assert!(net.subscriptions.is_empty(), "an unchanged view is not sent again");
    net.cut("bob", 1006);
    net.advance(BACKOFF_MS[0] as Millis + 1);
    net.admit("bob");
    assert_eq!(net.subscriptions["bob"], view.to_subscription(), "a new session is told at once");
}

#[test]
fn a_receiver_follows_the_layer_the_relay_switches_it_to() {
    let mut net = Net::pair();
    net.client("alice").engine.camera_opened(1280, 720);
    let now = net.now;
    let (generation, alice) = (net.clients["alice"].generation(), net.session_of("alice"));
    net.client("alice").engine.handle_bytes(now, generation, &demand(alice, 0b111, 0));
    net.client("bob").take();
    for layer in [2, 0] {
        for i in 0..3 {
            let frame = EncodedVideo { layer, keyframe: i == 0, data: vec![1; 100], ..EncodedVideo::default() };
            net.client("alice").engine.send_video(VideoStream::Camera, frame).unwrap();
        }
    }
    net.advance(30);
    let frames = net.client("bob").take();
    let got: Vec<(u32, u64, bool)> = decoded(&frames).iter().map(|f| (f.layer, f.sequence, f.after_gap)).collect();
    // The relay here forwards every layer; a real one forwards one. Each layer's frames are
    // numbered on their own, and moving to another layer is not a gap.
    assert_eq!(got, [(2, 1, false), (2, 2, false), (2, 3, false), (0, 1, false), (0, 2, false), (0, 3, false)]);
    let bob = &net.clients["bob"].engine;
    assert_eq!(bob.link(alice).unwrap().layer(VideoStream::Camera), Some(0));
}
