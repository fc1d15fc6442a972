//! The room state machine on virtual time, with relays joined by a simulated bus that, like the
//! real ones, hands every publish to every relay's subscription (the sender's own included).

use std::time::{Duration, Instant};

use bytes::Bytes;
use protobuf::Message;
use videocall_types::{DisplayName, PacketType, PacketWrapper, PresencePacket, RoomId, UserId, presence_packet::Event};

use super::*;
use crate::outbox::OutboxLimits;

fn sid(n: u64) -> SessionId {
    SessionId::new(n).unwrap()
}

fn member(session: u64, user: &str) -> Member {
    Member {
        session: sid(session),
        user: UserId::parse(user).unwrap(),
        name: DisplayName::parse(&format!("Name of {user}")).unwrap(),
        recorder: false,
    }
}

fn media(n: u8, len: usize, keyframe: bool) -> Bytes {
    let w = PacketWrapper { packet_type: PacketType::MEDIA.into(), data: vec![n; len], keyframe, ..Default::default() };
    Bytes::from(w.write_to_bytes().unwrap())
}

fn addressed(to: u64) -> Bytes {
    let w = PacketWrapper {
        packet_type: PacketType::AES_KEY.into(),
        to_session_id: to,
        data: vec![9],
        ..Default::default()
    };
    Bytes::from(w.write_to_bytes().unwrap())
}

/// What a client sees, decoded.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Members(Vec<u64>),
    Joined(u64),
    Left(u64, String),
    Media(u8),
    Key,
    Mute(String),
}

fn decode(packet: &Bytes) -> Seen {
    let w = PacketWrapper::parse_from_bytes(packet).unwrap();
    match w.packet_type.enum_value().unwrap() {
        PacketType::MEDIA => Seen::Media(w.data[0]),
        PacketType::AES_KEY => Seen::Key,
        PacketType::MODERATION => match Moderation::parse(packet).unwrap() {
            Moderation::Mute(user) => Seen::Mute(user.to_string()),
            other => panic!("a client was sent {other:?}"),
        },
        PacketType::PRESENCE => match PresencePacket::parse_from_bytes(&w.data).unwrap().event.unwrap() {
            Event::Members(l) => Seen::Members(l.participants.iter().map(|p| p.session_id).collect()),
            Event::Joined(p) => Seen::Joined(p.session_id),
            Event::Left(l) => Seen::Left(l.participant.session_id, l.reason),
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
}

/// Relays on one simulated bus, all serving the same room.
struct Net {
    relays: Vec<Room>,
    now: Instant,
    closed: Vec<(SessionId, CloseReason)>,
    /// Sessions whose outbox went non-empty since the last drain.
    woken: Vec<SessionId>,
    /// Relays cut off from the bus.
    partitioned: Vec<usize>,
    /// Relays subscribed to the room: as the driver does, from just before their first join
    /// until their last local session is gone, when the room state is dropped.
    subscribed: Vec<bool>,
    room: RoomId,
    config: RoomConfig,
    /// The layer demands relays told their senders: (session, camera layers, camera keyframes).
    told: Vec<(u64, u32, u32)>,
}

impl Net {
    fn new(relays: usize, config: RoomConfig) -> Self {
        let room = RoomId::parse("standup").unwrap();
        Self {
            relays: (0..relays).map(|i| Room::new(room.clone(), 100 + i as u64, config)).collect(),
            subscribed: vec![false; relays],
            room,
            config,
            now: Instant::now(),
            closed: Vec::new(),
            woken: Vec::new(),
            partitioned: Vec::new(),
            told: Vec::new(),
        }
    }

    /// Runs every relay's outputs until the bus is quiet.
    fn settle(&mut self) {
        loop {
            let mut publishes = Vec::new();
            for (i, relay) in self.relays.iter_mut().enumerate() {
                while let Some(out) = relay.poll_output() {
                    match out {
                        RoomOutput::Publish { from, payload } => publishes.push((i, from, payload)),
                        RoomOutput::Wake(s) => self.woken.push(s),
                        RoomOutput::Close { session, reason } => self.closed.push((session, reason)),
                    }
                }
            }
            if publishes.is_empty() {
                for (i, relay) in self.relays.iter_mut().enumerate() {
                    if self.subscribed[i] && !relay.has_local() {
                        self.subscribed[i] = false;
                        *relay = Room::new(self.room.clone(), 100 + i as u64, self.config);
                    }
                }
                return;
            }
            for (origin, from, payload) in publishes {
                if self.partitioned.contains(&origin) {
                    continue;
                }
                for (i, relay) in self.relays.iter_mut().enumerate() {
                    if self.subscribed[i] && !self.partitioned.contains(&i) {
                        relay.handle_bus(self.now, from, payload.clone());
                    }
                }
            }
        }
    }

    fn join(&mut self, relay: usize, m: Member) {
        self.subscribed[relay] = true;
        self.relays[relay].join(self.now, m).unwrap();
        self.settle();
    }

    /// A client publishes: its relay stamps and publishes, as the driver does.
    fn send(&mut self, relay: usize, from: u64, packet: Bytes) {
        let (stamped, _) = crate::wire::stamp(&packet, &UserId::parse("x").unwrap(), sid(from)).unwrap();
        self.relays[relay].outputs.push_back(RoomOutput::Publish { from: Some(sid(from)), payload: stamped });
        self.settle();
    }

    fn recv(&mut self, relay: usize, session: u64) -> Vec<Seen> {
        let mut out = Vec::new();
        self.relays[relay].drain(sid(session), &mut out, usize::MAX);
        // What the relays tell a sender of its layers is kept apart (`told`).
        out.retain(|packet| {
            let w = PacketWrapper::parse_from_bytes(packet).unwrap();
            if w.packet_type.enum_value() != Ok(PacketType::LAYER_DEMAND) {
                return true;
            }
            let (origin, about, demand) = forward::decode(&w.data).unwrap();
            assert_eq!((origin, about, w.to_session_id), (0, sid(session), session), "a sender is told of itself");
            self.told.push((session, demand[0].0, demand[0].1));
            false
        });
        for packet in &out {
            let w = PacketWrapper::parse_from_bytes(packet).unwrap();
            if let Ok(PresencePacket { event: Some(Event::Members(l)), .. }) = PresencePacket::parse_from_bytes(&w.data)
            {
                assert_eq!(l.you.session_id, session, "the member list names its recipient");
            }
        }
        out.iter().map(decode).collect()
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        for relay in &mut self.relays {
            relay.handle_timeout(self.now);
        }
        self.settle();
    }
}

#[test]
fn join_and_leave_reach_everyone_and_the_joiner_gets_the_member_list() {
    let mut net = Net::new(1, RoomConfig::default());
    net.join(0, member(1, "ada"));
    assert_eq!(net.recv(0, 1), vec![Seen::Members(vec![])]);
    net.join(0, member(2, "bob"));
    assert_eq!(net.recv(0, 2), vec![Seen::Members(vec![1])]);
    assert_eq!(net.recv(0, 1), vec![Seen::Joined(2)]);
    assert!(net.relays[0].leave(sid(2)));
    net.settle();
    assert_eq!(net.recv(0, 1), vec![Seen::Left(2, "left".into())]);
    assert!(!net.relays[0].leave(sid(2)));
    assert!(net.closed.is_empty(), "a client that leaves is not closed by the relay");
}

#[test]
fn packets_reach_everyone_but_the_sender_and_addressed_ones_only_their_addressee() {
    let mut net = Net::new(1, RoomConfig::default());
    for (s, u) in [(1, "a"), (2, "b"), (3, "c")] {
        net.join(0, member(s, u));
    }
    for s in 1..=3 {
        net.recv(0, s);
    }
    net.send(0, 1, media(7, 10, false));
    net.send(0, 1, addressed(3));
    net.send(0, 1, addressed(1));
    assert_eq!(net.recv(0, 1), vec![]);
    assert_eq!(net.recv(0, 2), vec![Seen::Media(7)]);
    assert_eq!(net.recv(0, 3), vec![Seen::Media(7), Seen::Key]);
}

#[test]
fn a_slow_receiver_loses_old_media_while_the_others_get_everything() {
    let config = RoomConfig { outbox: OutboxLimits { max_packets: 8, max_bytes: 1 << 20 }, ..RoomConfig::default() };
    let mut net = Net::new(1, config);
    for (s, u) in [(1, "sender"), (2, "slow"), (3, "fast")] {
        net.join(0, member(s, u));
    }
    for s in 1..=3 {
        net.recv(0, s);
    }
    let mut fast = Vec::new();
    let mut dropped = 0;
    for n in 0..40u8 {
        let (stamped, _) =
            crate::wire::stamp(&media(n, 100, n % 10 == 0), &UserId::parse("s").unwrap(), sid(1)).unwrap();
        let d = net.relays[0].handle_bus(net.now, Some(sid(1)), stamped);
        dropped += d.dropped.packets;
        fast.extend(net.recv(0, 3));
    }
    assert_eq!(fast, (0..40).map(Seen::Media).collect::<Vec<_>>());
    assert_eq!(dropped, 32);
    // The slow one kept the keyframes and the newest deltas: deltas go first.
    assert_eq!(net.recv(0, 2), vec![0, 10, 20, 30, 36, 37, 38, 39].into_iter().map(Seen::Media).collect::<Vec<_>>());
    net.settle();
    assert!(net.closed.is_empty());
}

#[test]
fn a_receiver_that_cannot_take_control_packets_is_closed_as_too_slow() {
    let config = RoomConfig { outbox: OutboxLimits { max_packets: 3, max_bytes: 1 << 20 }, ..RoomConfig::default() };
    let mut net = Net::new(1, config);
    net.join(0, member(1, "stuck"));
    net.join(0, member(2, "other"));
    for s in 3..6 {
        net.join(0, member(s, &format!("u{s}")));
        for other in 2..=s {
            net.recv(0, other);
        }
    }
    assert_eq!(net.closed, vec![(sid(1), CloseReason::TooSlow)]);
    net.join(0, member(6, "u6"));
    assert_eq!(net.recv(0, 2), vec![Seen::Joined(6)]);
}

#[test]
fn silent_sessions_time_out_and_touched_ones_stay() {
    let mut net = Net::new(1, RoomConfig::default());
    let t0 = net.now;
    net.join(0, member(1, "quiet"));
    net.join(0, member(2, "chatty"));
    net.recv(0, 2);
    assert_eq!(net.relays[0].poll_timeout(), Some(t0 + limits::PRESENCE_REFRESH));
    for _ in 0..4 {
        net.advance(Duration::from_secs(4));
        net.relays[0].touch(net.now, sid(2));
    }
    assert_eq!(net.closed, vec![(sid(1), CloseReason::TimedOut)]);
    assert_eq!(net.recv(0, 2), vec![Seen::Left(1, "timed out".into())]);
    assert_eq!(net.relays[0].local_count(), 1);
}

#[test]
fn the_same_user_joining_again_replaces_the_old_session() {
    let mut net = Net::new(1, RoomConfig::default());
    net.join(0, member(1, "ada"));
    net.join(0, member(2, "bob"));
    net.recv(0, 2);
    net.join(0, member(3, "ada"));
    assert_eq!(net.closed, vec![(sid(1), CloseReason::Replaced)]);
    assert_eq!(net.recv(0, 2), vec![Seen::Left(1, "replaced by a newer connection".into()), Seen::Joined(3)]);
    assert_eq!(net.recv(0, 3), vec![Seen::Members(vec![2])]);
}

#[test]
fn a_full_room_refuses_joins_but_a_rejoin_of_a_member_fits() {
    let config = RoomConfig { max_participants: 2, ..RoomConfig::default() };
    let mut net = Net::new(1, config);
    net.join(0, member(1, "a"));
    net.join(0, member(2, "b"));
    assert_eq!(net.relays[0].join(net.now, member(3, "c")), Err(JoinError::RoomFull { max: 2 }));
    assert_eq!(net.relays[0].join(net.now, member(2, "x")), Err(JoinError::SessionExists(sid(2))));
    net.relays[0].join(net.now, member(4, "a")).unwrap();
}

#[test]
fn presence_crosses_relays_and_a_late_relay_learns_who_is_there() {
    let mut net = Net::new(2, RoomConfig::default());
    net.join(0, member(1, "a"));
    net.join(0, member(2, "b"));
    // Relay 1 gets its first session after the others joined: its sync request brings them.
    net.join(1, member(3, "c"));
    let mut c = net.recv(1, 3);
    c.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(c, vec![Seen::Joined(1), Seen::Joined(2), Seen::Members(vec![])]);
    assert_eq!(net.recv(0, 1), vec![Seen::Members(vec![]), Seen::Joined(2), Seen::Joined(3)]);
    net.join(1, member(4, "d"));
    assert_eq!(net.recv(1, 4), vec![Seen::Members(vec![3, 1, 2])]);
    net.send(1, 4, media(5, 3, false));
    for (relay, s) in [(0, 1), (0, 2), (1, 3)] {
        assert!(net.recv(relay, s).contains(&Seen::Media(5)));
    }
    assert_eq!(net.recv(1, 4), vec![]);
    net.relays[0].leave(sid(1));
    net.settle();
    assert_eq!(net.recv(1, 3), vec![Seen::Left(1, "left".into())]);
}

#[test]
fn members_of_a_relay_that_went_silent_are_reported_gone() {
    let mut net = Net::new(2, RoomConfig::default());
    net.join(0, member(1, "a"));
    net.join(1, member(2, "b"));
    net.recv(1, 2);
    net.partitioned.push(0);
    for _ in 0..4 {
        net.advance(Duration::from_secs(4));
        net.relays[0].touch(net.now, sid(1));
        net.relays[1].touch(net.now, sid(2));
    }
    assert_eq!(net.recv(1, 2), vec![Seen::Left(1, "timed out".into())]);
    // Relay 0 comes back: its refresh brings its member back.
    net.partitioned.clear();
    net.relays[0].touch(net.now, sid(1));
    net.advance(Duration::from_secs(5));
    assert_eq!(net.recv(1, 2), vec![Seen::Joined(1)]);
}

#[test]
fn a_refresh_that_no_longer_lists_a_member_reports_it_gone() {
    let mut net = Net::new(2, RoomConfig::default());
    net.join(0, member(1, "a"));
    net.join(0, member(5, "e"));
    net.join(1, member(2, "b"));
    net.recv(1, 2);
    // Relay 0's leave of session 1 is lost on the bus.
    net.partitioned.push(0);
    net.relays[0].leave(sid(1));
    net.settle();
    net.partitioned.clear();
    net.advance(limits::PRESENCE_REFRESH);
    assert_eq!(net.recv(1, 2), vec![Seen::Left(1, "left".into())]);
}

#[test]
fn garbage_from_the_bus_is_counted_and_goes_nowhere() {
    let mut net = Net::new(1, RoomConfig::default());
    net.join(0, member(1, "a"));
    net.recv(0, 1);
    let d = net.relays[0].handle_bus(net.now, None, Bytes::from_static(b"\xff\xff"));
    assert!(d.invalid);
    assert_eq!(net.recv(0, 1), vec![]);
}

/// A host's action as the API publishes it: from the relay side, on any relay's bus.
fn moderate(net: &mut Net, relay: usize, action: Moderation) {
    net.relays[relay].outputs.push_back(RoomOutput::Publish { from: None, payload: action.to_packet() });
    net.settle();
}

#[test]
fn a_removed_user_is_closed_on_every_relay_and_the_others_stay() {
    let mut net = Net::new(2, RoomConfig::default());
    net.join(0, member(1, "host"));
    net.join(0, member(2, "mallory"));
    net.join(1, member(3, "mallory"));
    net.join(1, member(4, "bob"));
    for (relay, s) in [(0, 1), (0, 2), (1, 3), (1, 4)] {
        net.recv(relay, s);
    }
    let mallory = UserId::parse("mallory").unwrap();
    moderate(&mut net, 0, Moderation::Remove(mallory));
    net.closed.sort_by_key(|(s, _)| *s);
    assert_eq!(net.closed, vec![(sid(2), CloseReason::Removed), (sid(3), CloseReason::Removed)]);
    let mut host = net.recv(0, 1);
    host.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(host, vec![Seen::Left(2, "removed by the host".into()), Seen::Left(3, "removed by the host".into())]);
    net.send(1, 4, media(1, 3, false));
    assert_eq!(net.recv(0, 1), vec![Seen::Media(1)]);
}

#[test]
fn a_mute_reaches_only_its_target_and_an_end_closes_everyone() {
    let mut net = Net::new(2, RoomConfig::default());
    net.join(0, member(1, "host"));
    net.join(1, member(2, "bob"));
    net.join(1, member(3, "eve"));
    for (relay, s) in [(0, 1), (1, 2), (1, 3)] {
        net.recv(relay, s);
    }
    moderate(&mut net, 0, Moderation::Mute(UserId::parse("bob").unwrap()));
    assert_eq!(net.recv(1, 2), vec![Seen::Mute("bob".into())]);
    assert_eq!(net.recv(1, 3), vec![]);
    assert_eq!(net.recv(0, 1), vec![]);
    assert!(net.closed.is_empty());
    moderate(&mut net, 1, Moderation::End);
    net.closed.sort_by_key(|(s, _)| *s);
    let ended: Vec<_> = (1..=3).map(|s| (sid(s), CloseReason::Ended)).collect();
    assert_eq!(net.closed, ended);
    assert!(net.relays.iter().all(|r| !r.has_local()));
}

#[test]
fn moderation_from_a_client_session_is_ignored() {
    let mut net = Net::new(1, RoomConfig::default());
    net.join(0, member(1, "host"));
    net.join(0, member(2, "bob"));
    let forged = Moderation::End.to_packet();
    let d = net.relays[0].handle_bus(net.now, Some(sid(2)), forged);
    assert!(d.invalid);
    net.settle();
    assert!(net.closed.is_empty());
    assert_eq!(net.relays[0].local_count(), 2);
}

#[test]
fn a_sender_filling_its_share_of_a_receivers_control_queue_is_closed_and_the_receiver_kept() {
    let config = RoomConfig { outbox: OutboxLimits { max_packets: 256, max_bytes: 1 << 20 }, ..RoomConfig::default() };
    let share = 256 / crate::limits::CONTROL_SHARE_PER_SENDER;
    let mut net = Net::new(2, config);
    net.join(0, member(1, "victim"));
    net.join(0, member(2, "flooder"));
    net.join(1, member(3, "far-flooder"));
    net.join(0, member(4, "bystander"));
    for s in [1, 2, 4] {
        net.recv(0, s);
    }
    net.recv(1, 3);

    // A flooder on another relay: what goes over its share is refused here and counted; this
    // relay cannot close it (its own relay's send budget does).
    let mut refused = 0;
    for _ in 0..share + 5 {
        let (stamped, _) = crate::wire::stamp(&addressed(1), &UserId::parse("far").unwrap(), sid(3)).unwrap();
        refused += net.relays[0].handle_bus(net.now, Some(sid(3)), stamped).refused_over_share;
    }
    net.settle();
    assert_eq!(refused, 5);
    assert!(net.closed.is_empty());

    // A flooder on this relay is closed as soon as it goes over.
    for _ in 0..share + 1 {
        net.send(0, 2, addressed(1));
    }
    assert_eq!(net.closed, vec![(sid(2), CloseReason::Flooding)]);
    let victim = net.recv(0, 1);
    assert_eq!(victim.iter().filter(|s| **s == Seen::Key).count(), 2 * share, "each flooder got its share through");
    assert_eq!(victim.last(), Some(&Seen::Left(2, "sending too fast".into())));
    // The victim and everyone else carry on.
    net.send(0, 4, media(5, 10, false));
    assert_eq!(net.recv(0, 1), vec![Seen::Media(5)]);
    assert_eq!(net.recv(1, 3).last(), Some(&Seen::Media(5)));
}

// Simulcast forwarding.

/// A camera frame of `layer` (of three): its payload's first byte says layer and number.
fn camera(layer: u32, n: u8, keyframe: bool) -> Bytes {
    let mut w = PacketWrapper {
        packet_type: PacketType::MEDIA.into(),
        data: vec![layer as u8 * 100 + n],
        ..Default::default()
    };
    videocall_types::Route::video(videocall_types::MediaStream::STREAM_CAMERA, layer, 3, keyframe, u64::from(n))
        .apply(&mut w);
    Bytes::from(w.write_to_bytes().unwrap())
}

/// Every layer's frame `n` from `from`, as a three-layer sender sends them.
fn all_layers(net: &mut Net, relay: usize, from: u64, n: u8, keyframe: bool) {
    for layer in 0..3 {
        net.send(relay, from, camera(layer, n, keyframe));
    }
}

fn subscription(wants: &[(u64, Option<u32>)], camera_default: Option<u32>) -> Vec<u8> {
    use videocall_types::{LayerWant, MediaStream, Subscription};
    let want = |session: u64, w: Option<u32>| LayerWant {
        session,
        stream: MediaStream::STREAM_CAMERA.into(),
        max_layer: w.unwrap_or(0),
        off: w.is_none(),
        ..Default::default()
    };
    Subscription {
        wants: wants.iter().map(|(s, w)| want(*s, *w)).collect(),
        defaults: vec![want(0, camera_default)],
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

fn media_of(seen: Vec<Seen>) -> Vec<u8> {
    seen.into_iter()
        .filter_map(|s| match s {
            Seen::Media(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// One sender, a receiver of thumbnails and one that never subscribed (every largest layer).
fn grid() -> Net {
    let mut net = Net::new(1, RoomConfig::default());
    for (s, u) in [(1, "sender"), (2, "grid"), (3, "viewer")] {
        net.join(0, member(s, u));
    }
    net.relays[0].subscribe(net.now, sid(2), &subscription(&[], Some(0))).unwrap();
    net.settle();
    for s in 1..=3 {
        net.recv(0, s);
    }
    net.told.clear();
    net
}

#[test]
fn each_receiver_gets_one_layer_as_it_asked_and_the_sender_only_what_is_taken() {
    let mut net = grid();
    all_layers(&mut net, 0, 1, 1, true);
    all_layers(&mut net, 0, 1, 2, false);
    assert_eq!(media_of(net.recv(0, 2)), [1, 2], "the grid's thumbnail: layer 0 only");
    assert_eq!(media_of(net.recv(0, 3)), [201, 202], "no subscription: the largest layer");
    // The sender was told to encode layers 0 and 2 (and not 1, which nobody takes).
    net.recv(0, 1);
    assert_eq!(net.told.last().map(|t| t.1), Some(0b101), "{:?}", net.told);
    let d = net.relays[0].handle_bus(net.now, Some(sid(1)), camera(1, 3, false));
    assert_eq!((d.packets, d.other_layer), (0, 2), "a layer nobody takes goes nowhere");
}

#[test]
fn a_receiver_switches_layers_only_at_a_keyframe_and_the_sender_is_asked_for_one() {
    let mut net = grid();
    all_layers(&mut net, 0, 1, 1, true);
    net.recv(0, 2);
    net.recv(0, 1);
    net.told.clear();
    // A second later (the viewer's first keyframe request for layer 2 is a second old), the
    // grid pins the sender: it wants the largest layer now.
    net.now += limits::KEYFRAME_DEMAND_INTERVAL;
    net.relays[0].subscribe(net.now, sid(2), &subscription(&[(1, Some(2))], Some(0))).unwrap();
    net.settle();
    net.recv(0, 1);
    assert_eq!(net.told, [(1, 0b101, 0b100)], "layers 0 (still forwarded) and 2, a keyframe of 2 asked for");
    // Until the keyframe comes, the small layer keeps flowing: no black tile.
    all_layers(&mut net, 0, 1, 2, false);
    assert_eq!(media_of(net.recv(0, 2)), [2]);
    // The keyframe request is throttled: one a second per layer.
    net.told.clear();
    all_layers(&mut net, 0, 1, 3, false);
    net.recv(0, 1);
    assert!(net.told.is_empty(), "asked again within a second: {:?}", net.told);
    net.now += limits::KEYFRAME_DEMAND_INTERVAL;
    all_layers(&mut net, 0, 1, 4, false);
    net.recv(0, 1);
    assert_eq!(net.told, [(1, 0b101, 0b100)], "asked again after a second");
    net.recv(0, 2);
    // The large layer's keyframe: the switch. The small layer stops, and the sender is told
    // nobody takes it any more.
    net.told.clear();
    all_layers(&mut net, 0, 1, 5, true);
    all_layers(&mut net, 0, 1, 6, false);
    assert_eq!(media_of(net.recv(0, 2)), [5, 205, 206], "the small layer up to the large one's keyframe");
    assert_eq!(net.relays[0].forwarding().current(sid(2), sid(1), Kind::Camera), Some(2));
    net.recv(0, 1);
    assert_eq!(net.told.last().map(|t| t.1), Some(0b100));
}

#[test]
fn nobody_watching_is_told_to_the_sender_and_a_two_person_call_sends_one_layer() {
    let mut net = Net::new(1, RoomConfig::default());
    net.join(0, member(1, "alice"));
    net.join(0, member(2, "bob"));
    all_layers(&mut net, 0, 1, 1, true);
    net.recv(0, 1);
    assert_eq!(net.told.last().map(|t| t.1), Some(0b100), "two people: the top layer alone");
    assert_eq!(media_of(net.recv(0, 2)), [201]);
    // Bob shows nobody's camera (a screen share fills his page).
    net.relays[0].subscribe(net.now, sid(2), &subscription(&[], None)).unwrap();
    net.settle();
    net.recv(0, 1);
    // Told that nobody takes any layer (the sender keeps its last layers: a relay that has not
    // seen its video could not ask for it); nothing is forwarded.
    assert_eq!(net.told.last().map(|t| t.1), Some(0), "nobody takes any layer");
    all_layers(&mut net, 0, 1, 2, false);
    assert!(media_of(net.recv(0, 2)).is_empty());
}

#[test]
fn a_backed_up_receiver_steps_down_before_anything_is_dropped_and_back_up_when_clear() {
    let mut net = Net::new(1, RoomConfig::default());
    for (s, u) in [(1, "sender"), (2, "throttled"), (3, "fine")] {
        net.join(0, member(s, u));
    }
    let big = |layer: u32, n: u8, keyframe: bool| {
        let mut w = PacketWrapper::parse_from_bytes(&camera(layer, n, keyframe)).unwrap();
        w.data.resize(if layer == 2 { 20_000 } else { 2_000 }, 0);
        Bytes::from(w.write_to_bytes().unwrap())
    };
    // The throttled receiver drains nothing: its queue grows past the congestion mark.
    let mut n = 0u8;
    let mut send = |net: &mut Net, keyframe: bool| {
        n = n.wrapping_add(1);
        for layer in 0..3 {
            net.send(0, 1, big(layer, n, keyframe));
        }
        net.recv(0, 3);
    };
    send(&mut net, true);
    for _ in 0..7 {
        send(&mut net, false);
    }
    assert_eq!(net.relays[0].forwarding().cap(sid(2)), Some(1), "one layer down");
    assert_eq!(net.relays[0].forwarding().cap(sid(3)), Some(2), "the other receiver is not affected");
    send(&mut net, true);
    assert_eq!(net.relays[0].forwarding().current(sid(2), sid(1), Kind::Camera), Some(1), "switched at the keyframe");
    assert_eq!(net.relays[0].forwarding().current(sid(3), sid(1), Kind::Camera), Some(2));
    // Within the step interval, no second step even though the queue is still full.
    send(&mut net, false);
    assert_eq!(net.relays[0].forwarding().cap(sid(2)), Some(1));
    net.now += limits::LAYER_STEP_INTERVAL;
    send(&mut net, false);
    assert_eq!(net.relays[0].forwarding().cap(sid(2)), Some(0), "still backed up a second later: down again");
    let d = net.relays[0].handle_bus(net.now, Some(sid(1)), big(0, 99, false));
    assert_eq!(d.dropped.packets, 0, "nothing dropped on the way down");
    // The queue drains and stays clear: one step back up after the recovery time.
    net.recv(0, 2);
    send(&mut net, false);
    net.recv(0, 2);
    net.now += limits::LAYER_RECOVER_AFTER;
    send(&mut net, false);
    assert_eq!(net.relays[0].forwarding().cap(sid(2)), Some(1), "one step up after a clear spell");
    assert!(net.closed.is_empty());
}

#[test]
fn relays_combine_their_receivers_demand_for_a_sender_on_another_relay() {
    let mut net = Net::new(2, RoomConfig::default());
    net.join(0, member(1, "sender"));
    net.join(0, member(2, "viewer-here"));
    net.join(1, member(3, "grid-there"));
    net.relays[1].subscribe(net.now, sid(3), &subscription(&[], Some(0))).unwrap();
    net.settle();
    all_layers(&mut net, 0, 1, 1, true);
    net.recv(0, 1);
    assert_eq!(net.told.last().map(|t| t.1), Some(0b101), "relay 0 wants the top layer, relay 1 the smallest");
    assert_eq!(media_of(net.recv(0, 2)), [201]);
    assert_eq!(media_of(net.recv(1, 3)), [1], "relay 1 filters for its own receiver");
    // The grid leaves: relay 1 has nobody left who takes layer 0.
    assert!(net.relays[1].leave(sid(3)));
    net.settle();
    net.recv(0, 1);
    assert_eq!(net.told.last().map(|t| t.1), Some(0b100));
}

#[test]
fn a_gone_relays_demand_expires_and_a_hostile_demand_or_subscription_is_refused() {
    let mut net = Net::new(2, RoomConfig::default());
    net.join(0, member(1, "sender"));
    net.join(1, member(3, "grid-there"));
    net.relays[1].subscribe(net.now, sid(3), &subscription(&[], Some(0))).unwrap();
    net.settle();
    all_layers(&mut net, 0, 1, 1, true);
    net.recv(0, 1);
    assert_eq!(net.told.last().map(|t| t.1), Some(0b001));
    // Relay 1 falls off the bus: its demand is forgotten with its members.
    net.partitioned.push(1);
    for _ in 0..3 {
        let now = net.now;
        net.relays[0].touch(now, sid(1));
        net.advance(net.config.remote_member_timeout / 3);
    }
    net.recv(0, 1);
    assert_eq!(net.told.last().map(|t| t.1), Some(0), "{:?}", net.told);
    // A demand under a session's subject (a participant, or anyone on NATS posing as one).
    let demand = demand_packet(sid(1), forward::encode(7, sid(1), &[(0b111, 0b111), (0, 0)]));
    assert!(net.relays[0].handle_bus(net.now, Some(sid(3)), demand).invalid);
    // Subscriptions that are not one, or too long, are the sender's error.
    assert!(matches!(net.relays[0].subscribe(net.now, sid(1), b"\xff\xff"), Err(SubscriptionError::Malformed(_))));
    let many: Vec<(u64, Option<u32>)> = (1..=500).map(|s| (s, Some(0))).collect();
    assert!(matches!(
        net.relays[0].subscribe(net.now, sid(1), &subscription(&many, Some(0))),
        Err(SubscriptionError::TooMany { .. })
    ));
}
