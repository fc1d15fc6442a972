//! One synthetic participant: a WebSocket connection that publishes on a schedule and records
//! everything it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use protobuf::Message as _;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use videocall_client::call::VideoStream;
use videocall_types::{
    LARGEST_LAYER, LayerDemand, LayerWant, MAX_LAYERS, MediaStream, PacketType, PacketWrapper, PresencePacket, Route,
    Subscription, presence_packet::Event,
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
    /// Video in three layers ([`LAYER_SHARES`]) sent as the relays demand, each receiver taking
    /// the smallest layer of everyone but the speaker's largest.
    pub simulcast: bool,
}

/// With simulcast, each layer's share of the video bitrate, smallest first: 320x180 at
/// 150 kb/s, 640x360 at 500 kb/s and 1280x720 at 1.5 Mb/s, as the web client's layers.
pub const LAYER_SHARES: [f64; MAX_LAYERS as usize] = [0.1, 1.0 / 3.0, 1.0];

/// What the relays demand of a simulcast sender: which layers, and a keyframe.
#[derive(Default)]
struct Demand {
    /// Bit n: layer n is sent. Before any demand, the top layer alone.
    layers: AtomicU32,
    keyframe: AtomicBool,
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

    /// With simulcast: tells the relay this participant shows the speaker (the lowest session
    /// in the room) large and everyone else as thumbnails.
    pub async fn subscribe(&mut self) -> Result<()> {
        let speaker = self.known.iter().copied().chain([self.session]).min().unwrap_or(0);
        let want = |session: u64, max_layer: u32| LayerWant {
            session,
            stream: MediaStream::STREAM_CAMERA.into(),
            max_layer,
            ..Default::default()
        };
        let subscription = Subscription {
            wants: (speaker != self.session).then(|| want(speaker, LARGEST_LAYER)).into_iter().collect(),
            defaults: vec![want(0, 0)],
            ..Default::default()
        };
        let packet = PacketWrapper {
            packet_type: PacketType::SUBSCRIPTION.into(),
            data: subscription.write_to_bytes()?,
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
    loop {
        let (kind, size, keyframe) = tokio::select! {
            _ = video.tick(), if plan.fps > 0 => {
                let (size, key) = sizer.next(&mut rng);
                (Kind::Video, size, key)
            }
            _ = audio.tick(), if plan.audio_pps > 0 => (Kind::Audio, plan.audio_bytes, false),
            _ = tokio::time::sleep_until(end) => break,
        };
        let mut packets = Vec::with_capacity(MAX_LAYERS as usize);
        if kind == Kind::Video && plan.simulcast {
            let keyframe = keyframe | demand.keyframe.swap(false, Ordering::Relaxed);
            let layers = demand.layers.load(Ordering::Relaxed);
            for layer in (0..MAX_LAYERS).filter(|l| layers & (1 << l) != 0) {
                let seq = &mut seqs[1 + layer as usize];
                let size = (size as f64 * LAYER_SHARES[layer as usize]) as usize;
                let mut packet = media(Stamp { kind, seq: *seq, sent_at_ns: now_ns() }, size);
                Route::video(MediaStream::STREAM_CAMERA, layer, MAX_LAYERS, keyframe, *seq + 1).apply(&mut packet);
                *seq += 1;
                packets.push(packet);
            }
        } else if plan.simulcast {
            // Audio: its own stream, always forwarded.
            let mut packet = media(Stamp { kind, seq: seqs[0], sent_at_ns: now_ns() }, size);
            seqs[0] += 1;
            Route::audio(seqs[0]).apply(&mut packet);
            packets.push(packet);
        } else {
            // One sequence over all of a sender's packets: every receiver gets them all.
            let mut packet = media(Stamp { kind, seq: sent, sent_at_ns: now_ns() }, size);
            packet.keyframe = keyframe;
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
            if keyframes != 0 {
                demand.keyframe.store(true, Ordering::Relaxed);
            }
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
