//! The async driver: runs [`Room`] state machines over a [`RoomBus`] for any transport.
//!
//! A transport adapter (WebSocket, WebTransport) verifies the token, calls [`Relay::join`], then
//! moves bytes: client packets into [`SessionHandle::publish`], and packets from
//! [`SessionHandle::recv_batch`] out to the client, until either side ends.
//!
//! Rooms are sharded: each has its own lock, and delivery runs in whichever task delivers the
//! bus message (the sender's task with [`crate::LocalBus`], the room's subscription task with
//! NATS), while every session writes to its own socket from its own task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use protobuf::Message as _;
use tokio::sync::{Notify, OnceCell, mpsc};
use videocall_types::{MediaStream, PacketType, PacketWrapper, RoomId, UserId, limits::MAX_PACKET_BYTES};

use crate::budget::{BudgetLimits, OverBudget, SendBudget};
use crate::bus::{BusError, BusSink, BusSubscription, RoomBus, SealError};
use crate::room::{CloseReason, JoinError, Member, Moderation, Room, RoomConfig, RoomOutput, SubscriptionError};
use crate::wire::{self, WireError};
use crate::{RelayMetrics, RoomToken, SessionId, limits};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub room: RoomConfig,
    /// Largest packet a client may send.
    pub max_packet_bytes: usize,
    /// What one session may send a second.
    pub budget: BudgetLimits,
    /// Sessions this relay holds at most, all rooms together.
    pub max_sessions: usize,
    /// Rooms this relay serves at most.
    pub max_rooms: usize,
    /// Sessions from one client address at most.
    pub max_sessions_per_address: usize,
    /// How often rooms check heartbeats and refresh presence.
    pub tick: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            room: RoomConfig::default(),
            max_packet_bytes: MAX_PACKET_BYTES,
            budget: BudgetLimits::default(),
            max_sessions: limits::MAX_SESSIONS,
            max_rooms: limits::MAX_ROOMS,
            max_sessions_per_address: limits::MAX_SESSIONS_PER_ADDRESS,
            tick: Duration::from_millis(250),
        }
    }
}

/// Why a client's packet was refused. Each is a protocol violation: the adapter closes the
/// connection with the matching close code and this text as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("{0}")]
    Malformed(WireError),
    #[error("{0}")]
    UnknownType(WireError),
    #[error("clients may not send {0:?} packets")]
    NotAllowed(PacketType),
    #[error("sending too fast: {0}")]
    OverBudget(OverBudget),
    #[error("{0}")]
    Subscription(SubscriptionError),
}

impl SessionError {
    /// The metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "oversized",
            Self::Malformed(_) => "malformed",
            Self::UnknownType(_) => "unknown_type",
            Self::NotAllowed(_) => "not_allowed",
            Self::OverBudget(_) => "over_budget",
            Self::Subscription(_) => "bad_subscription",
        }
    }

    /// The close code both transports use: RFC 6455's for size (1009), invalid data (1007)
    /// and policy (1008); a flood closes as the relay closes a sender that fills others' queues.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 1009,
            Self::Malformed(_) | Self::Subscription(_) => 1007,
            Self::UnknownType(_) | Self::NotAllowed(_) => 1008,
            Self::OverBudget(_) => CloseReason::Flooding.close_code(),
        }
    }
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinFailure {
    #[error(transparent)]
    Room(#[from] JoinError),
    #[error("room bus unavailable: {0}")]
    Bus(#[from] BusError),
    #[error("the host removed this participant, or the meeting has ended")]
    Revoked,
    #[error("this token has opened a session already: ask for a new one")]
    TokenUsed,
    #[error("could not check the token against revocations: {0}")]
    RevocationCheck(String),
    #[error("this relay holds as many sessions as it may ({max})")]
    TooManySessions { max: usize },
    #[error("this relay serves as many rooms as it may ({max})")]
    TooManyRooms { max: usize },
    #[error("{max} connections from this address already")]
    TooManyFromAddress { max: usize },
}

impl JoinFailure {
    /// The refusal's code, in `connections_refused{reason}` and HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Room(JoinError::RoomFull { .. }) => "room_full",
            Self::Room(_) => "join_refused",
            Self::Bus(_) => "bus_unavailable",
            Self::Revoked => "token_revoked",
            Self::TokenUsed => "token_used",
            Self::RevocationCheck(_) => "revocation_check_failed",
            Self::TooManySessions { .. } => "server_full",
            Self::TooManyRooms { .. } => "too_many_rooms",
            Self::TooManyFromAddress { .. } => "too_many_connections",
        }
    }
}

/// Sessions held, in all and per client address.
#[derive(Default)]
struct Seats {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One session's seat, given back when dropped.
struct Seat {
    relay: Weak<Inner>,
    address: IpAddr,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let Some(relay) = self.relay.upgrade() else { return };
        let mut seats = relay.seats.lock();
        seats.total = seats.total.saturating_sub(1);
        if let Some(count) = seats.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                seats.by_address.remove(&self.address);
            }
        }
    }
}

/// Whether a token, valid by its signature and expiry, has been withdrawn since it was issued:
/// its user removed from the room by the host, or the room's meeting ended. The servers answer
/// it from the shared database, so a removal made through any server holds on every relay.
pub trait Revocations: Send + Sync + 'static {
    fn is_revoked<'a>(&'a self, room: &'a RoomId, user: &'a UserId) -> BoxFuture<'a, Result<bool, String>>;

    /// Records that the token `token_id` (valid until `expires_at`, seconds since the Unix
    /// epoch) opens a session; false when it already has, here or on any relay sharing the
    /// database. A room token opens one session: the client asks for a new one for each
    /// connection, so a copied token (a proxy log, a shared screen) opens nothing, and one whose
    /// session ended, however it ended, is dead.
    fn claim<'a>(&'a self, token_id: &'a str, expires_at: u64) -> BoxFuture<'a, Result<bool, String>>;
}

/// A relay process's rooms. Cheap to clone; needs a tokio runtime.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    origin: u64,
    config: RelayConfig,
    bus: Arc<dyn RoomBus>,
    rooms: Mutex<HashMap<RoomId, Arc<RoomSlot>>>,
    metrics: Arc<RelayMetrics>,
    epoch: Instant,
    /// Publishes that arise where nothing can await (bus delivery, session drop), in order.
    control: mpsc::Sender<(RoomId, Option<SessionId>, Bytes)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    revocations: OnceLock<Arc<dyn Revocations>>,
    seats: Mutex<Seats>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct RoomSlot {
    id: RoomId,
    state: Mutex<RoomState>,
    subscription: OnceCell<BusSubscription>,
}

struct RoomState {
    room: Room,
    /// Another relay serves the room (its members are known here): media goes on the bus. Read
    /// without the room's lock on every packet a client sends; set after every change.
    elsewhere: Arc<AtomicBool>,
    signals: HashMap<SessionId, Arc<SessionSignal>>,
    /// Set when the room left the relay's map; a joiner holding this slot must start over.
    retired: bool,
}

#[derive(Default)]
struct SessionSignal {
    notify: Notify,
    closed: Mutex<Option<CloseReason>>,
}

/// Relay-originated publishes to make, collected under a room lock and made after it.
type Publishes = Vec<(Option<SessionId>, Bytes)>;

impl Relay {
    /// Starts the relay's background tasks on the current tokio runtime.
    pub fn new(bus: Arc<dyn RoomBus>, config: RelayConfig, metrics: Arc<RelayMetrics>) -> Self {
        let (control, control_rx) = mpsc::channel(4096);
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let tasks = vec![
                tokio::spawn(control_task(bus.clone(), metrics.clone(), control_rx)),
                tokio::spawn(tick_task(weak.clone(), config.tick)),
            ];
            Inner {
                origin: rand::random(),
                config,
                bus,
                rooms: Mutex::new(HashMap::new()),
                seats: Mutex::new(Seats::default()),
                metrics,
                epoch: Instant::now(),
                control,
                tasks,
                revocations: OnceLock::new(),
            }
        });
        Self { inner }
    }

    pub fn metrics(&self) -> &Arc<RelayMetrics> {
        &self.inner.metrics
    }

    pub fn config(&self) -> &RelayConfig {
        &self.inner.config
    }

    /// True while the bus can carry packets.
    pub fn is_ready(&self) -> bool {
        self.inner.bus.is_ready()
    }

    pub fn bus_kind(&self) -> &'static str {
        self.inner.bus.kind()
    }

    /// Everyone in a room as this relay knows it.
    pub fn members(&self, room: &RoomId) -> Vec<Member> {
        let slot = self.inner.rooms.lock().get(room).cloned();
        slot.map(|s| s.state.lock().room.members()).unwrap_or_default()
    }

    /// From now on, joins are checked against `revocations` (once; later calls are ignored).
    pub fn set_revocations(&self, revocations: Arc<dyn Revocations>) {
        let _ = self.inner.revocations.set(revocations);
    }

    /// Carries out a host's action on every relay serving the room, this one included.
    pub async fn moderate(&self, room: &RoomId, action: &Moderation) -> Result<(), BusError> {
        self.inner.bus.publish(room, None, action.to_packet()).await
    }

    async fn claim(&self, token: &RoomToken) -> Result<(), JoinFailure> {
        let Some(revocations) = self.inner.revocations.get() else { return Ok(()) };
        match revocations.claim(&token.id, token.expires_at).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JoinFailure::TokenUsed),
            Err(e) => Err(JoinFailure::RevocationCheck(e)),
        }
    }

    async fn check_revoked(&self, token: &RoomToken) -> Result<(), JoinFailure> {
        let Some(revocations) = self.inner.revocations.get() else { return Ok(()) };
        match revocations.is_revoked(&token.room, &token.user).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(JoinFailure::Revoked),
            Err(e) => Err(JoinFailure::RevocationCheck(e)),
        }
    }

    /// Joins the room the token grants as a new session for a client at `address`, unless the
    /// token was revoked or the relay is at one of its caps. The token is checked before
    /// joining, and again once the session can hear the room's moderation: a removal committed
    /// between the two is refused by the second check, and one committed after it reaches the
    /// session on the bus.
    pub async fn join(&self, token: &RoomToken, address: IpAddr) -> Result<SessionHandle, JoinFailure> {
        let seat = self.take_seat(address)?;
        self.check_revoked(token).await?;
        self.claim(token).await?;
        let handle = self.join_unchecked(token, seat).await?;
        self.check_revoked(token).await?;
        Ok(handle)
    }

    fn take_seat(&self, address: IpAddr) -> Result<Seat, JoinFailure> {
        let config = &self.inner.config;
        let mut seats = self.inner.seats.lock();
        if seats.total >= config.max_sessions {
            return Err(JoinFailure::TooManySessions { max: config.max_sessions });
        }
        // Looked up, not inserted: a refused address leaves nothing behind.
        if seats.by_address.get(&address).copied().unwrap_or(0) >= config.max_sessions_per_address {
            return Err(JoinFailure::TooManyFromAddress { max: config.max_sessions_per_address });
        }
        *seats.by_address.entry(address).or_default() += 1;
        seats.total += 1;
        Ok(Seat { relay: Arc::downgrade(&self.inner), address })
    }

    async fn join_unchecked(&self, token: &RoomToken, seat: Seat) -> Result<SessionHandle, JoinFailure> {
        let session = SessionId::random();
        let member = Member { session, user: token.user.clone(), name: token.name.clone(), recorder: token.recorder };
        let signal = Arc::new(SessionSignal::default());
        let (slot, elsewhere, publishes) = loop {
            let slot = self.slot(&token.room)?;
            let sink = Arc::new(RoomSink { slot: Arc::downgrade(&slot), relay: Arc::downgrade(&self.inner) });
            slot.subscription.get_or_try_init(|| self.inner.bus.subscribe(&token.room, sink)).await?;
            let mut state = slot.state.lock();
            if state.retired {
                continue;
            }
            state.room.join(Instant::now(), member.clone())?;
            state.signals.insert(session, signal.clone());
            let publishes = self.inner.apply_outputs(&mut state);
            let elsewhere = state.elsewhere.clone();
            drop(state);
            break (slot, elsewhere, publishes);
        };
        self.inner.metrics.sessions.inc();
        for (from, payload) in publishes {
            // Presence must precede the session's first packet, so it is published right here.
            self.inner.publish(&slot.id, from, payload).await;
        }
        Ok(SessionHandle {
            relay: self.clone(),
            slot,
            elsewhere,
            member,
            signal,
            last_touch_ms: AtomicU64::new(0),
            budget: Mutex::new(SendBudget::new(Instant::now(), self.inner.config.budget)),
            _seat: seat,
            end_label: CloseReason::Left.as_str(),
        })
    }

    /// The room's slot, made if this relay does not serve it yet and may serve one more.
    fn slot(&self, room: &RoomId) -> Result<Arc<RoomSlot>, JoinFailure> {
        let mut rooms = self.inner.rooms.lock();
        let max = self.inner.config.max_rooms;
        if !rooms.contains_key(room) && rooms.len() >= max {
            return Err(JoinFailure::TooManyRooms { max });
        }
        let slot = rooms.entry(room.clone()).or_insert_with(|| {
            self.inner.metrics.rooms.inc();
            Arc::new(RoomSlot {
                id: room.clone(),
                state: Mutex::new(RoomState {
                    room: Room::new(room.clone(), self.inner.origin, self.inner.config.room),
                    elsewhere: Arc::default(),
                    signals: HashMap::new(),
                    retired: false,
                }),
                subscription: OnceCell::new(),
            })
        });
        Ok(slot.clone())
    }
}

impl Inner {
    /// Carries out a room's outputs under its lock; returns the publishes to make after it.
    fn apply_outputs(&self, state: &mut RoomState) -> Publishes {
        state.elsewhere.store(state.room.served_elsewhere(), Ordering::Relaxed);
        let mut publishes = Vec::new();
        while let Some(output) = state.room.poll_output() {
            match output {
                RoomOutput::Publish { from, payload } => publishes.push((from, payload)),
                RoomOutput::Wake(session) => {
                    if let Some(signal) = state.signals.get(&session) {
                        signal.notify.notify_one();
                    }
                }
                RoomOutput::Close { session, reason } => {
                    if let Some(signal) = state.signals.remove(&session) {
                        *signal.closed.lock() = Some(reason);
                        signal.notify.notify_one();
                        self.metrics.sessions.dec();
                        self.metrics.closed(reason.as_str());
                    }
                }
            }
        }
        publishes
    }

    /// Hands relay-originated publishes to the control task, which makes them in order.
    fn publish_later(&self, room: &RoomId, publishes: Publishes) {
        for (from, payload) in publishes {
            if self.control.try_send((room.clone(), from, payload)).is_err() {
                self.metrics.dropped("control_queue_full", 1);
            }
        }
    }

    async fn publish(&self, room: &RoomId, from: Option<SessionId>, payload: Bytes) {
        publish_measured(&*self.bus, &self.metrics, room, from, payload).await;
    }

    /// A client's media of a room no other relay serves: to this relay's sessions only.
    async fn publish_here(&self, room: &RoomId, from: SessionId, payload: Bytes) {
        self.metrics.media_kept_here.inc();
        if let Err(e) = self.bus.publish_here(room, Some(from), payload).await {
            self.metrics.dropped("bus_unavailable", 1);
            tracing::debug!(room = %room, error = %e, "in-process delivery failed");
        }
    }

    /// Removes a room that has no local session left, unless someone joined meanwhile.
    fn retire_if_empty(&self, slot: &Arc<RoomSlot>) {
        {
            let mut state = slot.state.lock();
            if state.room.has_local() || state.retired {
                return;
            }
            state.retired = true;
        }
        let mut rooms = self.rooms.lock();
        if rooms.get(&slot.id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            rooms.remove(&slot.id);
            self.metrics.rooms.dec();
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

async fn publish_measured(
    bus: &dyn RoomBus,
    metrics: &RelayMetrics,
    room: &RoomId,
    from: Option<SessionId>,
    payload: Bytes,
) -> bool {
    let started = Instant::now();
    let result = bus.publish(room, from, payload).await;
    metrics.bus_publish_seconds.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => true,
        Err(e) => {
            metrics.dropped("bus_unavailable", 1);
            tracing::debug!(room = %room, error = %e, "bus publish failed");
            false
        }
    }
}

async fn control_task(
    bus: Arc<dyn RoomBus>,
    metrics: Arc<RelayMetrics>,
    mut rx: mpsc::Receiver<(RoomId, Option<SessionId>, Bytes)>,
) {
    while let Some((room, from, payload)) = rx.recv().await {
        publish_measured(&*bus, &metrics, &room, from, payload).await;
    }
}

/// Heartbeats, remote-member expiry and presence refresh for every room.
async fn tick_task(relay: Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = relay.upgrade() else { return };
        inner.metrics.bus_ready.set(i64::from(inner.bus.is_ready()));
        let slots: Vec<Arc<RoomSlot>> = inner.rooms.lock().values().cloned().collect();
        let now = Instant::now();
        for slot in slots {
            let publishes = {
                let mut state = slot.state.lock();
                if state.room.poll_timeout().is_some_and(|due| due > now) {
                    continue;
                }
                state.room.handle_timeout(now);
                inner.apply_outputs(&mut state)
            };
            for (from, payload) in publishes {
                inner.publish(&slot.id, from, payload).await;
            }
            inner.retire_if_empty(&slot);
        }
    }
}

/// Delivers a room's bus messages into its state machine.
struct RoomSink {
    slot: Weak<RoomSlot>,
    relay: Weak<Inner>,
}

impl BusSink for RoomSink {
    fn deliver(&self, from: Option<SessionId>, payload: Bytes) {
        let (Some(slot), Some(relay)) = (self.slot.upgrade(), self.relay.upgrade()) else { return };
        let (delivery, publishes, emptied) = {
            let mut state = slot.state.lock();
            let delivery = state.room.handle_bus(Instant::now(), from, payload);
            let publishes = relay.apply_outputs(&mut state);
            (delivery, publishes, !state.room.has_local())
        };
        if delivery.invalid {
            relay.metrics.dropped("invalid_from_bus", 1);
        }
        if delivery.dropped.packets > 0 {
            relay.metrics.dropped("slow_receiver", delivery.dropped.packets);
        }
        if delivery.refused_over_share > 0 {
            relay.metrics.dropped("sender_over_share", delivery.refused_over_share);
        }
        if delivery.other_layer > 0 {
            relay.metrics.layer_skipped.inc_by(delivery.other_layer);
        }
        relay.publish_later(&slot.id, publishes);
        if emptied {
            relay.retire_if_empty(&slot);
        }
    }

    fn refuse(&self, why: SealError) {
        if let Some(relay) = self.relay.upgrade() {
            relay.metrics.dropped(why.label(), 1);
        }
    }
}

/// A client's packet, checked: to publish to the room, or a subscription for this relay.
enum Stamped {
    /// `media`: a frame of a stream (camera, screen, audio), which only receivers want.
    Publish {
        stamped: Bytes,
        media: bool,
    },
    Subscription(Vec<u8>),
}

/// One client's membership of a room. Dropping it leaves the room.
pub struct SessionHandle {
    relay: Relay,
    slot: Arc<RoomSlot>,
    /// The room's: another relay serves it, so our media goes on the bus.
    elsewhere: Arc<AtomicBool>,
    member: Member,
    signal: Arc<SessionSignal>,
    last_touch_ms: AtomicU64,
    budget: Mutex<SendBudget>,
    _seat: Seat,
    /// The `sessions_closed` label recorded when the client side ends the session.
    end_label: &'static str,
}

impl SessionHandle {
    pub fn id(&self) -> SessionId {
        self.member.session
    }

    pub fn room(&self) -> &RoomId {
        &self.slot.id
    }

    pub fn user(&self) -> &UserId {
        &self.member.user
    }

    /// Validates a packet from the client, stamps the sender identity from the token, and
    /// publishes it to the room. A bus failure is counted and is not the client's error.
    pub async fn publish(&self, packet: &[u8]) -> Result<(), SessionError> {
        let inner = &self.relay.inner;
        let result = self.stamp(packet);
        let stamped = match result {
            Ok(stamped) => stamped,
            Err(e) => {
                inner.metrics.rejected(e.reason());
                return Err(e);
            }
        };
        inner.metrics.packets_in.inc();
        inner.metrics.bytes_in.inc_by(packet.len() as u64);
        self.touch();
        match stamped {
            // Media nobody on another relay takes stays here; everything else (keys, presence,
            // heartbeats, chat) always goes on the bus.
            Stamped::Publish { stamped, media: true } if !self.elsewhere.load(Ordering::Relaxed) => {
                inner.publish_here(&self.slot.id, self.member.session, stamped).await;
            }
            Stamped::Publish { stamped, .. } => inner.publish(&self.slot.id, Some(self.member.session), stamped).await,
            Stamped::Subscription(data) => self.subscribe(&data)?,
        }
        Ok(())
    }

    /// The client's subscription, for this relay alone: it never goes on the bus.
    fn subscribe(&self, data: &[u8]) -> Result<(), SessionError> {
        let inner = &self.relay.inner;
        let publishes = {
            let mut state = self.slot.state.lock();
            let result = state.room.subscribe(Instant::now(), self.member.session, data);
            let publishes = inner.apply_outputs(&mut state);
            result.map(|()| publishes)
        };
        let publishes = publishes.map_err(|e| {
            inner.metrics.rejected("bad_subscription");
            SessionError::Subscription(e)
        })?;
        inner.publish_later(&self.slot.id, publishes);
        Ok(())
    }

    fn stamp(&self, packet: &[u8]) -> Result<Stamped, SessionError> {
        let max = self.relay.inner.config.max_packet_bytes;
        if packet.len() > max {
            return Err(SessionError::TooLarge { len: packet.len(), max });
        }
        let (stamped, header) = wire::stamp(packet, &self.member.user, self.member.session).map_err(|e| match e {
            WireError::UnknownPacketType(_) => SessionError::UnknownType(e),
            e => SessionError::Malformed(e),
        })?;
        // Presence, moderation and layer demands are the relays' own; no client sends
        // CONNECTION packets.
        if matches!(
            header.packet_type,
            PacketType::PRESENCE | PacketType::MODERATION | PacketType::CONNECTION | PacketType::LAYER_DEMAND
        ) {
            return Err(SessionError::NotAllowed(header.packet_type));
        }
        self.budget
            .lock()
            .charge(Instant::now(), header.packet_type, packet.len())
            .map_err(SessionError::OverBudget)?;
        if header.packet_type == PacketType::SUBSCRIPTION {
            let data = PacketWrapper::parse_from_bytes(packet)
                .map_err(|e| SessionError::Subscription(SubscriptionError::Malformed(e.to_string())))?
                .data;
            return Ok(Stamped::Subscription(data));
        }
        let media = header.route.stream.value() != MediaStream::STREAM_NONE as i32;
        Ok(Stamped::Publish { stamped, media })
    }

    /// Records that the client is alive (any frame, a pong included). Takes the room lock at
    /// most once per [`limits::TOUCH_INTERVAL`].
    pub fn touch(&self) {
        let inner = &self.relay.inner;
        let now_ms = inner.now_ms();
        let last = self.last_touch_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < limits::TOUCH_INTERVAL.as_millis() as u64 {
            return;
        }
        self.last_touch_ms.store(now_ms.max(1), Ordering::Relaxed);
        self.slot.state.lock().room.touch(Instant::now(), self.member.session);
    }

    /// Waits until packets are waiting for this client and moves up to a batch of them into
    /// `out`. `Err` when the relay ended the session, with the reason.
    pub async fn recv_batch(&self, out: &mut Vec<Bytes>) -> Result<(), CloseReason> {
        loop {
            if let Some(reason) = *self.signal.closed.lock() {
                return Err(reason);
            }
            self.slot.state.lock().room.drain(self.member.session, out, limits::DRAIN_BATCH);
            if !out.is_empty() {
                let metrics = &self.relay.inner.metrics;
                metrics.packets_out.inc_by(out.len() as u64);
                metrics.bytes_out.inc_by(out.iter().map(|p| p.len() as u64).sum());
                return Ok(());
            }
            self.signal.notify.notified().await;
        }
    }

    /// Leaves the room, recording `label` (a protocol violation, say) as why the session ended.
    /// Dropping the handle leaves as "left".
    pub fn finish(mut self, label: &'static str) {
        self.end_label = label;
    }

    /// Why the relay ended this session, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.signal.closed.lock()
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let inner = &self.relay.inner;
        let publishes = {
            let mut state = self.slot.state.lock();
            if state.signals.remove(&self.member.session).is_some() {
                inner.metrics.sessions.dec();
                inner.metrics.closed(self.end_label);
            }
            state.room.leave(self.member.session);
            inner.apply_outputs(&mut state)
        };
        inner.publish_later(&self.slot.id, publishes);
        inner.retire_if_empty(&self.slot);
    }
}
