//! The call's one task. It owns the engine and every browser object the call uses; messages
//! come in on one channel, one at a time, and after each the engine's outputs are carried out
//! and its packets sent. Nothing here decides anything the engine could: this file only
//! translates between the engine and the browser.

use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::StreamExt as _;
use rand_core::OsRng;
use videocall_client::Millis;
use videocall_client::call::{EncodedAudio, EncodedVideo, Engine, Failure, MediaState, Output, Update, VideoStream};
use videocall_client::peers::Done;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{MediaStream, MediaStreamTrack};

use super::connect::{self, Params};
use super::media::PeerMedia;
use super::{Command, Dispatch, JoinRequest};
use crate::services::identity::BrowserIdentity;
use crate::services::media::audio_out::AudioOut;
use crate::services::media::audio_send::AudioSender;
use crate::services::media::capture;
use crate::services::media::draw::Drawer;
use crate::services::media::level::LevelMeter;
use crate::services::media::video_send::{self, VideoSender};
use crate::services::transport::Transport;
use crate::services::{api, js};
use crate::types::room::RoomAction;

/// Screen share: sharp text matters more than motion.
const SCREEN_BITRATE: u32 = 1_500_000;
const SCREEN_FPS: f64 = 15.0;
/// How often the task wakes for the engine's timers: its deadlines are a second (heartbeats)
/// and half a second (the first backoff), so a tenth of a second is close enough.
const WAKE_MS: i32 = 100;
/// The page's figures (rates, levels, speaking) once a second.
const REPORT_MS: f64 = 1_000.0;

/// Everything the task hears.
pub enum Msg {
    Command(Command),
    /// The wake-up timer.
    Wake,
    Connected {
        generation: u32,
        transport: Transport,
        user: String,
        room: String,
    },
    ConnectFailed {
        generation: u32,
        failure: Failure,
    },
    Bytes {
        generation: u32,
        bytes: Vec<u8>,
    },
    Closed {
        generation: u32,
        code: u32,
        reason: String,
    },
    /// A WebCrypto answer to the engine's private-key work.
    Done(Done),
    Video(VideoStream, EncodedVideo),
    Audio(EncodedAudio),
    /// The camera's codec is chosen: its sender may start.
    CameraCodec(String),
    ScreenOpened(MediaStream),
    /// The browser's own "Stop sharing" ended the screen track.
    ScreenEnded,
    AudioOut(AudioOut),
}

pub struct Driver {
    pub engine: Engine<OsRng>,
    tx: UnboundedSender<Msg>,
    dispatch: Dispatch,
    /// Signs and unwraps for the engine; its private keys stay in WebCrypto.
    identity: Rc<BrowserIdentity>,
    params: Rc<Params>,
    meeting: Option<String>,
    /// The generation of the attempt the engine last asked for.
    generation: u32,
    pub transport: Option<Transport>,
    stream: Option<MediaStream>,
    pub level: Option<LevelMeter>,
    microphone: Option<AudioSender>,
    pub camera: Option<VideoSender>,
    screen: Option<(VideoSender, MediaStream)>,
    /// The camera's codec, once chosen.
    pub codec: Option<String>,
    pub peers: HashMap<u64, PeerMedia>,
    /// Draws every remote tile, off this thread.
    pub drawer: Option<Rc<Drawer>>,
    pub audio_out: Option<Rc<AudioOut>>,
    /// `performance.now()` when the user pressed join, and when the transport last came up.
    pub joined_at_ms: f64,
    pub connected_at_ms: f64,
    next_report_ms: f64,
    over: bool,
}

/// Starts the call's task; returns its channel.
pub fn start(request: JoinRequest, dispatch: Dispatch) -> UnboundedSender<Msg> {
    let (tx, rx) = unbounded();
    let media = MediaState { audio_on: request.audio_on, video_on: request.video_on, screen_on: false };
    let engine = Engine::new(OsRng, request.identity.public().clone(), &request.display_name, media);
    let now = js::now_ms();
    let driver = Driver {
        engine,
        tx: tx.clone(),
        dispatch,
        identity: Rc::new(request.identity),
        params: Rc::new(Params {
            room: request.room,
            meeting: request.meeting.clone(),
            display_name: request.display_name,
            preference: request.preference,
        }),
        meeting: request.meeting,
        generation: 0,
        transport: None,
        stream: None,
        level: None,
        microphone: None,
        camera: None,
        screen: None,
        codec: None,
        peers: HashMap::new(),
        drawer: Drawer::start().map_err(|e| web_sys::console::error_1(&format!("no drawing worker: {e}").into())).ok(),
        audio_out: None,
        joined_at_ms: now,
        connected_at_ms: 0.0,
        next_report_ms: now + REPORT_MS,
        over: false,
    };
    let playback = tx.clone();
    let context = request.audio_context;
    spawn_local(async move {
        match AudioOut::start(context).await {
            Ok(out) => {
                let _ = playback.unbounded_send(Msg::AudioOut(out));
            }
            Err(e) => web_sys::console::error_1(&format!("no audio playback: {e}").into()),
        }
    });
    let waker = tx.clone();
    spawn_local(async move {
        while !waker.is_closed() {
            js::sleep(WAKE_MS).await;
            let _ = waker.unbounded_send(Msg::Wake);
        }
    });
    spawn_local(driver.run(rx));
    tx
}

fn first_track(tracks: js_sys::Array) -> Option<MediaStreamTrack> {
    tracks.iter().next().map(JsCast::unchecked_into)
}

impl Driver {
    async fn run(mut self, mut rx: UnboundedReceiver<Msg>) {
        self.engine.start(js::now_ms() as Millis);
        self.after();
        while let Some(msg) = rx.next().await {
            self.handle(msg);
            self.after();
            if self.over {
                break;
            }
        }
        // Anyone still waiting for figures gets an empty answer.
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Command(Command::Stats(resolve)) = msg {
                let _ = resolve.call1(&JsValue::NULL, &"{}".into());
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now_ms = js::now_ms();
        let now = now_ms as Millis;
        match msg {
            Msg::Command(command) => self.command(now, command),
            Msg::Wake => {
                if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                    let queued = self.transport.as_ref().map_or(0.0, Transport::queued_bytes);
                    self.engine.set_queued_bytes(queued);
                    self.engine.handle_timeout(now);
                }
                if now_ms >= self.next_report_ms {
                    self.next_report_ms = now_ms + REPORT_MS;
                    let report = super::stats::report(self);
                    (self.dispatch)(report);
                }
            }
            Msg::Connected { generation, transport, user, room } => {
                if generation != self.generation {
                    return; // dropping it closes it
                }
                let kind = transport.kind;
                self.transport = Some(transport);
                self.connected_at_ms = now_ms;
                js::mark("videocall:connected");
                self.engine.connected_as(now, generation, kind, &user, &room);
            }
            Msg::ConnectFailed { generation, failure } => self.engine.connect_failed(now, generation, failure),
            Msg::Bytes { generation, bytes } => self.engine.handle_bytes(now, generation, &bytes),
            Msg::Closed { generation, code, reason } => {
                if generation == self.generation {
                    self.transport = None;
                }
                self.engine.closed(now, generation, code, &reason);
            }
            Msg::Done(done) => self.engine.complete(now, done),
            Msg::Video(stream, frame) => {
                if let Err(e) = self.engine.send_video(stream, frame) {
                    web_sys::console::error_1(&format!("sealing a frame failed: {e}").into());
                }
            }
            Msg::Audio(audio) => {
                if let Err(e) = self.engine.send_audio(audio) {
                    web_sys::console::error_1(&format!("sealing audio failed: {e}").into());
                }
            }
            Msg::CameraCodec(codec) => {
                self.codec = Some(codec);
                self.set_camera(self.engine.media().video_on);
            }
            Msg::ScreenOpened(stream) => self.start_screen(now, stream),
            Msg::ScreenEnded => {
                if let Some((_, stream)) = self.screen.take() {
                    capture::stop(&stream);
                }
                self.engine.set_screen(now, false);
            }
            Msg::AudioOut(out) => self.audio_out = Some(Rc::new(out)),
        }
    }

    fn command(&mut self, now: Millis, command: Command) {
        match command {
            Command::AttachStream(stream) => self.attach(stream),
            Command::SetAudio(on) => self.engine.set_audio(now, on),
            Command::SetVideo(on) => self.engine.set_video(now, on),
            Command::ToggleScreen => match self.screen.take() {
                Some((_, stream)) => {
                    capture::stop(&stream);
                    self.engine.set_screen(now, false);
                }
                None => {
                    let tx = self.tx.clone();
                    spawn_local(async move {
                        match capture::screen().await {
                            Ok(stream) => {
                                if let Err(e) = tx.unbounded_send(Msg::ScreenOpened(stream)) {
                                    if let Msg::ScreenOpened(s) = e.into_inner() {
                                        capture::stop(&s);
                                    }
                                }
                            }
                            Err(e) => web_sys::console::warn_1(&e.into()),
                        }
                    });
                }
            },
            Command::Chat(text) => self.engine.send_chat(&text),
            Command::AcceptKeyChange(session) => {
                if let Err(e) = self.engine.accept_key_change(now, session) {
                    web_sys::console::error_1(&e.to_string().into());
                }
            }
            Command::Leave => {
                self.engine.leave();
                if let Some(meeting) = self.meeting.clone() {
                    spawn_local(async move {
                        let _ = api::leave_meeting(&meeting).await;
                    });
                }
            }
            Command::Stats(resolve) => {
                let _ = resolve.call1(&JsValue::NULL, &super::stats::json(self).into());
            }
        }
    }

    /// After each message: private-key work to WebCrypto, the engine's outputs carried out,
    /// its packets sent.
    fn after(&mut self) {
        while let Some(work) = self.engine.poll_work() {
            let (tx, identity) = (self.tx.clone(), self.identity.clone());
            spawn_local(async move {
                let _ = tx.unbounded_send(Msg::Done(identity.perform(work).await));
            });
        }
        while let Some(output) = self.engine.poll_output() {
            self.output(output);
        }
        if let Some(transport) = &self.transport {
            while let Some(bytes) = self.engine.poll_transmit() {
                transport.send(&bytes);
            }
        }
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::Connect { generation } => {
                self.generation = generation;
                self.transport = None;
                spawn_local(connect::attempt(self.params.clone(), generation, self.tx.clone()));
            }
            Output::Disconnect => self.stop(),
            Output::Keyframe(VideoStream::Camera) => {
                if let Some(camera) = &self.camera {
                    camera.request_keyframe();
                }
            }
            Output::Keyframe(VideoStream::Screen) => {
                if let Some((screen, _)) = &self.screen {
                    screen.request_keyframe();
                }
            }
            Output::Rung(rung) => {
                if let Some(camera) = &self.camera {
                    camera.set_rung(rung.width, rung.height, rung.bitrate, rung.fps);
                }
            }
            Output::Microphone { on } => {
                if let Some(microphone) = &self.microphone {
                    microphone.set_muted(!on);
                }
            }
            Output::Camera { on } => self.set_camera(on),
            Output::Decode(frame) => {
                let Some(drawer) = &self.drawer else { return };
                let peer = self.peers.entry(frame.session).or_default();
                if !peer.decode(&frame, drawer) {
                    self.engine.need_keyframe(js::now_ms() as Millis, frame.session, frame.stream);
                }
            }
            Output::Play(audio) => {
                if let Some(out) = &self.audio_out {
                    self.peers.entry(audio.session).or_default().play(&audio, out);
                }
            }
            Output::Show(update) => {
                match &update {
                    Update::Left { session } => {
                        self.peers.remove(session);
                        if let Some(out) = &self.audio_out {
                            out.forget(*session);
                        }
                    }
                    Update::PeerMedia { session, state } if !state.screen_on => {
                        if let Some(peer) = self.peers.get_mut(session) {
                            peer.screen = None;
                        }
                    }
                    _ => {}
                }
                (self.dispatch)(RoomAction::Call(update));
            }
        }
    }

    /// The call is over (we left, or a final close): the transport closes, capture and
    /// playback stop, the task ends.
    fn stop(&mut self) {
        self.transport = None;
        self.camera = None;
        self.microphone = None;
        if let Some((_, stream)) = self.screen.take() {
            capture::stop(&stream);
        }
        self.peers.clear();
        self.audio_out = None;
        self.level = None;
        if let Some(stream) = self.stream.take() {
            capture::stop(&stream);
        }
        self.over = true;
    }

    /// The track of our camera (`video`) or microphone.
    fn local_track(&self, video: bool) -> Option<MediaStreamTrack> {
        let stream = self.stream.as_ref()?;
        first_track(if video { stream.get_video_tracks() } else { stream.get_audio_tracks() })
    }

    /// Our camera and microphone opened: the microphone's sender starts, and the camera's once
    /// a codec is chosen for the size it gives.
    fn attach(&mut self, stream: MediaStream) {
        if self.stream.is_some() {
            return capture::stop(&stream);
        }
        self.level = LevelMeter::new(&stream).ok();
        self.stream = Some(stream);
        if let Some(track) = self.local_track(false) {
            let tx = self.tx.clone();
            let sink = Rc::new(move |audio| {
                let _ = tx.unbounded_send(Msg::Audio(audio));
            });
            match AudioSender::start(track, sink) {
                Ok(sender) => {
                    sender.set_muted(!self.engine.media().audio_on);
                    self.microphone = Some(sender);
                }
                Err(e) => web_sys::console::error_1(&format!("no microphone encoding: {e}").into()),
            }
        }
        let Some(track) = self.local_track(true) else { return };
        let settings = track.get_settings();
        let width = settings.get_width().unwrap_or(640) as u32;
        let height = settings.get_height().unwrap_or(480) as u32;
        let rung = self.engine.camera_opened(width, height);
        let tx = self.tx.clone();
        spawn_local(async move {
            let codec = video_send::choose_codec(width, height, rung.bitrate).await.unwrap_or_else(|| "vp8".into());
            let _ = tx.unbounded_send(Msg::CameraCodec(codec));
        });
    }

    fn video_sink(&self, stream: VideoStream) -> video_send::OnEncoded {
        let tx = self.tx.clone();
        Rc::new(move |frame| {
            let _ = tx.unbounded_send(Msg::Video(stream, frame));
        })
    }

    /// The camera's sender on (at the ladder's rung) or off.
    fn set_camera(&mut self, on: bool) {
        let Some(track) = self.local_track(true) else { return };
        track.set_enabled(on);
        self.camera = None;
        let (Some(codec), Some(ladder), true) = (&self.codec, self.engine.ladder(), on) else { return };
        let rung = ladder.rung();
        match VideoSender::start(track, codec, rung.bitrate, rung.fps, self.video_sink(VideoStream::Camera)) {
            Ok(sender) => self.camera = Some(sender),
            Err(e) => web_sys::console::error_1(&format!("no camera encoding: {e}").into()),
        }
    }

    fn start_screen(&mut self, now: Millis, stream: MediaStream) {
        let Some(track) = first_track(stream.get_video_tracks()) else { return capture::stop(&stream) };
        if self.screen.is_some() {
            return capture::stop(&stream);
        }
        let tx = self.tx.clone();
        let on_ended = Closure::once_into_js(move || {
            let _ = tx.unbounded_send(Msg::ScreenEnded);
        });
        track.set_onended(Some(on_ended.unchecked_ref()));
        let codec = self.codec.clone().unwrap_or_else(|| "vp8".into());
        match VideoSender::start(track, &codec, SCREEN_BITRATE, SCREEN_FPS, self.video_sink(VideoStream::Screen)) {
            Ok(sender) => {
                self.screen = Some((sender, stream));
                self.engine.set_screen(now, true);
            }
            Err(e) => {
                capture::stop(&stream);
                web_sys::console::error_1(&format!("no screen encoding: {e}").into());
            }
        }
    }
}
