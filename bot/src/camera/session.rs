//! The bot in a room: the same call engine as the browser (`videocall-client`'s `Engine`: end-to-end
//! encryption, heartbeats and their answers, keyframe requests, reconnecting with backoff),
//! over the same links as `bot load`. Packets in, sealed frames out, keyframe requests and
//! newcomers answered with a keyframe.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rand_core::OsRng;
use videocall_client::Millis;
use videocall_client::call::{
    EncodedVideo, Engine, Failure, MediaState, Output, TransportKind, Update, VideoStream, View, Want,
};
use videocall_client::crypto::LocalIdentity;

use super::capture::Layers;
use crate::load::link::{LinkReceiver, LinkSender, Transport, WebTransportInfo};
use crate::load::participant::{GuestToken, guest_token_as};

/// One encoded frame on its way out.
pub struct OutFrame {
    /// The simulcast layer (0 the smallest).
    pub layer: u32,
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// Wall-clock milliseconds when the frame was captured.
    pub capture_ms: f64,
    /// Microseconds since the stream began, as WebCodecs counts.
    pub timestamp_us: f64,
    pub width: u32,
    pub height: u32,
}

pub fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub struct Session {
    identity: LocalIdentity,
    engine: Engine<OsRng>,
    codec: String,
    started: Instant,
    /// The attempt the engine asked for last.
    generation: Option<u32>,
    /// The camera's layers: which run and which owe a keyframe, as the engine says.
    layers: Arc<Layers>,
}

impl Session {
    /// A camera called `name`, microphone off, capturing at `width` x `height`: the engine
    /// plans its simulcast layers, none under the top one without `simulcast` (`layers` tells
    /// the capture thread).
    pub fn new(
        identity: LocalIdentity,
        name: &str,
        codec: &str,
        (width, height): (u32, u32),
        simulcast: bool,
        layers: Arc<Layers>,
    ) -> Self {
        let media = MediaState { audio_on: false, video_on: true, screen_on: false };
        let mut engine = Engine::new(OsRng, identity.public().clone(), name, media);
        engine.set_simulcast(simulcast);
        engine.camera_opened(width, height);
        // It watches nobody: no relay need forward it anyone's video, nor ask a sender for it.
        engine.set_view(View { wants: Vec::new(), camera_default: Want::Off, screen_default: Want::Off });
        layers.plan(engine.camera_lower_layers());
        let mut session =
            Self { identity, engine, codec: codec.to_owned(), started: Instant::now(), generation: None, layers };
        session.drain();
        session
    }

    pub fn peers(&self) -> usize {
        self.engine.core().peers().len()
    }

    pub fn fingerprint(&self) -> String {
        self.engine.core().fingerprint().to_string()
    }

    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    /// Waits until the engine asks for a connection attempt (at once the first time, after its
    /// backoff later); returns the attempt's generation.
    pub async fn next_attempt(&mut self) -> u32 {
        if self.generation.is_none() {
            self.engine.start(self.now());
        }
        loop {
            self.drain();
            if let Some(generation) = self.generation.take() {
                return generation;
            }
            let wake = self.engine.poll_timeout().unwrap_or(self.now() + 1_000);
            let delay = wake.saturating_sub(self.now());
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            self.engine.handle_timeout(self.now());
        }
    }

    /// Attempt `generation` is in, with a token for `user` in `room` (bound into every frame
    /// and signature): a new session, a new key, nobody known yet.
    pub fn connected(&mut self, generation: u32, transport: Transport, user: &str, room: &str) {
        let kind = match transport {
            Transport::Webtransport => TransportKind::WebTransport,
            Transport::Websocket => TransportKind::WebSocket,
        };
        self.engine.connected_as(self.now(), generation, kind, user, room);
        self.drain();
    }

    pub fn connect_failed(&mut self, generation: u32, reason: String) {
        self.engine.connect_failed(self.now(), generation, Failure::Retry(reason));
        self.drain();
    }

    /// The connection of `generation` was lost.
    pub fn lost(&mut self, generation: u32, reason: &str) {
        self.engine.closed(self.now(), generation, 0, reason);
        self.drain();
    }

    /// Bytes from the relay on the connection of `generation`.
    pub fn handle(&mut self, generation: u32, bytes: &[u8]) {
        let now = self.now();
        self.engine.handle_bytes(now, generation, bytes);
        self.engine.work_locally(&self.identity, now);
        self.drain();
    }

    /// Once in a while (heartbeats are due once a second): the engine's timers, and whether
    /// the camera is on.
    pub fn tick(&mut self, camera_on: bool) {
        let now = self.now();
        if self.engine.media().video_on != camera_on {
            self.engine.set_video(now, camera_on);
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.drain();
    }

    /// What the engine asks of us: keyframes, and who to warn about.
    fn drain(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Connect { generation } => self.generation = Some(generation),
                Output::Keyframe { stream: VideoStream::Camera, layer } => self.layers.request_keyframe(layer),
                Output::Layers { stream: VideoStream::Camera, active } => self.layers.set_active(active),
                // Nobody is here to compare fingerprints again: a changed key is never accepted.
                Output::Show(Update::KeyChanged { session, fingerprint }) => {
                    tracing::warn!(session, %fingerprint, "a participant's key changed; it gets nothing from us");
                }
                Output::Show(Update::Refused(counts)) => tracing::warn!(?counts, "refused key packets"),
                Output::Show(Update::Notice(notice)) => tracing::info!(%notice),
                // The bot watches nobody, has no microphone, a fixed bitrate (the ladder's rungs
                // are ignored) and no screen.
                _ => {}
            }
        }
    }

    /// Seals an encoded frame for the room.
    pub fn send_frame(&mut self, frame: OutFrame) -> Result<()> {
        let video = EncodedVideo {
            codec: self.codec.clone(),
            layer: frame.layer,
            keyframe: frame.keyframe,
            data: frame.data,
            timestamp_us: frame.timestamp_us,
            duration_us: 0.0,
            width: frame.width,
            height: frame.height,
            capture_ms: frame.capture_ms,
        };
        self.engine.send_video(VideoStream::Camera, video).context("sealing a frame")
    }

    /// Sends whatever the engine has queued.
    pub async fn flush(&mut self, sender: &mut LinkSender) -> Result<()> {
        while let Some(bytes) = self.engine.poll_transmit() {
            sender.send(bytes).await?;
        }
        Ok(())
    }
}

/// Joins `room` with a fresh guest token (every (re)connection gets one), or with `given`, a
/// room token the server issued (what it passes a recorder it starts: meetings issue no guest
/// tokens): the user id the relay will stamp, the room as it names it, and the link.
pub async fn connect(
    http: &reqwest::Client,
    server: &str,
    room: &str,
    name: &str,
    transport: Transport,
) -> Result<(String, String, LinkSender, LinkReceiver)> {
    connect_with(http, server, room, name, transport, None, false).await
}

/// Where and how a bot joins: what `bot camera`, `bot record` and `bot snapshot` share.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The server's HTTP base URL.
    #[arg(long, env = "BOT_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The room.
    #[arg(long, env = "BOT_ROOM")]
    pub room: String,
    /// A room token as the server's API answers it (JSON), for a meeting (meetings issue no
    /// guest tokens; the server passes one to a recorder it starts): used for every connection.
    /// Without it, a guest token is asked for each time.
    #[arg(long, env = "BOT_ROOM_TOKEN", hide_env_values = true)]
    pub room_token: Option<String>,
    /// WebSocket, or WebTransport (where the server's `/api/v1/webtransport` says).
    #[arg(long, value_enum, default_value_t = super::TransportArg::Websocket)]
    pub transport: super::TransportArg,
}

impl JoinArgs {
    /// Joins as `name` (`recorder`: a guest token that says its holder records).
    pub async fn connect(
        &self,
        http: &reqwest::Client,
        name: &str,
        recorder: bool,
    ) -> Result<(String, String, LinkSender, LinkReceiver)> {
        let transport = self.transport.into();
        connect_with(http, &self.server, &self.room, name, transport, self.room_token.as_deref(), recorder).await
    }
}

/// `recorder`: the guest token asked for says its holder records (a given token says what
/// the server put in it).
pub async fn connect_with(
    http: &reqwest::Client,
    server: &str,
    room: &str,
    name: &str,
    transport: Transport,
    given: Option<&str>,
    recorder: bool,
) -> Result<(String, String, LinkSender, LinkReceiver)> {
    let token: GuestToken = match given {
        Some(json) => serde_json::from_str(json).context("reading the room token given (BOT_ROOM_TOKEN)")?,
        None => guest_token_as(http, server, room, name, recorder).await?,
    };
    let info = match transport {
        Transport::Webtransport => Some(WebTransportInfo::fetch(http, server).await?),
        Transport::Websocket => None,
    };
    let (sender, receiver) =
        crate::load::link::connect(transport, server, info.as_ref(), &token.websocket_path).await?;
    Ok((token.user_id, token.room, sender, receiver))
}
