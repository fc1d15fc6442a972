//! One synthetic participant: a WebSocket connection that publishes on a schedule and records
//! everything it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use protobuf::Message as _;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use videocall_client::call::{LOWER_LAYERS, Mode, Stage, VideoStream, View, Want, frame_due};
use videocall_types::{
    LayerDemand, MAX_LAYERS, MediaStream, PacketType, PacketWrapper, PresencePacket, Route, presence_packet::Event,
};

use super::link::{self, LinkReceiver, LinkSender, Transport, WebTransportInfo};
use super::payload::{self, FrameSizer, Kind, Stamp};
use super::stats::ReceiverStats;

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub delivered_bytes: AtomicU64,
}

/// What each participant publishes.
#[derive(Debug, Clone, Copy)]
pub struct SendPlan {
    pub fps: u32,
    pub video_frame_bytes: usize,
    pub keyframe_every: u32,
    pub audio_pps: u32,
    pub audio_bytes: usize,
    /// Video in three layers ([`Layer::of`]) sent as the relays demand, each receiver taking
    /// what its [`ViewMix`] shows.
    pub simulcast: bool,
}

/// What each receiver shows, and so subscribes to, with simulcast. The speaker is the room's
/// lowest session (one of the talkers, see `--talkers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewMix {
    /// Everyone at once: the speaker's largest layer and everyone else's smallest. No page of
    /// the web client shows this many (its grid pages hold 15), so it is the worst case.
    Thumbnails,
    /// The web client's speaker view: the speaker large, a strip of thumbnails (its first
    /// page), nobody else.
    Speaker,
    /// The web client's grid: the first page of thumbnails, nobody else.
    Grid,
}

/// A thumbnail's width in device pixels, for [`Stage::view`]: what a tile of a 4x4 grid on a
/// 1280-pixel-wide window measures, which takes the smallest layer.
const THUMBNAIL_WIDTH: u32 = 320;
/// The large tile's width in the speaker view: most of a 1280-pixel-wide window, which takes
/// the largest layer.
const SPEAKER_WIDTH: u32 = 1280;

/// One simulcast layer as the load generator sends it, like one of the web client's encoders:
/// the lower layers at the bitrate and frame rate of [`LOWER_LAYERS`], the top one at
/// `--video-bitrate` and `--fps`, each with its own keyframe rhythm.
struct Layer {
    fps: f64,
    sizer: FrameSizer,
    /// When it last took a frame, microseconds since the start.
    last_frame_us: Option<f64>,
    /// A relay asked for a keyframe: the next frame is one.
    key_demanded: bool,
}

impl Layer {
    fn of(plan: &SendPlan, layer: u32) -> Self {
        let top_fps = f64::from(plan.fps.max(1));
        let (fps, frame_bytes) = match LOWER_LAYERS.get(layer as usize).filter(|_| layer + 1 < MAX_LAYERS) {
            Some(spec) => {
                let fps = spec.fps.min(top_fps);
                (fps, (f64::from(spec.bitrate) / 8.0 / fps) as usize)
            }
            None => (top_fps, plan.video_frame_bytes),
        };
        let keyframe_every = (f64::from(plan.keyframe_every) * fps / top_fps).round() as u32;
        Self { fps, sizer: FrameSizer::new(frame_bytes, keyframe_every), last_frame_us: None, key_demanded: false }
    }

    /// At a camera frame `now_us`: this layer's frame (its size, whether a keyframe), if it takes one.
    fn frame(&mut self, now_us: f64, rng: &mut impl rand::Rng) -> Option<(usize, bool)> {
        if !frame_due(self.fps, self.last_frame_us, now_us) {
            return None;
        }
        self.last_frame_us = Some(now_us);
        let (size, key) = self.sizer.next(rng);
        Some((size, key || std::mem::take(&mut self.key_demanded)))
    }
}

/// What the relays demand of a simulcast sender: which layers, and keyframes of which.
#[derive(Default)]
struct Demand {
    /// Bit n: layer n is sent. Before any demand, the top layer alone.
    layers: AtomicU32,
    /// Bit n: layer n's next frame is a keyframe.
    keyframes: AtomicU32,
}

pub struct Participant {
    pub user: String,
    pub room: usize,
    sender: LinkSender,
    receiver: LinkReceiver,
    known: std::collections::HashSet<u64>,
    /// Our own session, as the relay's member list names it.
    session: u64,
}

#[derive(Deserialize)]
pub struct GuestToken {
    pub user_id: String,
    /// The room as the relay names it: what end-to-end encryption signatures bind.
    pub room: String,
    /// `/lobby/{user}/{room}?token=…`, for WebSocket and WebTransport alike.
    pub websocket_path: String,
}

/// Asks `server` for a guest token for `room_name`.
pub async fn guest_token(http: &reqwest::Client, server: &str, room_name: &str, name: &str) -> Result<GuestToken> {
    guest_token_as(http, server, room_name, name, false).await
}

/// A guest token; `recorder`: one that tells everyone in the room its holder records.
pub async fn guest_token_as(
    http: &reqwest::Client,
    server: &str,
    room_name: &str,
    name: &str,
    recorder: bool,
) -> Result<GuestToken> {
    let response = http
        .post(format!("{server}/api/v1/guest-tokens"))
        .json(&serde_json::json!({"room": room_name, "display_name": name, "recorder": recorder}))
        .send()
        .await
        .with_context(|| format!("requesting a guest token from {server}"))?;
    if !response.status().is_success() {
        let status = response.status();
        bail!("guest token refused: {status} {}", response.text().await.unwrap_or_default());
    }
    response.json().await.context("reading the guest token")
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Participant {
    /// Gets a guest token from `server` and joins `room_name` over `transport`.
    pub async fn join(
        http: &reqwest::Client,
        server: &str,
        transport: Transport,
        webtransport: Option<&WebTransportInfo>,
        room: usize,
        room_name: &str,
        name: &str,
    ) -> Result<Self> {
        let token = guest_token(http, server, room_name, name).await?;
        let (sender, receiver) = link::connect(transport, server, webtransport, &token.websocket_path).await?;
        Ok(Self { user: token.user_id, room, sender, receiver, known: Default::default(), session: 0 })
    }

    /// Reads presence until this participant knows `others` other sessions.
    pub async fn await_peers(&mut self, others: usize, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while self.known.len() < others {
            let message = tokio::time::timeout_at(deadline, self.receiver.recv())
                .await
                .with_context(|| format!("{} saw {} of {others} peers", self.user, self.known.len()))?;
            let Some(message) = message else { bail!("{}: connection closed while waiting for peers", self.user) };
            {
                let bytes = message?;
                let Ok(packet) = PacketWrapper::parse_from_bytes(&bytes) else { continue };
                if packet.packet_type.enum_value() != Ok(PacketType::PRESENCE) {
                    continue;
                }
                match PresencePacket::parse_from_bytes(&packet.data).ok().and_then(|p| p.event) {
                    Some(Event::Members(list)) => {
                        self.session = list.you.session_id;
                        self.known.extend(list.participants.iter().map(|p| p.session_id));
                    }
                    Some(Event::Joined(p)) => {
                        self.known.insert(p.session_id);
                    }
                    Some(Event::Left(l)) => {
                        self.known.remove(&l.participant.session_id);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Whether this participant is one of the room's `talkers` lowest sessions: it sends audio.
    /// The others are muted, and a muted web client sends no audio at all.
    pub fn talks(&self, talkers: usize) -> bool {
        self.known.iter().filter(|&&s| s < self.session).count() < talkers
    }

    /// With simulcast: tells the relay what this participant shows (`mix`), with the room's
    /// lowest session as the speaker. The speaker and grid views are laid out by the web
    /// client's own [`Stage`].
    pub async fn subscribe(&mut self, mix: ViewMix) -> Result<()> {
        let mut others: Vec<u64> = self.known.iter().copied().collect();
        others.sort_unstable();
        let speaker = others.first().copied().filter(|&s| s < self.session);
        let view = match mix {
            ViewMix::Thumbnails => View {
                wants: speaker.map(|s| (s, VideoStream::Camera, Want::LARGEST)).into_iter().collect(),
                camera_default: Want::UpTo(0),
                ..View::default()
            },
            ViewMix::Speaker => {
                let mut stage = Stage::default();
                stage.set_mode(Mode::Speaker);
                stage.heard(&speaker.into_iter().collect::<Vec<_>>());
                Stage::view(&stage.layout(&others), THUMBNAIL_WIDTH, SPEAKER_WIDTH)
            }
            ViewMix::Grid => Stage::view(&Stage::default().layout(&others), THUMBNAIL_WIDTH, SPEAKER_WIDTH),
        };
        let packet = PacketWrapper {
            packet_type: PacketType::SUBSCRIPTION.into(),
            data: view.to_subscription().write_to_bytes()?,
            ..Default::default()
        };
        self.sender.send(packet.write_to_bytes()?).await
    }

    /// Starts publishing at `start` until `end`, and receiving until `stop` turns true.
    pub fn run(
        self,
        plan: SendPlan,
        start: Instant,
        end: Instant,
        stop: watch::Receiver<bool>,
        live: Arc<Live>,
    ) -> (tokio::task::JoinHandle<Result<(LinkSender, u64, u64)>>, tokio::task::JoinHandle<(LinkReceiver, ReceiverStats)>)
    {
        let demand = Arc::new(Demand::default());
        demand.layers.store(1 << (MAX_LAYERS - 1), Ordering::Relaxed);
        let sender = tokio::spawn(send(self.sender, plan, start, end, live.clone(), demand.clone()));
        let receiver = tokio::spawn(receive(self.receiver, stop, live, demand));
        (sender, receiver)
    }
}

/// Publishes video frames and audio packets; returns the link and the packets and bytes sent.
async fn send(
    mut link: LinkSender,
    plan: SendPlan,
    start: Instant,
    end: Instant,
    live: Arc<Live>,
    demand: Arc<Demand>,
) -> Result<(LinkSender, u64, u64)> {
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let mut sizer = FrameSizer::new(plan.video_frame_bytes, plan.keyframe_every);
    let video_period = Duration::from_secs_f64(1.0 / f64::from(plan.fps.max(1)));
    let audio_period = Duration::from_secs_f64(1.0 / f64::from(plan.audio_pps.max(1)));
    // Spread participants over a frame interval, as independent cameras would be.
    let mut video = tokio::time::interval_at(start + video_period.mul_f64(rng.random_range(0.0..1.0)), video_period);
    let mut audio = tokio::time::interval_at(start + audio_period.mul_f64(rng.random_range(0.0..1.0)), audio_period);
    let (mut sent, mut sent_bytes) = (0u64, 0u64);
    // Sequence numbers per stream: audio, then each layer (a receiver takes one layer).
    let mut seqs = [0u64; 1 + MAX_LAYERS as usize];
    let mut layers: Vec<Layer> = (0..MAX_LAYERS).map(|l| Layer::of(&plan, l)).collect();
    loop {
        let kind = tokio::select! {
            _ = video.tick(), if plan.fps > 0 => Kind::Video,
            _ = audio.tick(), if plan.audio_pps > 0 => Kind::Audio,
            _ = tokio::time::sleep_until(end) => break,
        };
        let mut packets = Vec::with_capacity(MAX_LAYERS as usize);
        if kind == Kind::Video && plan.simulcast {
            let demanded = demand.keyframes.swap(0, Ordering::Relaxed);
            let active = demand.layers.load(Ordering::Relaxed);
            let now_us = Instant::now().saturating_duration_since(start).as_secs_f64() * 1e6;
            for layer in (0..MAX_LAYERS).filter(|l| active & (1 << l) != 0) {
                let spec = &mut layers[layer as usize];
                spec.key_demanded |= demanded & (1 << layer) != 0;
                let Some((size, keyframe)) = spec.frame(now_us, &mut rng) else { continue };
                let seq = &mut seqs[1 + layer as usize];
                let mut packet = media(Stamp { kind, seq: *seq, sent_at_ns: now_ns() }, size);
                Route::video(MediaStream::STREAM_CAMERA, layer, MAX_LAYERS, keyframe, *seq + 1).apply(&mut packet);
                *seq += 1;
                packets.push(packet);
            }
        } else if plan.simulcast {
            // Audio: its own stream, always forwarded.
            let mut packet = media(Stamp { kind, seq: seqs[0], sent_at_ns: now_ns() }, plan.audio_bytes);
            seqs[0] += 1;
            Route::audio(seqs[0]).apply(&mut packet);
            packets.push(packet);
        } else {
            // One sequence over all of a sender's packets: every receiver gets them all. The
            // routing header is a client's without simulcast: the camera as one layer.
            let frame = &mut seqs[if kind == Kind::Video { 1 } else { 0 }];
            *frame += 1;
            let (size, route) = match kind {
                Kind::Video => {
                    let (size, keyframe) = sizer.next(&mut rng);
                    (size, Route::video(MediaStream::STREAM_CAMERA, 0, 1, keyframe, *frame))
                }
                Kind::Audio => (plan.audio_bytes, Route::audio(*frame)),
            };
            let mut packet = media(Stamp { kind, seq: sent, sent_at_ns: now_ns() }, size);
            route.apply(&mut packet);
            packets.push(packet);
        }
        for packet in packets {
            let bytes = packet.write_to_bytes()?;
            sent_bytes += bytes.len() as u64;
            link.send(bytes).await?;
            sent += 1;
            live.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok((link, sent, sent_bytes))
}

fn media(stamp: Stamp, size: usize) -> PacketWrapper {
    let data = payload::encode(stamp, size);
    PacketWrapper { packet_type: PacketType::MEDIA.into(), data, ..Default::default() }
}

/// Records every media packet received until `stop`.
async fn receive(
    mut link: LinkReceiver,
    mut stop: watch::Receiver<bool>,
    live: Arc<Live>,
    demand: Arc<Demand>,
) -> (LinkReceiver, ReceiverStats) {
    let mut stats = ReceiverStats::default();
    loop {
        let message = tokio::select! {
            message = link.recv() => message,
            _ = stop.changed() => break,
        };
        let bytes = match message {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "receive failed");
                break;
            }
            None => break,
        };
        let received_at = now_ns();
        let Ok(packet) = PacketWrapper::parse_from_bytes(&bytes) else { continue };
        if packet.packet_type.enum_value() == Ok(PacketType::LAYER_DEMAND) {
            let Ok(told) = LayerDemand::parse_from_bytes(&packet.data) else { continue };
            let (layers, keyframes) = videocall_client::call::demand_for(&told, VideoStream::Camera);
            // No layer at all leaves the layers as they are (as the web client and the bot
            // camera do): a relay that never saw them could not ask for them again.
            if layers != 0 {
                demand.layers.store(layers, Ordering::Relaxed);
            }
            demand.keyframes.fetch_or(keyframes, Ordering::Relaxed);
            continue;
        }
        if packet.packet_type.enum_value() != Ok(PacketType::MEDIA) {
            continue;
        }
        let Some(stamp) = payload::decode(&packet.data) else { continue };
        let latency_us = received_at.saturating_sub(stamp.sent_at_ns) / 1000;
        // Each stream of a sender counts on its own: audio, and each simulcast layer.
        let stream = (packet.stream.value(), packet.layer);
        stats.record(&packet.email, stream, stamp.seq, bytes.len(), latency_us);
        live.delivered.fetch_add(1, Ordering::Relaxed);
        live.delivered_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    (link, stats)
}
