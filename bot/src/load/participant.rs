//! One synthetic participant: a WebSocket connection that publishes on a schedule and records
//! everything it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use protobuf::Message as _;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use videocall_types::{PacketType, PacketWrapper, PresencePacket, presence_packet::Event};

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
}

pub struct Participant {
    pub user: String,
    pub room: usize,
    sender: LinkSender,
    receiver: LinkReceiver,
    known: std::collections::HashSet<u64>,
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
        Ok(Self { user: token.user_id, room, sender, receiver, known: Default::default() })
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
                    Some(Event::Members(list)) => self.known.extend(list.participants.iter().map(|p| p.session_id)),
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
        let sender = tokio::spawn(send(self.sender, plan, start, end, live.clone()));
        let receiver = tokio::spawn(receive(self.receiver, stop, live));
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
) -> Result<(LinkSender, u64, u64)> {
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let mut sizer = FrameSizer::new(plan.video_frame_bytes, plan.keyframe_every);
    let video_period = Duration::from_secs_f64(1.0 / f64::from(plan.fps.max(1)));
    let audio_period = Duration::from_secs_f64(1.0 / f64::from(plan.audio_pps.max(1)));
    // Spread participants over a frame interval, as independent cameras would be.
    let mut video = tokio::time::interval_at(start + video_period.mul_f64(rng.random_range(0.0..1.0)), video_period);
    let mut audio = tokio::time::interval_at(start + audio_period.mul_f64(rng.random_range(0.0..1.0)), audio_period);
    let (mut seq, mut sent_bytes) = (0u64, 0u64);
    loop {
        let (kind, size, keyframe) = tokio::select! {
            _ = video.tick(), if plan.fps > 0 => {
                let (size, key) = sizer.next(&mut rng);
                (Kind::Video, size, key)
            }
            _ = audio.tick(), if plan.audio_pps > 0 => (Kind::Audio, plan.audio_bytes, false),
            _ = tokio::time::sleep_until(end) => break,
        };
        let data = payload::encode(Stamp { kind, seq, sent_at_ns: now_ns() }, size);
        let packet = PacketWrapper { packet_type: PacketType::MEDIA.into(), keyframe, data, ..Default::default() };
        let bytes = packet.write_to_bytes()?;
        sent_bytes += bytes.len() as u64;
        link.send(bytes).await?;
        seq += 1;
        live.sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok((link, seq, sent_bytes))
}

/// Records every media packet received until `stop`.
async fn receive(
    mut link: LinkReceiver,
    mut stop: watch::Receiver<bool>,
    live: Arc<Live>,
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
        if packet.packet_type.enum_value() != Ok(PacketType::MEDIA) {
            continue;
        }
        let Some(stamp) = payload::decode(&packet.data) else { continue };
        let latency_us = received_at.saturating_sub(stamp.sent_at_ns) / 1000;
        stats.record(&packet.email, stamp.seq, bytes.len(), latency_us);
        live.delivered.fetch_add(1, Ordering::Relaxed);
        live.delivered_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    (link, stats)
}
