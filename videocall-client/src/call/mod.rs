//! The call engine: everything a participant's client decides, for the web client and the bot
//! alike, as one state machine. Bytes from the transport in ([`Engine::handle_bytes`]), bytes
//! to send out ([`Engine::poll_transmit`]); encoded media in ([`Engine::send_video`],
//! [`Engine::send_audio`]); what to decode, play, show and ask the encoders for out
//! ([`Engine::poll_output`]); the time it next needs waking ([`Engine::poll_timeout`]). No
//! sockets, no clock reads, no browser: an adapter owns the engine in one task and feeds it.
//!
//! On top of the end-to-end encryption state ([`PeerState`]) it owns:
//! - the connection's life: connecting, reconnecting with backoff (each attempt a new
//!   generation, so events of an older transport are ignored), closes that are final, leaving;
//! - the media packets: sequence numbers per stream, heartbeats once a second with our media
//!   state, their answers (round trip, the loss each receiver reports), keyframe requests
//!   (throttled per peer and stream), chat;
//! - the bitrate ladder, moved by the loss receivers report and our send queue;
//! - simulcast: the camera's layers, run as the relays' demand says, each frame sealed with its
//!   routing header; what we show, told to our relay as a subscription.

mod ladder;
mod layout;
mod loss;
mod simulcast;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use protobuf::{Message as _, MessageField};
use rand_core::CryptoRngCore;
use videocall_types::{
    AudioMetadata, CloseReason, HeartbeatMetadata, LayerDemand, MAX_LAYERS, MediaPacket, MediaType, PacketType,
    PacketWrapper, Route, VideoMetadata,
};

pub use ladder::{Ladder, QUEUE_HOLD_VIDEO_BYTES, RUNGS, Rung};
pub use layout::{GRID_PAGE, Layout, Mode, STRIP_PAGE, Stage, want_for_width};
pub use loss::SequenceLoss;
pub use simulcast::{LOWER_LAYERS, LayerSpec, SendLayers, View, Want, demand_for, frame_due, lower_layers};

use crate::Millis;
use crate::crypto::{IdentityPublic, LocalIdentity, OpenError};
use crate::messages;
use crate::packets::PacketError;
use crate::peers::{Done, Event, PeerState, Work};

/// Backoff after a failed attempt or a drop: 0.5 s doubling to 8 s, then every 8 s. Quick
/// enough that a relay restart costs a second or two, slow enough that a server that is down
/// is not hammered by every page that was in a call.
pub const BACKOFF_MS: [u32; 5] = [500, 1_000, 2_000, 4_000, 8_000];

/// Heartbeats (our media state, and the round trip from their answers) and ladder steps: once
/// a second, what the ladder's step sizes assume.
pub const TICK_MS: Millis = 1_000;

/// At most one keyframe request per peer and stream this often: the answer needs a round trip,
/// and a keyframe costs the sender (and everyone receiving it) five to ten delta frames.
pub const KEYFRAME_REQUEST_INTERVAL_MS: Millis = 1_000;

/// Longest chat line shown: a hostile participant cannot fill a page with one message.
pub const MAX_CHAT_CHARS: usize = 4_000;

#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    WebTransport,
    WebSocket,
}

impl TransportKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::WebTransport => "WebTransport",
            Self::WebSocket => "WebSocket",
        }
    }
}

/// The connection, as the page shows it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Idle,
    Connecting {
        attempt: u32,
    },
    Connected {
        transport: TransportKind,
    },
    /// Lost; trying again after `delay_ms`.
    Reconnecting {
        attempt: u32,
        delay_ms: u32,
        reason: String,
    },
    /// Over for good (left, removed, replaced by a newer tab, the meeting ended).
    Closed {
        reason: String,
    },
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Worth another try after a pause (the network, the server restarting, the host has not
    /// let us in yet).
    Retry(String),
    /// Over: removed, rejected, the meeting ended.
    Final(String),
}

/// A camera or a screen share.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoStream {
    Camera,
    Screen,
}

impl VideoStream {
    fn index(self) -> usize {
        match self {
            Self::Camera => 0,
            Self::Screen => 1,
        }
    }

    fn media_type(self) -> MediaType {
        match self {
            Self::Camera => MediaType::VIDEO,
            Self::Screen => MediaType::SCREEN,
        }
    }
}

/// One encoded video frame of ours.
#[derive(Debug, Clone, Default)]
pub struct EncodedVideo {
    pub codec: String,
    /// The simulcast layer it was encoded for (0 the smallest).
    pub layer: u32,
    pub keyframe: bool,
    pub data: Vec<u8>,
    /// Microseconds, as WebCodecs counts.
    pub timestamp_us: f64,
    pub duration_us: f64,
    pub width: u32,
    pub height: u32,
    /// Wall-clock milliseconds at capture: receivers measure glass-to-glass from it.
    pub capture_ms: f64,
}

/// One encoded Opus packet of ours.
#[derive(Debug, Clone, Default)]
pub struct EncodedAudio {
    pub data: Vec<u8>,
    pub timestamp_us: f64,
    pub duration_us: f64,
    pub sample_rate: u32,
    pub channels: u32,
}

/// A peer's video frame, opened, for the adapter's decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingVideo {
    pub session: u64,
    pub stream: VideoStream,
    /// The sender's simulcast layer the relay forwards us (0 the smallest).
    pub layer: u32,
    pub codec: String,
    pub keyframe: bool,
    /// A slice of the opened packet: never copied on the way here.
    pub data: Bytes,
    pub timestamp_us: f64,
    /// The sender's wall clock at capture (0: not said).
    pub capture_ms: f64,
    pub sequence: u64,
    /// Frames are missing before this one: a decoder waits for the next keyframe.
    pub after_gap: bool,
}

/// A peer's Opus packet, opened, for the adapter's decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingAudio {
    pub session: u64,
    pub data: Bytes,
    pub timestamp_us: f64,
    pub sample_rate: u32,
    pub channels: u32,
}

/// Our camera, microphone and screen share: on or off.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaState {
    pub audio_on: bool,
    pub video_on: bool,
    pub screen_on: bool,
}

/// What the page shows changed.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Connection(Connection),
    Joined {
        session: u64,
        user: String,
        display_name: String,
        recorder: bool,
    },
    Left {
        session: u64,
    },
    /// Their key is shown (the first one, or a change the user accepted).
    PeerKey {
        session: u64,
        fingerprint: String,
    },
    /// A different key for someone already shown: an alarm until accepted.
    KeyChanged {
        session: u64,
        fingerprint: String,
    },
    PeerMediaKey {
        session: u64,
        key_id: u32,
    },
    OwnKey {
        key_id: u32,
    },
    /// What their heartbeat says is on.
    PeerMedia {
        session: u64,
        state: MediaState,
    },
    /// `session` 0: ours.
    Chat {
        session: u64,
        name: String,
        text: String,
    },
    /// Something to tell the user once.
    Notice(String),
    SafetyCode(String),
    /// Key packets refused so far, by reason.
    Refused(BTreeMap<String, u64>),
    LocalMedia(MediaState),
    /// What the camera sends: the ladder's bitrate, the size of the last frame.
    Sending {
        codec: String,
        bitrate_bps: u32,
        width: u32,
        height: u32,
    },
}

/// What the adapter must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Get a room token and connect; report with [`Engine::connected`] or
    /// [`Engine::connect_failed`], and tag this transport's packets and close with
    /// `generation`.
    Connect {
        generation: u32,
    },
    /// Close the transport: we left.
    Disconnect,
    /// Ask our encoder of this stream's layer for a keyframe.
    Keyframe {
        stream: VideoStream,
        layer: u32,
    },
    /// Run the encoders of this stream's layers in `active` (bit n: layer n), pause the
    /// others: what the relays' receivers take.
    Layers {
        stream: VideoStream,
        active: u32,
    },
    /// Reconfigure the camera's top layer to this rung, and its lower layers to
    /// [`Engine::camera_lower_layers`] (a rung as narrow as a lower layer replaces it). When
    /// the lower layers changed, an [`Output::Layers`] follows: which run, numbered anew.
    Rung(Rung),
    /// Start (or unmute) or stop (mute) the microphone's sender.
    Microphone {
        on: bool,
    },
    /// Start or stop the camera's sender.
    Camera {
        on: bool,
    },
    /// Stop encoding video (camera and screen) while `held`: the send queue is too long for
    /// more frames to arrive fresh ([`QUEUE_HOLD_VIDEO_BYTES`]).
    HoldVideo {
        held: bool,
    },
    Decode(IncomingVideoBox),
    Play(IncomingAudio),
    Show(Update),
}

/// An incoming frame behind a pointer: it is the large variant of [`Output`].
pub type IncomingVideoBox = Box<IncomingVideo>;

/// What we know of one peer's link to us.
#[derive(Debug, Default)]
pub struct PeerLink {
    /// Our heartbeat's round trip through them, milliseconds.
    pub rtt_ms: Option<f64>,
    /// What they said they lost of our video, per thousand, in their last answer.
    pub reported_loss: u32,
    /// Their packets we could not use (tampered, replayed).
    pub dropped: u64,
    /// When their first media key arrived.
    pub key_at: Option<Millis>,
    /// Their video's loss since our last heartbeat answer to them.
    loss: SequenceLoss,
    last_sequence: [Option<u64>; 2],
    /// The layer of their camera and screen we last received.
    last_layer: [Option<u32>; 2],
    last_key_request: [Option<Millis>; 2],
}

impl PeerLink {
    /// The layer of `stream` the relay forwards us, once a frame came.
    pub fn layer(&self, stream: VideoStream) -> Option<u32> {
        self.last_layer[stream.index()]
    }
}

/// The call engine. `R` draws media keys.
pub struct Engine<R> {
    core: PeerState<R>,
    display_name: String,
    connection: Connection,
    /// Bumped per attempt: events of older transports are ignored.
    generation: u32,
    /// Failed attempts in a row.
    attempts: u32,
    /// The next attempt, while waiting between attempts.
    wake_at: Option<Millis>,
    next_tick: Option<Millis>,
    left: bool,
    media: MediaState,
    /// Per stream (camera, screen, microphone) and layer: the last frame number sent.
    frames: [[u64; MAX_LAYERS as usize]; 3],
    /// Per video stream: which layers it has and which run.
    send: [SendLayers; 2],
    /// What we show, for our relay.
    view: View,
    view_due: bool,
    /// Whether the camera sends its lower layers too ([`Engine::set_simulcast`]).
    simulcast: bool,
    /// The camera's layers under its top one, smallest first.
    camera_lower: Vec<LayerSpec>,
    ladder: Option<Ladder>,
    /// The camera's codec and the size of its last frame.
    sending: (String, u32, u32),
    queued_bytes: f64,
    video_held: bool,
    links: BTreeMap<u64, PeerLink>,
    outputs: VecDeque<Output>,
    /// Packets we could not use: not a protocol buffer, tampered, replayed.
    dropped: u64,
    /// Frames that arrived before their sender's key (joining races): not counted as dropped.
    before_key: u64,
}

impl<R: CryptoRngCore> Engine<R> {
    /// A participant with `identity` (made before joining: generating one is slow), called
    /// `display_name`, with its microphone and camera as the user chose in the lobby.
    pub fn new(rng: R, identity: IdentityPublic, display_name: &str, media: MediaState) -> Self {
        Self {
            core: PeerState::new(rng, identity),
            display_name: display_name.to_owned(),
            connection: Connection::Idle,
            generation: 0,
            attempts: 0,
            wake_at: None,
            next_tick: None,
            left: false,
            media,
            frames: [[0; MAX_LAYERS as usize]; 3],
            send: [SendLayers::new(1), SendLayers::new(1)],
            view: View::default(),
            view_due: false,
            simulcast: true,
            camera_lower: Vec::new(),
            ladder: None,
            sending: (String::new(), 0, 0),
            queued_bytes: 0.0,
            video_held: false,
            links: BTreeMap::new(),
            outputs: VecDeque::new(),
            dropped: 0,
            before_key: 0,
        }
    }

    /// The end-to-end encryption state: peers, keys, fingerprints, the safety code.
    pub fn core(&self) -> &PeerState<R> {
        &self.core
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub fn connected(&self) -> bool {
        matches!(self.connection, Connection::Connected { .. })
    }

    pub fn media(&self) -> MediaState {
        self.media
    }

    pub fn link(&self, session: u64) -> Option<&PeerLink> {
        self.links.get(&session)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn before_key(&self) -> u64 {
        self.before_key
    }

    /// The camera's ladder, once the camera opened.
    pub fn ladder(&self) -> Option<&Ladder> {
        self.ladder.as_ref()
    }

    /// Joins: the first connection attempt, and what the page shows of us.
    pub fn start(&mut self, now: Millis) {
        if self.left || !matches!(self.connection, Connection::Idle) {
            return;
        }
        self.show(Update::OwnKey { key_id: self.core.key_id() });
        self.show(Update::LocalMedia(self.media));
        self.outputs.push_back(Output::Microphone { on: self.media.audio_on });
        self.next_tick = Some(now + TICK_MS);
        self.attempt();
    }

    fn attempt(&mut self) {
        self.wake_at = None;
        self.generation = self.generation.wrapping_add(1);
        self.set_connection(Connection::Connecting { attempt: self.attempts });
        self.outputs.push_back(Output::Connect { generation: self.generation });
    }

    fn set_connection(&mut self, connection: Connection) {
        self.connection = connection.clone();
        self.show(Update::Connection(connection));
    }

    fn current(&self, generation: u32) -> bool {
        generation == self.generation && !self.left
    }

    /// Attempt `generation` is connected, with a token for `user` in `room` (sealed frames
    /// bind the user id the relay stamps, signatures the room): a new session, so a new key and
    /// nobody known yet.
    pub fn connected_as(&mut self, now: Millis, generation: u32, transport: TransportKind, user: &str, room: &str) {
        if !self.current(generation) || !matches!(self.connection, Connection::Connecting { .. }) {
            return;
        }
        self.core.restart(user, room);
        self.attempts = 0;
        // A new relay session: it knows nothing of what we show, nor of what we sent.
        self.view_due = self.view != View::default();
        for stream in [VideoStream::Camera, VideoStream::Screen] {
            if self.send[stream.index()].reset() {
                let active = self.send[stream.index()].active();
                self.outputs.push_back(Output::Layers { stream, active });
            }
        }
        self.set_connection(Connection::Connected { transport });
        self.drive(now);
    }

    /// Attempt `generation` failed.
    pub fn connect_failed(&mut self, now: Millis, generation: u32, failure: Failure) {
        if !self.current(generation) || !matches!(self.connection, Connection::Connecting { .. }) {
            return;
        }
        match failure {
            Failure::Final(reason) => self.close_for_good(reason),
            Failure::Retry(reason) => self.back_off(now, reason),
        }
    }

    /// The transport of `generation` closed with `code` (WebSocket and WebTransport close
    /// codes; 0 when none was given) and `reason`.
    pub fn closed(&mut self, now: Millis, generation: u32, code: u32, reason: &str) {
        if !self.current(generation) || !self.connected() {
            return;
        }
        let final_reason = u16::try_from(code).ok().and_then(CloseReason::from_code).filter(|r| r.is_final());
        if let Some(close) = final_reason {
            let text = match close {
                CloseReason::Replaced => "This room was opened in another tab",
                CloseReason::Removed => "The host removed you from this meeting",
                CloseReason::Ended => "The host ended the meeting for everyone",
                other => other.as_str(),
            };
            return self.close_for_good(text.to_owned());
        }
        let reason = if reason.is_empty() { format!("connection lost (code {code})") } else { reason.to_owned() };
        // The next connection is a new session: forget everyone now, so the page does not show
        // people we cannot hear.
        let (user, room) = (self.core.user().to_owned(), self.core.room().to_owned());
        self.core.restart(&user, &room);
        self.drive(now);
        self.back_off(now, reason);
    }

    fn back_off(&mut self, now: Millis, reason: String) {
        self.attempts += 1;
        let delay_ms = BACKOFF_MS[(self.attempts as usize - 1).min(BACKOFF_MS.len() - 1)];
        self.wake_at = Some(now + Millis::from(delay_ms));
        self.set_connection(Connection::Reconnecting { attempt: self.attempts, delay_ms, reason });
    }

    fn close_for_good(&mut self, reason: String) {
        self.left = true;
        self.wake_at = None;
        self.next_tick = None;
        self.set_connection(Connection::Closed { reason });
        self.outputs.push_back(Output::Disconnect);
    }

    /// Leaves for good: the transport closes, the senders stop.
    pub fn leave(&mut self) {
        if self.left {
            return;
        }
        self.close_for_good("You left the room".into());
        self.outputs.push_back(Output::Microphone { on: false });
        self.outputs.push_back(Output::Camera { on: false });
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants calling next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match (self.wake_at, self.next_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        if self.wake_at.is_some_and(|t| now >= t) {
            self.attempt();
        }
        while let Some(tick) = self.next_tick.filter(|t| now >= *t) {
            // A page asleep for a minute ticks once, not sixty times.
            self.next_tick = Some((tick + TICK_MS).max(now + 1));
            self.tick(now);
        }
    }

    /// Once a second: a heartbeat, and the ladder moved by what peers report and our queue.
    fn tick(&mut self, now: Millis) {
        if !self.connected() {
            return;
        }
        self.heartbeat(now);
        // With simulcast the relay moves a lossy receiver to a smaller layer: one weak link no
        // longer steps our camera down for everyone; only our own send queue does.
        let worst_loss = if self.send[VideoStream::Camera.index()].count() > 1 {
            0
        } else {
            self.links.values().map(|l| l.reported_loss).max().unwrap_or(0)
        };
        let Some(ladder) = self.ladder.as_mut() else { return };
        let moved = ladder.tick(worst_loss, self.queued_bytes);
        let rung = ladder.rung();
        if moved {
            self.outputs.push_back(Output::Rung(rung));
            self.plan_camera_layers(rung);
        }
        let (codec, width, height) = self.sending.clone();
        let bitrate_bps = rung.bitrate;
        self.show(Update::Sending { codec, bitrate_bps, width, height });
    }

    /// Bytes waiting in the transport's send queue (the adapter tells it as often as it
    /// sends): a growing queue steps the ladder down, and a long one holds video.
    pub fn set_queued_bytes(&mut self, bytes: f64) {
        self.queued_bytes = bytes;
        let held = if self.video_held { bytes > QUEUE_HOLD_VIDEO_BYTES / 2.0 } else { bytes > QUEUE_HOLD_VIDEO_BYTES };
        if held != self.video_held {
            self.video_held = held;
            self.outputs.push_back(Output::HoldVideo { held });
        }
    }

    /// Whether video is held now (the last [`Output::HoldVideo`]): a sender started later
    /// starts so.
    pub fn video_held(&self) -> bool {
        self.video_held
    }

    /// The camera opened at `width` x `height`: the ladder starts at the rung it allows, which
    /// the camera's top layer starts with; the layers under it are [`lower_layers`] of that
    /// rung, for the adapter to encode alongside (paused until a relay asks for them).
    pub fn camera_opened(&mut self, width: u32, height: u32) -> Rung {
        let ladder = Ladder::for_camera(width, height);
        let rung = ladder.rung();
        self.ladder = Some(ladder);
        self.camera_lower = if self.simulcast { lower_layers(rung.width) } else { Vec::new() };
        self.send[VideoStream::Camera.index()] = SendLayers::new(self.camera_lower.len() as u32 + 1);
        let active = self.send[VideoStream::Camera.index()].active();
        self.outputs.push_back(Output::Layers { stream: VideoStream::Camera, active });
        rung
    }

    /// The ladder moved the top layer to `rung`: the layers under it are those narrower than
    /// the rung. Stepping down to 640x480 drops the 640x360 layer (the top now sends about that
    /// size, and a congested uplink would carry it twice); stepping back up brings it back.
    fn plan_camera_layers(&mut self, rung: Rung) {
        let lower = if self.simulcast { lower_layers(rung.width) } else { Vec::new() };
        if lower == self.camera_lower {
            return;
        }
        self.camera_lower = lower;
        let send = &mut self.send[VideoStream::Camera.index()];
        send.resize(self.camera_lower.len() as u32 + 1);
        let active = send.active();
        self.outputs.push_back(Output::Layers { stream: VideoStream::Camera, active });
    }

    /// Whether the camera opened next sends lower layers besides its own size (on by default;
    /// off, a camera is one layer, which every receiver gets, as before simulcast).
    pub fn set_simulcast(&mut self, on: bool) {
        self.simulcast = on;
    }

    /// The camera's layers under its top one, smallest first, as [`Engine::camera_opened`]
    /// planned them: the adapter encodes one per entry besides the top layer.
    pub fn camera_lower_layers(&self) -> &[LayerSpec] {
        &self.camera_lower
    }

    /// Which layers of `stream` we have and which run.
    pub fn send_layers(&self, stream: VideoStream) -> &SendLayers {
        &self.send[stream.index()]
    }

    /// What we show changed: our relay is told (now, or once connected).
    pub fn set_view(&mut self, view: View) {
        if view != self.view {
            self.view = view;
            self.view_due = true;
        }
    }

    /// The microphone on or off (the user, or the host's mute).
    pub fn set_audio(&mut self, now: Millis, on: bool) {
        self.media.audio_on = on;
        self.outputs.push_back(Output::Microphone { on });
        self.media_changed(now);
    }

    /// The camera on or off.
    pub fn set_video(&mut self, now: Millis, on: bool) {
        self.media.video_on = on;
        self.outputs.push_back(Output::Camera { on });
        self.media_changed(now);
    }

    /// A screen share started or ended (the adapter owns the picker and the browser's own
    /// stop button).
    pub fn set_screen(&mut self, now: Millis, on: bool) {
        self.media.screen_on = on;
        self.media_changed(now);
    }

    fn media_changed(&mut self, now: Millis) {
        self.show(Update::LocalMedia(self.media));
        self.heartbeat(now);
    }

    fn heartbeat(&mut self, now: Millis) {
        self.heartbeat_to(now, 0);
    }

    /// Our media state to `session` (0: the room).
    fn heartbeat_to(&mut self, now: Millis, session: u64) {
        let mut media = MediaPacket::new();
        media.media_type = MediaType::HEARTBEAT.into();
        // Answers echo this; 0 would read as "not an answer".
        media.timestamp = now.max(1) as f64;
        let mut meta = HeartbeatMetadata::new();
        meta.audio_on = self.media.audio_on;
        meta.video_on = self.media.video_on;
        meta.screen_on = self.media.screen_on;
        media.heartbeat_metadata = MessageField::some(meta);
        self.seal(&media, session);
    }

    /// A chat line from us to the room.
    pub fn send_chat(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() || !self.connected() {
            return;
        }
        self.seal(&messages::chat(text), 0);
        let name = self.display_name.clone();
        self.show(Update::Chat { session: 0, name, text: text.to_owned() });
    }

    /// Seals an encoded frame of ours for the room. Frames while not connected are dropped:
    /// nobody could hold the key they would be sealed with; so are frames of a layer nobody
    /// takes (an encoder still finishing as it pauses).
    pub fn send_video(&mut self, stream: VideoStream, frame: EncodedVideo) -> Result<(), PacketError> {
        let layers = &self.send[stream.index()];
        if !self.connected() || frame.layer >= layers.count() || !layers.is_active(frame.layer) {
            return Ok(());
        }
        let count = layers.count();
        let mut media = MediaPacket::new();
        media.media_type = stream.media_type().into();
        media.frame_type = if frame.keyframe { "key" } else { "delta" }.into();
        media.timestamp = frame.timestamp_us;
        media.duration = frame.duration_us;
        let mut meta = VideoMetadata::new();
        meta.sequence = self.next_frame(stream.index(), frame.layer);
        (meta.width, meta.height) = (frame.width, frame.height);
        meta.capture_time_ms = frame.capture_ms;
        if stream == VideoStream::Camera && frame.layer + 1 == count {
            self.sending = (frame.codec.clone(), frame.width, frame.height);
        }
        let route = Route::video(simulcast::stream_kind(stream), frame.layer, count, frame.keyframe, meta.sequence);
        meta.codec = frame.codec;
        media.video_metadata = MessageField::some(meta);
        media.data = frame.data.into();
        self.core.seal(&media, &route)
    }

    /// Seals an Opus packet of ours for the room.
    pub fn send_audio(&mut self, audio: EncodedAudio) -> Result<(), PacketError> {
        if !self.connected() {
            return Ok(());
        }
        let mut media = MediaPacket::new();
        media.media_type = MediaType::AUDIO.into();
        media.frame_type = "key".into();
        media.timestamp = audio.timestamp_us;
        media.duration = audio.duration_us;
        let mut meta = AudioMetadata::new();
        meta.audio_format = "opus".into();
        meta.audio_sample_rate = audio.sample_rate as f32;
        meta.audio_number_of_channels = audio.channels;
        meta.sequence = self.next_frame(2, 0);
        let route = Route::audio(meta.sequence);
        media.audio_metadata = MessageField::some(meta);
        media.data = audio.data.into();
        self.core.seal(&media, &route)
    }

    fn next_frame(&mut self, stream: usize, layer: u32) -> u64 {
        let count = &mut self.frames[stream][layer as usize];
        *count += 1;
        *count
    }

    /// Seals a small message (no stream's frame: every receiver gets it); a failure is
    /// counted, never fatal.
    fn seal(&mut self, media: &MediaPacket, to_session: u64) {
        if self.connected() && self.core.seal_to(media, &Route::default(), to_session).is_err() {
            self.dropped += 1;
        }
    }

    /// `session`'s decoder cannot go on without a keyframe of `stream`: asks them for one of
    /// the layer we receive, at most once per [`KEYFRAME_REQUEST_INTERVAL_MS`].
    pub fn need_keyframe(&mut self, now: Millis, session: u64, stream: VideoStream) {
        let Some(link) = self.links.get_mut(&session) else { return };
        let last = &mut link.last_key_request[stream.index()];
        if last.is_some_and(|t| now < t + KEYFRAME_REQUEST_INTERVAL_MS) {
            return;
        }
        *last = Some(now);
        let layer = link.last_layer[stream.index()].unwrap_or(0);
        self.seal(&messages::keyframe_request(stream == VideoStream::Screen, layer), session);
    }

    /// A relay's demand for our layers: encoders start and pause, keyframes are made.
    fn on_demand(&mut self, now: Millis, packet: &PacketWrapper) {
        let Ok(demand) = LayerDemand::parse_from_bytes(&packet.data) else {
            self.dropped += 1;
            return;
        };
        // Relays stamp nothing on their own packets: a demand comes from session 0.
        if packet.session_id != 0 || self.core.session().is_some_and(|s| demand.sender != 0 && demand.sender != s) {
            self.dropped += 1;
            return;
        }
        for stream in [VideoStream::Camera, VideoStream::Screen] {
            let (layers, keyframes) = simulcast::demand_for(&demand, stream);
            let (changed, due) = self.send[stream.index()].demand(now, layers, keyframes);
            if changed {
                let active = self.send[stream.index()].active();
                self.outputs.push_back(Output::Layers { stream, active });
            }
            self.outputs.extend(due.into_iter().map(|layer| Output::Keyframe { stream, layer }));
        }
    }

    /// A keyframe of every layer of `stream` that runs.
    fn keyframes(&mut self, stream: VideoStream) {
        let layers = &self.send[stream.index()];
        let due: Vec<u32> = (0..layers.count()).filter(|l| layers.is_active(*l)).collect();
        self.outputs.extend(due.into_iter().map(|layer| Output::Keyframe { stream, layer }));
    }

    /// The user compared again and accepts `session`'s new key.
    pub fn accept_key_change(&mut self, now: Millis, session: u64) -> Result<(), PacketError> {
        let result = self.core.accept_key_change(now, session);
        self.drive(now);
        result
    }

    /// Bytes the transport of `generation` delivered.
    pub fn handle_bytes(&mut self, now: Millis, generation: u32, bytes: &[u8]) {
        if !self.current(generation) {
            return;
        }
        match PacketWrapper::parse_from_bytes(bytes) {
            Ok(packet) if packet.packet_type.enum_value() == Ok(PacketType::LAYER_DEMAND) => {
                self.on_demand(now, &packet)
            }
            Ok(packet) => self.core.handle_packet(now, packet),
            Err(_) => self.dropped += 1,
        }
        self.drive(now);
    }

    /// The next private-key operation (an asynchronous WebCrypto call in a browser); answer
    /// with [`complete`](Self::complete).
    pub fn poll_work(&mut self) -> Option<Work> {
        self.core.poll_work()
    }

    pub fn complete(&mut self, now: Millis, done: Done) {
        self.core.complete(now, done);
        self.drive(now);
    }

    /// Performs all pending private-key work with a local identity (the bot, tests).
    pub fn work_locally(&mut self, identity: &LocalIdentity, now: Millis) {
        self.core.work_locally(identity, now);
        self.drive(now);
    }

    /// The next packet to send, once connected (key packets wait for a connection).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if !self.connected() {
            return None;
        }
        if std::mem::take(&mut self.view_due) {
            let mut packet = PacketWrapper::new();
            packet.packet_type = PacketType::SUBSCRIPTION.into();
            match self.view.to_subscription().write_to_bytes() {
                Ok(data) => packet.data = data,
                Err(_) => self.dropped += 1,
            }
            if let Ok(bytes) = packet.write_to_bytes() {
                return Some(bytes);
            }
        }
        let packet = self.core.poll_transmit()?;
        match packet.write_to_bytes() {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                self.dropped += 1;
                None
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn show(&mut self, update: Update) {
        self.outputs.push_back(Output::Show(update));
    }

    /// Turns what the core said into outputs.
    fn drive(&mut self, now: Millis) {
        // Whether who is shown, or with which key, changed: the safety code follows.
        let mut people_changed = false;
        while let Some(event) = self.core.poll_event() {
            people_changed |= matches!(event, Event::Welcomed { .. } | Event::PeerKey { .. } | Event::Left { .. });
            self.on_event(now, event);
        }
        if people_changed {
            self.show(Update::SafetyCode(self.core.safety_code().to_string()));
        }
    }

    fn on_event(&mut self, now: Millis, event: Event) {
        match event {
            Event::Welcomed { .. } => {}
            Event::Joined { session } => {
                self.links.entry(session).or_default();
                let update = match self.core.peers().get(&session) {
                    Some(p) => Update::Joined {
                        session,
                        user: p.user.clone(),
                        display_name: p.display_name.clone(),
                        recorder: p.recorder,
                    },
                    None => return,
                };
                self.show(update);
            }
            Event::Left { session } => {
                self.links.remove(&session);
                self.show(Update::Left { session });
            }
            Event::PeerKey { session, fingerprint } => {
                self.show(Update::PeerKey { session, fingerprint: fingerprint.to_string() });
                // Our media key for them is queued: what we have on follows it at once,
                // instead of at the next tick.
                self.heartbeat_to(now, session);
                // They are about to get our media key: a keyframe lets them start at once.
                if self.media.video_on {
                    self.keyframes(VideoStream::Camera);
                }
                if self.media.screen_on {
                    self.keyframes(VideoStream::Screen);
                }
            }
            Event::KeyChanged { session, fingerprint } => {
                let name = self.core.peers().get(&session).map(|p| p.display_name.clone()).unwrap_or_default();
                self.show(Update::KeyChanged { session, fingerprint: fingerprint.to_string() });
                self.show(Update::Notice(format!(
                    "{name}'s key changed: compare fingerprints again before accepting it"
                )));
            }
            Event::MediaKey { session, key_id } => {
                self.links.entry(session).or_default().key_at.get_or_insert(now);
                self.show(Update::PeerMediaKey { session, key_id });
            }
            Event::Rotated { key_id } => self.show(Update::OwnKey { key_id }),
            Event::MutedByHost => {
                self.set_audio(now, false);
                self.show(Update::Notice("The host muted your microphone".into()));
            }
            Event::Media { session, route, media, .. } => self.on_media(now, session, route, media),
            // Sealed before their key reached us (they had not met us yet): expected while
            // joining, and no sign of an attack.
            Event::Dropped { error: PacketError::Open(OpenError::UnknownKey { .. }), .. } => self.before_key += 1,
            Event::Dropped { error: PacketError::Refused(_), .. } => {
                self.show(Update::Refused(self.core.refused().iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()));
            }
            Event::Dropped { session, .. } => {
                self.dropped += 1;
                if let Some(link) = self.links.get_mut(&session) {
                    link.dropped += 1;
                }
            }
        }
    }

    fn on_media(&mut self, now: Millis, session: u64, route: Route, media: MediaPacket) {
        match media.media_type.enum_value_or(MediaType::VIDEO) {
            MediaType::VIDEO => self.on_video(session, VideoStream::Camera, route.layer, media),
            MediaType::SCREEN => self.on_video(session, VideoStream::Screen, route.layer, media),
            MediaType::AUDIO => {
                let (sample_rate, channels) = media
                    .audio_metadata
                    .as_ref()
                    .map_or((48_000, 1), |m| (m.audio_sample_rate as u32, m.audio_number_of_channels));
                let timestamp_us = media.timestamp;
                let data = media.data;
                self.outputs.push_back(Output::Play(IncomingAudio {
                    session,
                    data,
                    timestamp_us,
                    sample_rate,
                    channels,
                }));
            }
            MediaType::HEARTBEAT => self.on_heartbeat(now, session, &media),
            MediaType::CHAT => {
                let text = String::from_utf8_lossy(&media.data).chars().take(MAX_CHAT_CHARS).collect();
                let name = self.core.peers().get(&session).map(|p| p.display_name.clone()).unwrap_or_default();
                self.show(Update::Chat { session, name, text });
            }
            MediaType::KEYFRAME_REQUEST => {
                let stream =
                    if media.frame_type == messages::SCREEN { VideoStream::Screen } else { VideoStream::Camera };
                let layers = &self.send[stream.index()];
                let layer = media.video_metadata.layer.min(layers.count() - 1);
                if layers.is_active(layer) {
                    self.outputs.push_back(Output::Keyframe { stream, layer });
                }
            }
        }
    }

    fn on_video(&mut self, session: u64, stream: VideoStream, layer: u32, mut media: MediaPacket) {
        let Some(meta) = media.video_metadata.take() else {
            self.dropped += 1;
            return;
        };
        let link = self.links.entry(session).or_default();
        // Frames are numbered per layer: the relay switching layers is no gap (it switches at
        // a keyframe), and the loss we report counts from there.
        if link.last_layer[stream.index()].replace(layer) != Some(layer) {
            link.last_sequence[stream.index()] = None;
            if stream == VideoStream::Camera {
                link.loss = SequenceLoss::default();
            }
        }
        let last = &mut link.last_sequence[stream.index()];
        let after_gap = last.is_some_and(|l| meta.sequence > l + 1);
        *last = Some(meta.sequence.max(last.unwrap_or(0)));
        if stream == VideoStream::Camera {
            link.loss.receive(meta.sequence);
        }
        self.outputs.push_back(Output::Decode(Box::new(IncomingVideo {
            session,
            stream,
            layer,
            codec: meta.codec,
            keyframe: media.frame_type == "key",
            data: media.data,
            timestamp_us: media.timestamp,
            capture_ms: meta.capture_time_ms,
            sequence: meta.sequence,
            after_gap,
        })));
    }

    /// A heartbeat to the room tells us their media state; we answer it so they learn the
    /// round trip and how much of their video we lost. An answer tells us ours.
    fn on_heartbeat(&mut self, now: Millis, session: u64, media: &MediaPacket) {
        let Some(beat) = media.heartbeat_metadata.as_ref() else { return };
        let link = self.links.entry(session).or_default();
        if beat.echo_timestamp > 0.0 {
            // Only answers to heartbeats we sent count: a round trip is never negative.
            if beat.echo_timestamp <= now as f64 {
                link.rtt_ms = Some(now as f64 - beat.echo_timestamp);
                link.reported_loss = beat.loss_permille.min(1_000);
            }
            return;
        }
        let state = MediaState { audio_on: beat.audio_on, video_on: beat.video_on, screen_on: beat.screen_on };
        if !state.screen_on {
            link.last_sequence[VideoStream::Screen.index()] = None;
        }
        let loss_permille = link.loss.take_permille();
        self.show(Update::PeerMedia { session, state });
        if let Some(answer) = messages::heartbeat_answer(media, loss_permille) {
            self.seal(&answer, session);
        }
    }
}
