//! The call's page side: one task behind the [`Call`](super::Call) handle. It holds what only
//! the page can (the camera and microphone, the screen share, playback's audio context, the
//! level of our own microphone), hands their frames to the call's worker as transferable
//! streams, carries out what the worker asks of the page, and dispatches what it reports into
//! the room's state. No frame passes through here.

use std::collections::HashMap;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::StreamExt as _;
use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{MediaStream, MediaStreamTrack, MessageEvent, MessagePort, Worker, WorkerOptions, WorkerType};

use super::stats::SPEAKING_LEVEL;
use super::wire::{self, CallCommand, Start, ToPage, ToWorker};
use super::{Command, Dispatch, JoinRequest};
use crate::services::identity;
use crate::services::js;
use crate::services::media::audio_out::Playback;
use crate::services::media::level::LevelMeter;
use crate::services::media::{capture, draw, track_frames};
use crate::types::room::{RoomAction, Update};

/// Camera frames the track's processor holds while the worker is busy: one. When the encoder
/// is slow the camera's older frames are dropped rather than queued (each is 33 ms of latency).
const VIDEO_BUFFER: u16 = 1;
/// Audio arrives in 10 ms pieces and every one matters: half a second of slack.
const AUDIO_BUFFER: u16 = 50;

/// Everything the page task hears.
pub enum Msg {
    Command(Command),
    /// A message from the call's worker.
    Worker(JsValue),
    /// Playback is ready; the port goes to the worker.
    Playback(Playback, MessagePort),
    ScreenOpened(MediaStream),
    /// The browser's own "Stop sharing" ended the screen track.
    ScreenEnded,
}

struct Page {
    worker: Worker,
    tx: UnboundedSender<Msg>,
    dispatch: Dispatch,
    stream: Option<MediaStream>,
    screen: Option<MediaStream>,
    level: Option<LevelMeter>,
    playback: Option<Playback>,
    audio_on: bool,
    video_on: bool,
    /// `window.videocallStats()` promises waiting for the worker, by id.
    stats: HashMap<u32, Function>,
    next_stats: u32,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

/// Starts the call's worker and the page's task; returns the task's channel.
pub fn start(request: JoinRequest, dispatch: Dispatch) -> Result<UnboundedSender<Msg>, String> {
    let (tx, rx) = unbounded();
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let worker = Worker::new_with_options("/call-worker.js", &options).map_err(|e| js::describe(&e))?;
    let incoming = tx.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let _ = incoming.unbounded_send(Msg::Worker(event.data()));
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    let on_error = Closure::<dyn FnMut(JsValue)>::new(|e: JsValue| {
        web_sys::console::error_2(&"the call's worker failed:".into(), &e);
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

    let location = js::window().map_err(|e| js::describe(&e))?.location();
    let scheme = if location.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
    let start = Start {
        room: request.room,
        meeting: request.meeting,
        display_name: request.display_name,
        preference: request.preference,
        audio_on: request.audio_on,
        video_on: request.video_on,
        codec: js::query_param("codec"),
        websocket_origin: format!("{scheme}://{}", location.host().unwrap_or_default()),
        page_origin_ms: js::wall_ms() - js::now_ms(),
        joined_at_ms: js::now_ms(),
    };
    let draw = draw::channel()?;
    let message = wire::envelope(
        &ToWorker::Start(Box::new(start)),
        &[("identity", &identity::to_js(&request.identity)), ("draw", &draw)],
    );
    worker.post_message_with_transfer(&message, &Array::of1(&draw)).map_err(|e| js::describe(&e))?;

    let playback = tx.clone();
    let context = request.audio_context;
    spawn_local(async move {
        match Playback::start(context).await {
            Ok((out, port)) => {
                let _ = playback.unbounded_send(Msg::Playback(out, port));
            }
            Err(e) => web_sys::console::error_1(&format!("no audio playback: {e}").into()),
        }
    });
    let page = Page {
        worker,
        tx: tx.clone(),
        dispatch,
        stream: None,
        screen: None,
        level: None,
        playback: None,
        audio_on: request.audio_on,
        video_on: request.video_on,
        stats: HashMap::new(),
        next_stats: 0,
        _on_message: on_message,
        _on_error: on_error,
    };
    spawn_local(page.run(rx));
    Ok(tx)
}

fn first_track(tracks: Array) -> Option<MediaStreamTrack> {
    tracks.iter().next().map(JsCast::unchecked_into)
}

impl Page {
    async fn run(mut self, mut rx: UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.next().await {
            if self.handle(msg) {
                break;
            }
        }
        self.stop();
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Command(Command::Stats(resolve)) => {
                    let _ = resolve.call1(&JsValue::NULL, &"{}".into());
                }
                Msg::Command(Command::AttachStream(s)) | Msg::ScreenOpened(s) => capture::stop(&s),
                _ => {}
            }
        }
    }

    fn post(&self, message: &ToWorker, parts: &[(&str, &JsValue)], transfer: &[&JsValue]) {
        let transfer: Array = transfer.iter().copied().collect();
        if let Err(e) = self.worker.post_message_with_transfer(&wire::envelope(message, parts), &transfer) {
            web_sys::console::error_1(&format!("to the call's worker: {}", js::describe(&e)).into());
        }
    }

    /// A command for the call's task.
    fn tell(&self, command: CallCommand) {
        self.post(&ToWorker::Call(command), &[], &[]);
    }

    /// Handles one message; true when the call is over.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Command(command) => self.command(command),
            Msg::Worker(data) => match wire::open::<ToPage>(&data) {
                Ok(message) => return self.worker_said(message),
                Err(e) => web_sys::console::error_1(&format!("from the call's worker: {e}").into()),
            },
            Msg::Playback(playback, port) => {
                self.playback = Some(playback);
                self.post(&ToWorker::Playback, &[("port", &port)], &[&port]);
            }
            Msg::ScreenOpened(stream) => self.share(stream),
            Msg::ScreenEnded => {
                if let Some(stream) = self.screen.take() {
                    capture::stop(&stream);
                    self.tell(CallCommand::ScreenEnded);
                }
            }
        }
        false
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::AttachStream(stream) => self.attach(stream),
            Command::SetAudio(on) => self.tell(CallCommand::SetAudio(on)),
            Command::SetVideo(on) => self.tell(CallCommand::SetVideo(on)),
            Command::ToggleScreen => match self.screen.take() {
                Some(stream) => {
                    capture::stop(&stream);
                    self.tell(CallCommand::ScreenEnded);
                }
                None => {
                    let tx = self.tx.clone();
                    spawn_local(async move {
                        match capture::screen().await {
                            Ok(stream) => {
                                if let Err(e) = tx.unbounded_send(Msg::ScreenOpened(stream))
                                    && let Msg::ScreenOpened(s) = e.into_inner()
                                {
                                    capture::stop(&s);
                                }
                            }
                            Err(e) => web_sys::console::warn_1(&e.into()),
                        }
                    });
                }
            },
            Command::Chat(text) => self.tell(CallCommand::Chat(text)),
            Command::AcceptKeyChange(session) => self.tell(CallCommand::AcceptKeyChange(session)),
            Command::Leave => self.tell(CallCommand::Leave),
            Command::SetView(view) => self.tell(CallCommand::SetView(view)),
            Command::Stats(resolve) => {
                let id = self.next_stats;
                self.next_stats = self.next_stats.wrapping_add(1);
                self.stats.insert(id, resolve);
                self.tell(CallCommand::Stats(id));
            }
        }
    }

    fn worker_said(&mut self, message: ToPage) -> bool {
        match message {
            ToPage::Update(update) => {
                if let Update::LocalMedia(state) = &update {
                    (self.audio_on, self.video_on) = (state.audio_on, state.video_on);
                }
                (self.dispatch)(RoomAction::Call(update));
            }
            ToPage::Stats(peers) => {
                let me_speaking = self.audio_on && self.level.as_mut().is_some_and(|l| l.level() > SPEAKING_LEVEL);
                (self.dispatch)(RoomAction::Stats { peers, me_speaking });
            }
            ToPage::Camera { on } => {
                self.video_on = on;
                if let Some(track) = self.track(true) {
                    track.set_enabled(on);
                }
            }
            ToPage::Constraints { width, height, fps } => {
                let Some(track) = self.track(true) else { return false };
                let constraints = js::object();
                js::set(&constraints, "width", width);
                js::set(&constraints, "height", height);
                js::set(&constraints, "frameRate", fps);
                if let Ok(p) = track.apply_constraints_with_constraints(constraints.unchecked_ref()) {
                    // A camera that cannot do the size keeps its own; the encoder follows the frames.
                    spawn_local(async move {
                        let _ = JsFuture::from(p).await;
                    });
                }
            }
            ToPage::StopScreen => {
                if let Some(stream) = self.screen.take() {
                    capture::stop(&stream);
                }
            }
            ToPage::Mark(name) => js::mark(&name),
            ToPage::StatsJson { id, json } => {
                if let Some(resolve) = self.stats.remove(&id) {
                    let _ = resolve.call1(&JsValue::NULL, &json.into());
                }
            }
            ToPage::Ended => return true,
        }
        false
    }

    /// The track of our camera (`video`) or microphone.
    fn track(&self, video: bool) -> Option<MediaStreamTrack> {
        let stream = self.stream.as_ref()?;
        first_track(if video { stream.get_video_tracks() } else { stream.get_audio_tracks() })
    }

    /// Our camera and microphone opened: their frames go to the worker.
    fn attach(&mut self, stream: MediaStream) {
        if self.stream.is_some() {
            return capture::stop(&stream);
        }
        self.level = LevelMeter::new(&stream).ok();
        self.stream = Some(stream);
        let frames = |video: bool, buffer: u16| {
            let track = self.track(video)?;
            track_frames(&track, buffer)
                .map_err(|e| web_sys::console::error_1(&format!("no frames from {}: {e}", track.kind()).into()))
                .ok()
        };
        let (video, audio) = (frames(true, VIDEO_BUFFER), frames(false, AUDIO_BUFFER));
        let (mut width, mut height) = (640, 480);
        if let Some(track) = self.track(true) {
            track.set_enabled(self.video_on);
            let settings = track.get_settings();
            width = settings.get_width().unwrap_or(640) as u32;
            height = settings.get_height().unwrap_or(480) as u32;
        }
        let (video, audio) = (video.map_or(JsValue::NULL, Into::into), audio.map_or(JsValue::NULL, Into::into));
        let transfer: Vec<&JsValue> = [&video, &audio].into_iter().filter(|v| !v.is_null()).collect();
        self.post(&ToWorker::Attach { width, height }, &[("video", &video), ("audio", &audio)], &transfer);
    }

    fn share(&mut self, stream: MediaStream) {
        if self.screen.is_some() {
            return capture::stop(&stream);
        }
        let Some(track) = first_track(stream.get_video_tracks()) else { return capture::stop(&stream) };
        let frames = match track_frames(&track, VIDEO_BUFFER) {
            Ok(frames) => frames,
            Err(e) => {
                web_sys::console::error_1(&format!("no screen frames: {e}").into());
                return capture::stop(&stream);
            }
        };
        let tx = self.tx.clone();
        let on_ended = Closure::once_into_js(move || {
            let _ = tx.unbounded_send(Msg::ScreenEnded);
        });
        track.set_onended(Some(on_ended.unchecked_ref()));
        self.post(&ToWorker::ScreenOpened, &[("video", &frames)], &[&frames]);
        self.screen = Some(stream);
    }

    /// The call is over: capture and playback stop, the worker ends, waiting figures get `{}`.
    fn stop(&mut self) {
        if let Some(stream) = self.screen.take() {
            capture::stop(&stream);
        }
        if let Some(stream) = self.stream.take() {
            capture::stop(&stream);
        }
        self.level = None;
        self.playback = None;
        self.worker.terminate();
        for (_, resolve) in self.stats.drain() {
            let _ = resolve.call1(&JsValue::NULL, &"{}".into());
        }
    }
}
