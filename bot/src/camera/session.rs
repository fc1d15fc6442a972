//! The bot in a room: the same end-to-end encryption as the browser (`videocall-client`'s
//! `PeerState`), over the same links as `bot load`. Packets in, sealed frames out, keyframe
//! requests and newcomers answered with a keyframe, heartbeats so viewers see the camera is on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use protobuf::{Message as _, MessageField};
use rand_core::OsRng;
use videocall_client::crypto::LocalIdentity;
use videocall_client::messages;
use videocall_client::packets::PacketError;
use videocall_client::peers::{Event, PeerState};
use videocall_types::{HeartbeatMetadata, MediaPacket, MediaType, PacketWrapper, VideoMetadata};

use crate::load::link::{LinkReceiver, LinkSender, Transport, WebTransportInfo};
use crate::load::participant::{GuestToken, guest_token_as};

/// One encoded frame on its way out.
pub struct OutFrame {
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
    core: PeerState<OsRng>,
    codec: String,
    sequence: u64,
    started: Instant,
    /// Set to ask the encoder for a keyframe.
    pub force_key: Arc<AtomicBool>,
    pub dropped: u64,
}

impl Session {
    pub fn new(identity: LocalIdentity, codec: &str, force_key: Arc<AtomicBool>) -> Self {
        let core = PeerState::new(OsRng, identity.public().clone());
        Self { identity, core, codec: codec.to_owned(), sequence: 0, started: Instant::now(), force_key, dropped: 0 }
    }

    pub fn peers(&self) -> usize {
        self.core.peers().len()
    }

    pub fn fingerprint(&self) -> String {
        self.core.fingerprint().to_string()
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Before each connection: the token's user id (bound into every frame) and room (bound
    /// into every signature), a new key, nobody known yet.
    pub fn restart(&mut self, user: &str, room: &str) {
        self.core.restart(user, room);
        while self.core.poll_event().is_some() {}
    }

    /// A packet from the relay.
    pub fn handle(&mut self, bytes: &[u8]) {
        let Ok(packet) = PacketWrapper::parse_from_bytes(bytes) else {
            self.dropped += 1;
            return;
        };
        let now = self.now();
        self.core.handle_packet(now, packet);
        self.core.work_locally(&self.identity, now);
        while let Some(event) = self.core.poll_event() {
            match event {
                // Someone new will need a keyframe once they hold our key.
                Event::PeerKey { .. } => self.force_key.store(true, Ordering::Relaxed),
                // Nobody is here to compare fingerprints again: a changed key is never accepted.
                Event::KeyChanged { session, fingerprint } => {
                    tracing::warn!(session, %fingerprint, "a participant's key changed; it gets nothing from us");
                }
                Event::Media { session, media, .. } => self.on_media(session, &media),
                Event::Dropped { session, error } => {
                    if let PacketError::Refused(refusal) = &error {
                        tracing::warn!(session, %refusal, "refused a key packet");
                    }
                    self.dropped += 1;
                }
                _ => {}
            }
        }
    }

    fn on_media(&mut self, session: u64, media: &MediaPacket) {
        match media.media_type.enum_value() {
            Ok(MediaType::KEYFRAME_REQUEST) => self.force_key.store(true, Ordering::Relaxed),
            // Answer heartbeats so the viewer learns its round trip to us.
            _ => {
                if let Some(answer) = messages::heartbeat_answer(media, 0) {
                    let _ = self.core.seal_to(&answer, false, session);
                }
            }
        }
    }

    /// Seals an encoded frame for the room.
    pub fn send_frame(&mut self, frame: OutFrame) -> Result<()> {
        self.sequence += 1;
        let mut media = MediaPacket::new();
        media.media_type = MediaType::VIDEO.into();
        media.frame_type = if frame.keyframe { "key" } else { "delta" }.into();
        media.timestamp = frame.timestamp_us;
        let mut meta = VideoMetadata::new();
        meta.sequence = self.sequence;
        meta.codec = self.codec.clone();
        (meta.width, meta.height) = (frame.width, frame.height);
        meta.capture_time_ms = frame.capture_ms;
        media.video_metadata = MessageField::some(meta);
        media.data = frame.data;
        self.core.seal(&media, frame.keyframe).context("sealing a frame")
    }

    /// Once a second: camera on, microphone off.
    pub fn heartbeat(&mut self, camera_on: bool) -> Result<()> {
        let mut media = MediaPacket::new();
        media.media_type = MediaType::HEARTBEAT.into();
        media.timestamp = self.now() as f64 + 1.0;
        let mut meta = HeartbeatMetadata::new();
        meta.video_on = camera_on;
        media.heartbeat_metadata = MessageField::some(meta);
        self.core.seal(&media, false).context("sealing a heartbeat")
    }

    /// Sends whatever the core has queued.
    pub async fn flush(&mut self, sender: &mut LinkSender) -> Result<()> {
        while let Some(packet) = self.core.poll_transmit() {
            sender.send(packet.write_to_bytes()?).await?;
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
