//! Per-receiver forwarding of simulcast video, as a state machine with no I/O and no clock
//! reads.
//!
//! A sender encodes its camera in up to [`MAX_LAYERS`] layers, each sealed on its own with a
//! plaintext routing header (stream, layer, keyframe, frame counter) that the frame
//! authenticates. For each (receiver, sender, stream) this relay forwards one layer:
//! - the **target** is the largest layer the receiver asked for ([`Wants`], from its
//!   `Subscription`; the largest when it never sent one), no larger than the sender has, and no
//!   larger than the receiver's **cap**;
//! - the relay moves to the target only at a keyframe of it, forwarding the layer it had until
//!   then, and asks the sender for that keyframe (at most once per
//!   [`limits::KEYFRAME_DEMAND_INTERVAL`] per layer);
//! - the cap follows the receiver's queue: a queue that backs up lowers it one layer at a time
//!   before anything is dropped, a queue that stays clear raises it again. Other receivers are
//!   not affected.
//!
//! What every relay's receivers take of a sender (current and target layers, keyframes waited
//! for) goes on the bus as a `LayerDemand` from this relay; the sender's relay combines the
//! demands of all relays and tells the sender, which encodes only those layers. Audio and
//! packets that are no stream's frame are not filtered here.

use std::collections::BTreeMap;
use std::time::Instant;

use protobuf::Message as _;
use videocall_types::{LARGEST_LAYER, LayerDemand, MAX_LAYERS, MediaStream, Route, StreamDemand, Subscription};

use crate::{SessionId, limits};

/// A sender's video stream that has layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Camera,
    Screen,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Camera, Kind::Screen];

    /// The stream a routing header names, if it is one whose layers are chosen per receiver.
    pub fn of(route: &Route) -> Option<Kind> {
        route.stream.enum_value().ok().and_then(Self::from_proto)
    }

    fn from_proto(stream: MediaStream) -> Option<Kind> {
        match stream {
            MediaStream::STREAM_CAMERA => Some(Kind::Camera),
            MediaStream::STREAM_SCREEN => Some(Kind::Screen),
            _ => None,
        }
    }

    fn proto(self) -> MediaStream {
        match self {
            Kind::Camera => MediaStream::STREAM_CAMERA,
            Kind::Screen => MediaStream::STREAM_SCREEN,
        }
    }
}

const TOP: u32 = LARGEST_LAYER;

/// What a receiver asked for: per (sender, stream) the largest layer (`None`: nothing), and
/// for everyone it did not name, per stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wants {
    named: BTreeMap<(SessionId, Kind), Option<u32>>,
    defaults: [Option<u32>; 2],
}

impl Default for Wants {
    /// A receiver that never subscribed: every stream's largest layer.
    fn default() -> Self {
        Self { named: BTreeMap::new(), defaults: [Some(TOP); 2] }
    }
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    #[error("malformed Subscription: {0}")]
    Malformed(String),
    #[error("a subscription names {count} streams; at most {max}")]
    TooMany { count: usize, max: usize },
}

impl Wants {
    /// Reads a client's `Subscription`. Wants for session 0 and for streams without layers are
    /// ignored; layers beyond [`MAX_LAYERS`] mean the largest.
    pub fn parse(data: &[u8]) -> Result<Self, SubscriptionError> {
        let subscription =
            Subscription::parse_from_bytes(data).map_err(|e| SubscriptionError::Malformed(e.to_string()))?;
        let max = limits::MAX_PARTICIPANTS * Kind::ALL.len();
        if subscription.wants.len() > max {
            return Err(SubscriptionError::TooMany { count: subscription.wants.len(), max });
        }
        let mut wants = Self::default();
        let read = |w: &videocall_types::LayerWant| {
            let kind = w.stream.enum_value().ok().and_then(Kind::from_proto)?;
            Some((kind, if w.off { None } else { Some(w.max_layer.min(TOP)) }))
        };
        for w in &subscription.defaults {
            if let Some((kind, want)) = read(w) {
                wants.defaults[kind as usize] = want;
            }
        }
        for w in &subscription.wants {
            if let (Some((kind, want)), Some(session)) = (read(w), SessionId::new(w.session)) {
                wants.named.insert((session, kind), want);
            }
        }
        Ok(wants)
    }

    pub fn get(&self, sender: SessionId, kind: Kind) -> Option<u32> {
        self.named.get(&(sender, kind)).copied().unwrap_or(self.defaults[kind as usize])
    }
}

/// What one receiver gets of one sender's stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Track {
    /// The layer forwarded now (`None`: nothing yet, or nothing wanted).
    current: Option<u32>,
}

#[derive(Debug)]
struct Receiver {
    wants: Wants,
    /// The largest layer this receiver's queue can take.
    cap: u32,
    last_step: Option<Instant>,
    /// Since when the queue has been clear.
    clear_since: Option<Instant>,
    tracks: BTreeMap<(SessionId, Kind), Track>,
}

impl Receiver {
    fn new() -> Self {
        Self { wants: Wants::default(), cap: TOP, last_step: None, clear_since: None, tracks: BTreeMap::new() }
    }

    fn target(&self, sender: SessionId, kind: Kind, layers: Option<u32>) -> Option<u32> {
        let want = self.wants.get(sender, kind)?;
        let top = layers.map_or(TOP, |n| n.clamp(1, MAX_LAYERS) - 1);
        Some(want.min(self.cap).min(top))
    }

    /// Follows the queue: returns whether the cap moved.
    fn observe(&mut self, now: Instant, queued_bytes: usize, dropped: bool) -> bool {
        let stepped_recently = self.last_step.is_some_and(|t| now < t + limits::LAYER_STEP_INTERVAL);
        if dropped || queued_bytes > limits::RECEIVER_CONGESTED_BYTES {
            self.clear_since = None;
            if self.cap > 0 && !stepped_recently {
                self.cap -= 1;
                self.last_step = Some(now);
                return true;
            }
            return false;
        }
        if queued_bytes > limits::RECEIVER_CLEAR_BYTES {
            self.clear_since = None;
            return false;
        }
        let since = *self.clear_since.get_or_insert(now);
        if self.cap < TOP && now >= since + limits::LAYER_RECOVER_AFTER {
            self.cap += 1;
            self.last_step = Some(now);
            self.clear_since = Some(now);
            return true;
        }
        false
    }
}

/// What this relay knows of a sender's stream.
#[derive(Debug, Default, Clone, Copy)]
struct SenderStream {
    /// How many layers its packets say it has (`None` before the first one).
    layers: Option<u32>,
    last_keyframe_demand: [Option<Instant>; MAX_LAYERS as usize],
}

/// One relay's demand for one sender, per stream: (layers, keyframes) as bit masks.
pub type Demand = [(u32, u32); 2];

#[derive(Debug, Default)]
pub struct Forwarding {
    receivers: BTreeMap<SessionId, Receiver>,
    senders: BTreeMap<(SessionId, Kind), SenderStream>,
    /// What we last published of our receivers' demand per sender (layers only).
    published: BTreeMap<SessionId, [u32; 2]>,
    /// Senders whose demand must be worked out again.
    dirty: Vec<SessionId>,
    /// For this relay's senders: each relay's demand (layers) and when it was last heard.
    demands: BTreeMap<SessionId, BTreeMap<u64, ([u32; 2], Instant)>>,
    /// For this relay's senders: the combined layers last told to them.
    told: BTreeMap<SessionId, [u32; 2]>,
}

/// What the room must do after the forwarding changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardOutput {
    /// Publish this relay's demand for `sender` on the bus.
    Publish { sender: SessionId, demand: Demand },
    /// Tell a sender on this relay what all relays take of it.
    Tell { sender: SessionId, demand: Demand },
}

impl Forwarding {
    /// A receiver joined this relay: it gets every stream's largest layer until it subscribes.
    pub fn add_receiver(&mut self, session: SessionId) {
        self.receivers.insert(session, Receiver::new());
        self.mark_all();
    }

    /// A session of any relay left: as a receiver, its demand goes; as a sender, its state.
    pub fn forget(&mut self, session: SessionId) {
        if self.receivers.remove(&session).is_some() {
            self.mark_all();
        }
        for kind in Kind::ALL {
            self.senders.remove(&(session, kind));
        }
        for receiver in self.receivers.values_mut() {
            receiver.tracks.retain(|(sender, _), _| *sender != session);
        }
        self.published.remove(&session);
        self.demands.remove(&session);
        self.told.remove(&session);
        self.dirty.retain(|s| *s != session);
    }

    /// A receiver's subscription replaces what it asked before.
    pub fn subscribe(&mut self, receiver: SessionId, wants: Wants) {
        if let Some(r) = self.receivers.get_mut(&receiver) {
            r.wants = wants;
            self.mark_all();
        }
    }

    /// The layer `receiver` gets of `sender`'s `kind` stream now, if any.
    pub fn current(&self, receiver: SessionId, sender: SessionId, kind: Kind) -> Option<u32> {
        self.receivers.get(&receiver)?.tracks.get(&(sender, kind))?.current
    }

    /// The largest layer `receiver`'s queue takes now.
    pub fn cap(&self, receiver: SessionId) -> Option<u32> {
        self.receivers.get(&receiver).map(|r| r.cap)
    }

    /// The receiver's queue as a packet went in (`dropped`: media had to be dropped to fit).
    pub fn observe_queue(&mut self, now: Instant, receiver: SessionId, queued_bytes: usize, dropped: bool) {
        if let Some(r) = self.receivers.get_mut(&receiver)
            && r.observe(now, queued_bytes, dropped)
        {
            self.mark_all();
        }
    }

    /// A sender's frame on its way: whether `receiver` gets it.
    pub fn admit(&mut self, now: Instant, receiver: SessionId, sender: SessionId, kind: Kind, route: &Route) -> bool {
        let layers = Some(route.layer_count());
        let stream = self.senders.entry((sender, kind)).or_default();
        if stream.layers != layers {
            stream.layers = layers;
            self.mark(sender);
        }
        let Some(r) = self.receivers.get_mut(&receiver) else { return false };
        let target = r.target(sender, kind, layers);
        let track = r.tracks.entry((sender, kind)).or_default();
        let Some(target) = target else {
            if track.current.take().is_some() {
                self.mark(sender);
            }
            return false;
        };
        if route.layer == target && route.keyframe && track.current != Some(target) {
            track.current = Some(target);
            self.mark(sender);
            return true;
        }
        let forward = track.current == Some(route.layer);
        if track.current != Some(target) {
            // Waiting for the target's keyframe: ask again when the last ask is old.
            let stream = self.senders.entry((sender, kind)).or_default();
            if stream.last_keyframe_demand[target as usize].is_none_or(|t| now >= t + limits::KEYFRAME_DEMAND_INTERVAL)
            {
                self.mark(sender);
            }
        }
        forward
    }

    fn mark(&mut self, sender: SessionId) {
        if !self.dirty.contains(&sender) {
            self.dirty.push(sender);
        }
    }

    fn mark_all(&mut self) {
        let senders: Vec<SessionId> = self
            .senders
            .keys()
            .map(|(s, _)| *s)
            .chain(self.published.keys().copied())
            .chain(self.receivers.values().flat_map(|r| r.tracks.keys().map(|(s, _)| *s)))
            .collect();
        for sender in senders {
            self.mark(sender);
        }
    }

    /// Works out the demand of every sender marked since the last call: what changed, and
    /// keyframes asked for (`now`; none without it), to publish. Only senders whose video this
    /// relay has seen: one that sends none needs no demand, and one that starts sends its top
    /// layer until told.
    pub fn poll(&mut self, now: Option<Instant>, known: impl Fn(SessionId) -> bool) -> Vec<ForwardOutput> {
        let mut out = Vec::new();
        for sender in std::mem::take(&mut self.dirty) {
            let seen = Kind::ALL.iter().any(|k| self.senders.get(&(sender, *k)).is_some_and(|s| s.layers.is_some()));
            if !seen || !known(sender) {
                continue;
            }
            let demand = self.demand_of(now, sender);
            let layers = [demand[0].0, demand[1].0];
            let keyframes = demand.iter().any(|(_, k)| *k != 0);
            let before = self.published.get(&sender).copied().unwrap_or_default();
            if layers != before || keyframes {
                self.published.insert(sender, layers);
                out.push(ForwardOutput::Publish { sender, demand });
            }
        }
        out
    }

    /// This relay's receivers' demand for `sender`; keyframes asked for are recorded as asked.
    fn demand_of(&mut self, now: Option<Instant>, sender: SessionId) -> Demand {
        let mut demand: Demand = [(0, 0); 2];
        for kind in Kind::ALL {
            let layers = self.senders.get(&(sender, kind)).and_then(|s| s.layers);
            let (mut want, mut waiting) = (0u32, 0u32);
            for (id, r) in &self.receivers {
                if *id == sender {
                    continue;
                }
                let current = r.tracks.get(&(sender, kind)).and_then(|t| t.current);
                let Some(target) = r.target(sender, kind, layers) else { continue };
                want |= 1 << target;
                if let Some(c) = current {
                    want |= 1 << c;
                }
                if current != Some(target) {
                    waiting |= 1 << target;
                }
            }
            let stream = self.senders.entry((sender, kind)).or_default();
            // A stream not seen yet starts with a keyframe anyway.
            let Some(now) = now.filter(|_| layers.is_some()) else {
                demand[kind as usize] = (want, 0);
                continue;
            };
            let mut keyframes = 0;
            for layer in 0..MAX_LAYERS {
                let asked = &mut stream.last_keyframe_demand[layer as usize];
                if waiting & (1 << layer) != 0 && asked.is_none_or(|t| now >= t + limits::KEYFRAME_DEMAND_INTERVAL) {
                    *asked = Some(now);
                    keyframes |= 1 << layer;
                }
            }
            demand[kind as usize] = (want, keyframes);
        }
        demand
    }

    /// A relay's demand for `sender`, a session of this relay: returns what to tell it when the
    /// combined layers changed or a keyframe is asked for.
    pub fn on_demand(&mut self, now: Instant, origin: u64, sender: SessionId, demand: Demand) -> Option<ForwardOutput> {
        let layers = [demand[0].0, demand[1].0];
        self.demands.entry(sender).or_default().insert(origin, (layers, now));
        let combined = self.combined(sender);
        let keyframes = demand.iter().any(|(_, k)| *k != 0);
        if self.told.get(&sender) == Some(&combined) && !keyframes {
            return None;
        }
        self.told.insert(sender, combined);
        let demand = [(combined[0], demand[0].1), (combined[1], demand[1].1)];
        Some(ForwardOutput::Tell { sender, demand })
    }

    fn combined(&self, sender: SessionId) -> [u32; 2] {
        let mut combined = [0u32; 2];
        for (layers, _) in self.demands.get(&sender).into_iter().flat_map(|d| d.values()) {
            combined[0] |= layers[0];
            combined[1] |= layers[1];
        }
        combined
    }

    /// Forgets the demand of relays not heard from since `before` (gone); returns what to tell
    /// senders whose combined demand shrank. Republishes this relay's own non-empty demands
    /// (`refresh`), so that the others keep it.
    pub fn expire(&mut self, before: Instant, refresh: bool) -> Vec<ForwardOutput> {
        let mut out = Vec::new();
        let senders: Vec<SessionId> = self.demands.keys().copied().collect();
        for sender in senders {
            let Some(by_origin) = self.demands.get_mut(&sender) else { continue };
            by_origin.retain(|_, (_, heard)| *heard > before);
            let combined = self.combined(sender);
            if self.told.get(&sender).is_some_and(|t| *t != combined) {
                self.told.insert(sender, combined);
                out.push(ForwardOutput::Tell { sender, demand: [(combined[0], 0), (combined[1], 0)] });
            }
        }
        if refresh {
            for (sender, layers) in &self.published {
                if layers.iter().any(|l| *l != 0) {
                    out.push(ForwardOutput::Publish { sender: *sender, demand: [(layers[0], 0), (layers[1], 0)] });
                }
            }
        }
        out
    }
}

/// A `LayerDemand` for the wire.
pub fn encode(origin: u64, sender: SessionId, demand: &Demand) -> Vec<u8> {
    let mut packet = LayerDemand::new();
    packet.origin = origin;
    packet.sender = sender.get();
    for kind in Kind::ALL {
        let (layers, keyframes) = demand[kind as usize];
        if layers != 0 || keyframes != 0 {
            let mut stream = StreamDemand::new();
            stream.stream = kind.proto().into();
            (stream.layers, stream.keyframes) = (layers, keyframes);
            packet.streams.push(stream);
        }
    }
    packet.write_to_bytes().unwrap_or_default()
}

/// A `LayerDemand` from the bus: (origin, sender, demand).
pub fn decode(data: &[u8]) -> Option<(u64, SessionId, Demand)> {
    let packet = LayerDemand::parse_from_bytes(data).ok()?;
    let sender = SessionId::new(packet.sender)?;
    let mut demand: Demand = [(0, 0); 2];
    let all = (1 << MAX_LAYERS) - 1;
    for stream in &packet.streams {
        if let Some(kind) = stream.stream.enum_value().ok().and_then(Kind::from_proto) {
            let d = &mut demand[kind as usize];
            d.0 |= stream.layers & all;
            d.1 |= stream.keyframes & all;
        }
    }
    Some((packet.origin, sender, demand))
}
