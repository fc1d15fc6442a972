//! The call in the browser, in two parts that talk by messages (`wire.rs`).
//!
//! - In the call's worker (`worker.rs` starts it), one task (`driver.rs`) owns the call engine
//!   (`videocall_client::call::Engine`, where every rule of the call lives and is tested
//!   natively) and the browser objects that serve it: the transport, the WebCodecs encoders and
//!   decoders, the ports to playback and drawing. Every frame is read, encoded, sealed, sent,
//!   received, opened and decoded there, never on the page's thread.
//! - On the page, a small task (`page.rs`) behind the [`Call`] handle: it owns what only a page
//!   can hold (the camera and microphone, the screen share, the audio context, our speaking
//!   light), hands their frames to the worker, and turns what the worker says into the room's
//!   state. `window.videocallStats()` is answered by the worker.
//!
//! - `connect.rs`: one connection attempt: a token, then WebTransport or WebSocket.
//! - `media.rs`: each peer's decoders and what we measure about them.
//! - `stats.rs`: figures for the page and `window.videocallStats()`.

mod connect;
mod driver;
mod media;
mod page;
mod stats;
mod wire;
pub mod worker;

use std::cell::OnceCell;
use std::rc::Rc;

use futures_channel::mpsc::UnboundedSender;
use wasm_bindgen::prelude::*;
use web_sys::{AudioContext, MediaStream};

use super::identity::BrowserIdentity;
use super::transport::Preference;
use crate::types::room::RoomAction;

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

/// What the page asks of the call.
pub enum Command {
    AttachStream(MediaStream),
    SetAudio(bool),
    SetVideo(bool),
    ToggleScreen,
    Chat(String),
    /// The user compared again and accepts this session's new key.
    AcceptKeyChange(u64),
    Leave,
    /// `window.videocallStats()`: resolve this promise with the figures as JSON.
    Stats(js_sys::Function),
    /// What the page shows: the call asks our relay for those layers.
    SetView(videocall_client::call::View),
}

/// A joined (or joining) call: a handle to its page task. Cloning shares it.
#[derive(Clone)]
pub struct Call {
    tx: UnboundedSender<page::Msg>,
    /// Our camera and microphone once attached, for the self view.
    stream: Rc<OnceCell<MediaStream>>,
}

impl PartialEq for Call {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.stream, &other.stream)
    }
}

impl Call {
    /// Starts the call's worker and the page's task; the camera and microphone, when open,
    /// are handed to the worker at once.
    pub fn join(mut request: JoinRequest, dispatch: Dispatch) -> Result<Self, String> {
        super::js::mark("videocall:join");
        let stream = Rc::new(OnceCell::new());
        let first = request.stream.take();
        let tx = page::start(request, dispatch)?;
        let call = Self { tx, stream };
        call.install_stats_hook();
        if let Some(s) = first {
            call.attach_stream(s);
        }
        Ok(call)
    }

    fn send(&self, command: Command) {
        // After the task ended (we left) there is nobody to tell.
        let _ = self.tx.unbounded_send(page::Msg::Command(command));
    }

    /// Our camera and microphone, once open: their senders start.
    pub fn attach_stream(&self, stream: MediaStream) {
        match self.stream.set(stream.clone()) {
            Ok(()) if !self.tx.is_closed() => self.send(Command::AttachStream(stream)),
            // Already attached, or the call is over: this stream is nobody's.
            _ => super::media::capture::stop(&stream),
        }
    }

    pub fn has_stream(&self) -> bool {
        self.stream.get().is_some()
    }

    pub fn local_stream(&self) -> Option<MediaStream> {
        self.stream.get().cloned()
    }

    pub fn set_audio(&self, on: bool) {
        self.send(Command::SetAudio(on));
    }

    pub fn set_video(&self, on: bool) {
        self.send(Command::SetVideo(on));
    }

    pub fn toggle_screen(&self) {
        self.send(Command::ToggleScreen);
    }

    pub fn send_chat(&self, text: &str) {
        self.send(Command::Chat(text.to_owned()));
    }

    pub fn accept_key_change(&self, session: u64) {
        self.send(Command::AcceptKeyChange(session));
    }

    /// The page shows this now (tiles, the large one, nobody else): our relay is told.
    pub fn set_view(&self, view: videocall_client::call::View) {
        self.send(Command::SetView(view));
    }

    /// Leaves for good: the connection closes, the camera and microphone stop.
    pub fn leave(&self) {
        self.send(Command::Leave);
    }

    /// `window.videocallStats()`: a promise of the call's figures as JSON, answered by its
    /// worker (`'{}'` once the call is over).
    fn install_stats_hook(&self) {
        let tx = self.tx.clone();
        let hook = Closure::<dyn FnMut() -> js_sys::Promise>::new(move || {
            let tx = tx.clone();
            js_sys::Promise::new(&mut |resolve, _| {
                if let Err(e) = tx.unbounded_send(page::Msg::Command(Command::Stats(resolve))) {
                    if let page::Msg::Command(Command::Stats(resolve)) = e.into_inner() {
                        let _ = resolve.call1(&JsValue::NULL, &"{}".into());
                    }
                }
            })
        });
        if let Some(window) = web_sys::window() {
            super::js::set(&window, "videocallStats", hook.into_js_value());
        }
    }
}
