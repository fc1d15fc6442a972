//! The call's one task, in the call's worker. It owns the engine and every browser object the
//! call uses there (transport, encoders, decoders, the ports to playback and drawing); messages
//! come in on one channel, one at a time, and after each the engine's outputs are carried out
//! and its packets sent. What only the page can do (its camera track, performance marks, what
//! it shows) it asks of the page (`ToPage`). Nothing here decides anything the engine could:
//! this file only translates between the engine and the browser.

use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::StreamExt as _;
use rand_core::OsRng;
use videocall_client::Millis;
use videocall_client::call::{EncodedAudio, EncodedVideo, Engine, Failure, MediaState, Output, Update, VideoStream};
use videocall_client::peers::Done;
use wasm_bindgen_futures::spawn_local;
use web_sys::{MessagePort, ReadableStream};

use super::connect::{self, Params};
use super::media::PeerMedia;
use super::wire::{CallCommand, Start, ToPage};
use crate::services::identity::BrowserIdentity;
use crate::services::media::audio_out::AudioOut;
use crate::services::media::audio_send::AudioSender;
use crate::services::media::draw::Frames;
use crate::services::media::video_send::{self, VideoSender};
use crate::services::transport::Transport;
use crate::services::{api, js};

/// Screen share: sharp text matters more than motion.
const SCREEN_BITRATE: u32 = 1_500_000;
const SCREEN_FPS: f64 = 15.0;
/// How often the task wakes for the engine's timers: its deadlines are a second (heartbeats)
/// and half a second (the first backoff), so a tenth of a second is close enough.
const WAKE_MS: i32 = 100;
/// The page's figures (rates, levels, speaking) once a second.
const REPORT_MS: f64 = 1_000.0;

/// Tells the page.
pub type ToPageFn = Rc<dyn Fn(ToPage)>;

/// Everything the task hears.
pub enum Msg {
    /// The page's commands that carry no browser objects.
    Page(CallCommand),
    /// Our camera's and microphone's frames, the camera at this size.
    Attach {
        width: u32,
        height: u32,
        video: Option<ReadableStream>,
        audio: Option<ReadableStream>,
    },
    /// A shared screen's frames.
    ScreenOpened(ReadableStream),
    /// The port to the page's playback worklet.
    Playback(MessagePort),
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
}

pub struct Driver {
    pub engine: Engine<OsRng>,
    tx: UnboundedSender<Msg>,
    page: ToPageFn,
    /// Signs and unwraps for the engine; its private keys stay in WebCrypto.
    identity: Rc<BrowserIdentity>,
    params: Rc<Params>,
    meeting: Option<String>,
    /// The generation of the attempt the engine last asked for.
    generation: u32,
    pub transport: Option<Transport>,
    /// `?codec=` in the page's link.
    wanted_codec: Option<String>,
    /// The camera's frames, until its codec is chosen and its sender reads them.
    camera_frames: Option<ReadableStream>,
    microphone: Option<AudioSender>,
    pub camera: Option<VideoSender>,
    screen: Option<VideoSender>,
    /// The camera's codec, once chosen.
    pub codec: Option<String>,
    pub peers: HashMap<u64, PeerMedia>,
    /// Frames to the drawing worker, which draws every remote tile.
    pub frames: Rc<Frames>,
    pub audio_out: Option<Rc<AudioOut>>,
    /// Add to this worker's `performance.now()` for the page's.
    pub page_offset_ms: f64,
    /// When the user pressed join, and when the transport last came up, on the page's clock.
    pub joined_at_ms: f64,
    pub connected_at_ms: f64,
    next_report_ms: f64,
    over: bool,
}

/// Starts the call's task; returns its channel.
pub fn start(start: Start, identity: BrowserIdentity, frames: Rc<Frames>, page: ToPageFn) -> UnboundedSender<Msg> {
    let (tx, rx) = unbounded();
    let media = MediaState { audio_on: start.audio_on, video_on: start.video_on, screen_on: false };
    let engine = Engine::new(OsRng, identity.public().clone(), &start.display_name, media);
    let now = js::now_ms();
    let driver = Driver {
        engine,
        tx: tx.clone(),
        page,
        identity: Rc::new(identity),
        params: Rc::new(Params {
            room: start.room,
            meeting: start.meeting.clone(),
            display_name: start.display_name,
            preference: start.preference,
            websocket_origin: start.websocket_origin,
        }),
        meeting: start.meeting,
        generation: 0,
        transport: None,
        wanted_codec: start.codec,
        camera_frames: None,
        microphone: None,
        camera: None,
        screen: None,
        codec: None,
        peers: HashMap::new(),
        frames,
        audio_out: None,
        page_offset_ms: js::wall_ms() - now - start.page_origin_ms,
        joined_at_ms: start.joined_at_ms,
        connected_at_ms: 0.0,
        next_report_ms: now + REPORT_MS,
        over: false,
    };
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
        // Anyone still waiting for figures gets an empty answer; then the page ends the worker.
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Page(CallCommand::Stats(id)) = msg {
                (self.page)(ToPage::StatsJson { id, json: "{}".into() });
            }
        }
        (self.page)(ToPage::Ended);
    }

    fn handle(&mut self, msg: Msg) {
        let now_ms = js::now_ms();
        let now = now_ms as Millis;
        match msg {
            Msg::Page(command) => self.command(now, command),
            Msg::Attach { width, height, video, audio } => self.attach(width, height, video, audio),
            Msg::ScreenOpened(frames) => self.start_screen(now, &frames),
            Msg::Playback(port) => self.audio_out = Some(Rc::new(AudioOut::new(port))),
            Msg::Wake => {
                if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                    self.engine.handle_timeout(now);
                }
                if now_ms >= self.next_report_ms {
                    self.next_report_ms = now_ms + REPORT_MS;
                    let report = super::stats::report(self);
                    (self.page)(report);
                }
            }
            Msg::Connected { generation, transport, user, room } => {
                if generation != self.generation {
                    return; // dropping it closes it
                }
                let kind = transport.kind;
                self.transport = Some(transport);
                self.connected_at_ms = now_ms + self.page_offset_ms;
                (self.page)(ToPage::Mark("videocall:connected".into()));
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
            Msg::CameraCodec(codec) => self.start_camera(codec),
        }
    }

    fn command(&mut self, now: Millis, command: CallCommand) {
        match command {
            CallCommand::SetAudio(on) => self.engine.set_audio(now, on),
            CallCommand::SetVideo(on) => self.engine.set_video(now, on),
            CallCommand::ScreenEnded => {
                self.screen = None;
                self.engine.set_screen(now, false);
            }
            CallCommand::Chat(text) => self.engine.send_chat(&text),
            CallCommand::AcceptKeyChange(session) => {
                if let Err(e) = self.engine.accept_key_change(now, session) {
                    web_sys::console::error_1(&e.to_string().into());
                }
            }
            CallCommand::Leave => {
                self.engine.leave();
                if let Some(meeting) = self.meeting.clone() {
                    spawn_local(async move {
                        let _ = api::leave_meeting(&meeting).await;
                    });
                }
            }
            CallCommand::Stats(id) => (self.page)(ToPage::StatsJson { id, json: super::stats::json(self) }),
            CallCommand::SetView(view) => self.engine.set_view(view),
        }
    }

    /// After each message: the send queue told to the engine, private-key work to WebCrypto,
    /// the engine's outputs carried out, its packets sent.
    fn after(&mut self) {
        if let Some(transport) = &self.transport {
            self.engine.set_queued_bytes(transport.queued_bytes());
        }
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
            Output::Keyframe { stream, layer } => {
                if let Some(sender) = self.sender(stream) {
                    sender.request_keyframe(layer);
                }
            }
            Output::Layers { stream, active } => {
                if let Some(sender) = self.sender(stream) {
                    sender.set_active(active);
                }
            }
            Output::Rung(rung) => {
                if let Some(camera) = &self.camera {
                    if let Err(e) = camera.set_rung(rung.into(), self.engine.camera_lower_layers()) {
                        web_sys::console::error_1(&format!("camera layers not changed: {e}").into());
                    }
                    (self.page)(ToPage::Constraints { width: rung.width, height: rung.height, fps: rung.fps });
                }
            }
            Output::Microphone { on } => {
                if let Some(microphone) = &self.microphone {
                    microphone.set_muted(!on);
                }
            }
            Output::HoldVideo { held } => {
                for sender in [&self.camera, &self.screen].into_iter().flatten() {
                    sender.set_held(held);
                }
            }
            Output::Camera { on } => {
                if let Some(camera) = &self.camera {
                    camera.set_paused(!on);
                }
                (self.page)(ToPage::Camera { on });
            }
            Output::Decode(frame) => {
                let peer = self.peers.entry(frame.session).or_default();
                if !peer.decode(&frame, &self.frames) {
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
                (self.page)(ToPage::Update(update));
            }
        }
    }

    fn sender(&self, stream: VideoStream) -> Option<&VideoSender> {
        match stream {
            VideoStream::Camera => self.camera.as_ref(),
            VideoStream::Screen => self.screen.as_ref(),
        }
    }

    /// The call is over (we left, or a final close): the transport closes, encoding and
    /// playback stop, the task ends (and the page stops capture).
    fn stop(&mut self) {
        self.transport = None;
        self.camera = None;
        self.camera_frames = None;
        self.microphone = None;
        self.screen = None;
        self.peers.clear();
        self.audio_out = None;
        self.over = true;
    }

    /// Our camera and microphone opened: the microphone's sender starts, and the camera's once
    /// a codec is chosen for the size it gives.
    fn attach(&mut self, width: u32, height: u32, video: Option<ReadableStream>, audio: Option<ReadableStream>) {
        if let Some(frames) = audio.filter(|_| self.microphone.is_none()) {
            let tx = self.tx.clone();
            let sink = Rc::new(move |audio| {
                let _ = tx.unbounded_send(Msg::Audio(audio));
            });
            match AudioSender::start(&frames, sink) {
                Ok(sender) => {
                    sender.set_muted(!self.engine.media().audio_on);
                    self.microphone = Some(sender);
                }
                Err(e) => web_sys::console::error_1(&format!("no microphone encoding: {e}").into()),
            }
        }
        let Some(frames) = video.filter(|_| self.camera_frames.is_none() && self.camera.is_none()) else { return };
        self.camera_frames = Some(frames);
        let rung = self.engine.camera_opened(width, height);
        let (tx, wanted) = (self.tx.clone(), self.wanted_codec.clone());
        spawn_local(async move {
            let codec = video_send::choose_codec(wanted.as_deref(), width, height, rung.bitrate)
                .await
                .unwrap_or_else(|| "vp8".into());
            let _ = tx.unbounded_send(Msg::CameraCodec(codec));
        });
    }

    fn video_sink(&self, stream: VideoStream) -> video_send::OnEncoded {
        let tx = self.tx.clone();
        Rc::new(move |frame| {
            let _ = tx.unbounded_send(Msg::Video(stream, frame));
        })
    }

    /// The camera's codec is chosen: its sender starts at the ladder's rung with the layers
    /// the engine planned under it, running those the relays take, paused while the camera is
    /// off.
    fn start_camera(&mut self, codec: String) {
        self.codec = Some(codec);
        let (Some(frames), Some(codec), Some(ladder)) = (self.camera_frames.take(), &self.codec, self.engine.ladder())
        else {
            return;
        };
        let rung = ladder.rung();
        let lower = self.engine.camera_lower_layers();
        match VideoSender::start(&frames, codec, rung.bitrate, rung.fps, lower, self.video_sink(VideoStream::Camera)) {
            Ok(sender) => {
                sender.set_active(self.engine.send_layers(VideoStream::Camera).active());
                sender.set_paused(!self.engine.media().video_on);
                sender.set_held(self.engine.video_held());
                self.camera = Some(sender);
            }
            Err(e) => web_sys::console::error_1(&format!("no camera encoding: {e}").into()),
        }
    }

    fn start_screen(&mut self, now: Millis, frames: &ReadableStream) {
        if self.screen.is_some() {
            return;
        }
        let codec = self.codec.clone().unwrap_or_else(|| "vp8".into());
        // Screen share keeps one high layer: text shrunk to a thumbnail is unreadable anyway.
        match VideoSender::start(frames, &codec, SCREEN_BITRATE, SCREEN_FPS, &[], self.video_sink(VideoStream::Screen))
        {
            Ok(sender) => {
                sender.set_active(self.engine.send_layers(VideoStream::Screen).active());
                sender.set_held(self.engine.video_held());
                self.screen = Some(sender);
                self.engine.set_screen(now, true);
            }
            Err(e) => {
                (self.page)(ToPage::StopScreen);
                web_sys::console::error_1(&format!("no screen encoding: {e}").into());
            }
        }
    }
}
