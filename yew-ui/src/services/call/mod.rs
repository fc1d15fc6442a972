//! The call: the client core (`videocall_client::peers::PeerState`) driven by a transport, the
//! media senders and the per-peer receivers. Thin on purpose: key exchange and encryption live
//! in the core; this file moves packets between it, the network and WebCodecs, and tells the
//! room page what happened through [`RoomAction`]s.
//!
//! - `connection.rs`: tokens, connecting (WebTransport, else WebSocket), reconnecting with
//!   backoff after a drop (the core re-exchanges keys).
//! - `incoming.rs`: what the core opened: video, screen, audio, chat, heartbeats, keyframe
//!   requests.
//! - `outgoing.rs`: what we capture and say: encoded frames, heartbeats, chat, the bitrate
//!   ladder.

mod connection;
mod incoming;
mod outgoing;
mod stats;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use rand_core::OsRng;
use videocall_client::peers::PeerState;
use wasm_bindgen::prelude::*;
use web_sys::{AudioContext, MediaStream};

use super::identity::BrowserIdentity;
use super::media::audio_out::AudioOut;
use super::media::audio_send::AudioSender;
use super::media::level::LevelMeter;
use super::media::video_send::VideoSender;
use super::transport::{Preference, Target, Transport};
use crate::types::ladder::Ladder;
use crate::types::room::RoomAction;

pub use incoming::PeerMedia;

/// What the lobby hands over.
pub struct JoinRequest {
    pub room: String,
    /// The meeting the room belongs to: tokens come from its join flow. `None`: an open room
    /// (guest tokens).
    pub meeting: Option<String>,
    pub display_name: String,
    pub preference: Preference,
    pub identity: BrowserIdentity,
    /// The camera and microphone, or `None` while they are still opening (`attach_stream`
    /// hands them over later: joining and receiving need neither).
    pub stream: Option<MediaStream>,
    pub audio_on: bool,
    pub video_on: bool,
    /// Created in the join click, so the browser lets it play.
    pub audio_context: AudioContext,
}

pub type Dispatch = Rc<dyn Fn(RoomAction)>;

/// Our media senders and what they are set to.
#[derive(Default)]
struct Senders {
    video: Option<VideoSender>,
    audio: Option<AudioSender>,
    screen: Option<(VideoSender, MediaStream)>,
    codec: String,
    ladder: Option<Ladder>,
    audio_on: bool,
    video_on: bool,
}

struct Inner {
    room: String,
    meeting: Option<String>,
    display_name: String,
    preference: Preference,
    dispatch: Dispatch,
    core: RefCell<PeerState<OsRng>>,
    /// Signs and unwraps for the core; its private keys stay in WebCrypto.
    identity: Rc<BrowserIdentity>,
    transport: RefCell<Option<Transport>>,
    /// Bumped per connection attempt: events from an older transport are ignored.
    generation: Cell<u32>,
    target: RefCell<Option<Target>>,
    left: Cell<bool>,
    attempts: Cell<u32>,
    stream: RefCell<Option<MediaStream>>,
    senders: RefCell<Senders>,
    sequences: Cell<(u64, u64, u64)>,
    peers: RefCell<HashMap<u64, PeerMedia>>,
    audio_out: RefCell<Option<Rc<AudioOut>>>,
    level: RefCell<Option<LevelMeter>>,
    /// Packets the core could not use (tampered, replayed, unknown key): counted, never fatal.
    dropped: Cell<u64>,
    /// Frames that arrived before their sender's key (joining races): not counted as dropped.
    before_key: Cell<u64>,
    /// `performance.now()` when the user pressed join.
    joined_at_ms: f64,
    /// `performance.now()` when the transport last came up.
    connected_at_ms: Cell<f64>,
    timer: RefCell<Option<(i32, Closure<dyn FnMut()>)>>,
    stats_hook: RefCell<Option<Closure<dyn FnMut() -> String>>>,
}

/// A joined (or joining) call. Cloning shares it.
#[derive(Clone)]
pub struct Call {
    inner: Rc<Inner>,
}

impl PartialEq for Call {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Call {
    /// Starts joining: media first (so the first frames are ready when keys are), then the
    /// connection.
    pub fn join(request: JoinRequest, dispatch: Dispatch) -> Result<Self, String> {
        let core = PeerState::new(OsRng, request.identity.public().clone());
        dispatch(RoomAction::OwnKey { key_id: core.key_id() });
        super::js::mark("videocall:join");
        let inner = Rc::new(Inner {
            room: request.room,
            meeting: request.meeting,
            display_name: request.display_name,
            preference: request.preference,
            dispatch,
            core: RefCell::new(core),
            identity: Rc::new(request.identity),
            transport: RefCell::new(None),
            generation: Cell::new(0),
            target: RefCell::new(None),
            left: Cell::new(false),
            attempts: Cell::new(0),
            stream: RefCell::new(None),
            senders: RefCell::new(Senders {
                audio_on: request.audio_on,
                video_on: request.video_on,
                ..Senders::default()
            }),
            sequences: Cell::new((0, 0, 0)),
            peers: RefCell::new(HashMap::new()),
            audio_out: RefCell::new(None),
            level: RefCell::new(None),
            dropped: Cell::new(0),
            before_key: Cell::new(0),
            joined_at_ms: super::js::now_ms(),
            connected_at_ms: Cell::new(0.0),
            timer: RefCell::new(None),
            stats_hook: RefCell::new(None),
        });
        let call = Self { inner };
        call.start_timer();
        call.install_stats_hook();
        outgoing::start_playback(&call.inner, request.audio_context);
        connection::start(call.inner.clone());
        if let Some(stream) = request.stream {
            call.attach_stream(stream);
        }
        Ok(call)
    }

    /// Our camera and microphone, once open: their senders start.
    pub fn attach_stream(&self, stream: MediaStream) {
        let inner = &self.inner;
        if inner.left.get() {
            return super::media::capture::stop(&stream);
        }
        if inner.stream.borrow().is_some() {
            return;
        }
        *inner.level.borrow_mut() = LevelMeter::new(&stream).ok();
        *inner.stream.borrow_mut() = Some(stream);
        outgoing::start_capture(inner);
    }

    pub fn has_stream(&self) -> bool {
        self.inner.stream.borrow().is_some()
    }

    pub fn set_audio(&self, on: bool) {
        outgoing::set_audio(&self.inner, on);
    }

    pub fn set_video(&self, on: bool) {
        outgoing::set_video(&self.inner, on);
    }

    pub fn toggle_screen(&self) {
        outgoing::toggle_screen(&self.inner);
    }

    pub fn send_chat(&self, text: &str) {
        outgoing::send_chat(&self.inner, text);
    }

    /// The user compared again and accepts `session`'s new key.
    pub fn accept_key_change(&self, session: u64) {
        let result = self.inner.core.borrow_mut().accept_key_change(super::js::now_ms() as u64, session);
        if let Err(e) = result {
            web_sys::console::error_1(&e.to_string().into());
        }
        self.inner.pump();
    }

    pub fn local_stream(&self) -> Option<MediaStream> {
        self.inner.stream.borrow().clone()
    }

    /// Leaves for good: the connection closes, the camera and microphone stop.
    pub fn leave(&self) {
        let inner = &self.inner;
        if inner.left.replace(true) {
            return;
        }
        inner.transport.borrow_mut().take();
        *inner.senders.borrow_mut() = Senders::default();
        inner.peers.borrow_mut().clear();
        inner.audio_out.borrow_mut().take();
        inner.level.borrow_mut().take();
        if let Some(stream) = inner.stream.borrow_mut().take() {
            super::media::capture::stop(&stream);
        }
        if let Some((id, _)) = inner.timer.borrow_mut().take() {
            if let Some(w) = web_sys::window() {
                w.clear_interval_with_handle(id);
            }
        }
        (inner.dispatch)(RoomAction::Connection(crate::types::room::Connection::Closed {
            reason: "You left the room".into(),
        }));
        if let Some(meeting) = inner.meeting.clone() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = super::api::leave_meeting(&meeting).await;
            });
        }
    }

    fn start_timer(&self) {
        let weak = Rc::downgrade(&self.inner);
        let tick = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                outgoing::tick(&inner);
                stats::report(&inner);
            }
        });
        let Some(window) = web_sys::window() else { return };
        if let Ok(id) =
            window.set_interval_with_callback_and_timeout_and_arguments_0(tick.as_ref().unchecked_ref(), 1_000)
        {
            *self.inner.timer.borrow_mut() = Some((id, tick));
        }
    }

    /// `window.videocallStats()`: the call's figures as JSON, for diagnostics and the tests.
    fn install_stats_hook(&self) {
        let weak = Rc::downgrade(&self.inner);
        let hook =
            Closure::<dyn FnMut() -> String>::new(move || weak.upgrade().map(|i| stats::json(&i)).unwrap_or_default());
        if let Some(window) = web_sys::window() {
            super::js::set(&window, "videocallStats", hook.as_ref().clone());
        }
        *self.inner.stats_hook.borrow_mut() = Some(hook);
    }
}

impl Inner {
    /// After the core was handed something: its private-key work goes to WebCrypto (each
    /// answer comes back here), its events to the page, its packets to the relay.
    fn pump(self: &Rc<Self>) {
        loop {
            let Some(work) = self.core.borrow_mut().poll_work() else { break };
            let (weak, identity) = (Rc::downgrade(self), self.identity.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let done = identity.perform(work).await;
                if let Some(inner) = weak.upgrade() {
                    inner.core.borrow_mut().complete(super::js::now_ms() as u64, done);
                    inner.pump();
                }
            });
        }
        incoming::drain_events(self);
        self.flush();
    }

    /// Sends whatever the core has queued, if connected (key packets wait for a connection).
    fn flush(&self) {
        let transport = self.transport.borrow();
        let Some(transport) = transport.as_ref() else { return };
        loop {
            let Some(packet) = self.core.borrow_mut().poll_transmit() else { break };
            transport.send(&packet);
        }
    }

    fn connected(&self) -> bool {
        self.transport.borrow().is_some()
    }

    fn dispatch(&self, action: RoomAction) {
        (self.dispatch)(action);
    }
}
