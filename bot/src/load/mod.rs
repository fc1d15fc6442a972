//! `bot load`: N synthetic participants in one or more rooms. Each publishes video-like packets
//! (a bitrate and frame rate, sizes varying like an encoder's, keyframes every few seconds) and
//! audio-like packets, and records what it receives: delivered packets and bytes, loss,
//! duplicates, reordering and relay latency (send time carried in the payload; sender and
//! receivers share this machine's clock).

mod flooder;
pub mod link;
pub mod participant;
mod payload;
mod stats;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use link::Transport;
use participant::{Live, Participant, SendPlan, ViewMix};
use stats::{Latency, ReceiverStats, Summary};
use videocall_types::framing::StreamMode;

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server base URL, http (or https with the `tls` feature); guest tokens are requested from
    /// it, then ws or wss to the same host.
    #[arg(long, env = "BOT_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Participants in all, spread evenly over the rooms.
    #[arg(long, default_value_t = 25)]
    pub participants: usize,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Video frames per second per participant (0: no video).
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Video bitrate per participant, bits/s (default: 30 frames/s averaging 6 KB).
    #[arg(long, default_value_t = 1_440_000)]
    pub video_bitrate: u64,
    /// Seconds between keyframes.
    #[arg(long, default_value_t = 2.0)]
    pub keyframe_interval: f64,
    /// Audio packets per second per participant (0: no audio).
    #[arg(long, default_value_t = 50)]
    pub audio_pps: u32,
    /// Bytes per audio packet (Opus at 32 kbit/s in 20 ms frames is about 80–100).
    #[arg(long, default_value_t = 100)]
    pub audio_bytes: usize,
    /// Seconds to keep receiving after publishing stops, so packets in flight are counted.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
    /// Room name prefix; rooms are `{prefix}-{run}-{n}`.
    #[arg(long, default_value = "load")]
    pub room_prefix: String,
    /// How participants connect: all over WebSocket, all over WebTransport, or alternating.
    #[arg(long, value_enum, default_value_t = TransportChoice::Websocket)]
    pub transport: TransportChoice,
    /// WebTransport streams, both ways: `single` (one ordered stream), `per-sender` (one
    /// long-lived stream per sender from the relay) or `per-packet` (may reorder, no
    /// head-of-line blocking).
    #[arg(long, default_value_t = StreamMode::Single)]
    pub streams: StreamMode,
    /// Connect WebTransport here instead of the URL the server reports (through a proxy, say);
    /// the server's certificate hash is still used.
    #[arg(long)]
    pub webtransport_url: Option<String>,
    /// Hostile participants in the first room, over WebSocket: each sends as fast as it can
    /// and, closed by the relay, comes back with a new token, while the others publish. Their
    /// packets are not counted; the summary says how they fared.
    #[arg(long, default_value_t = 0)]
    pub flooders: usize,
    /// Simulcast: each participant sends its video in three layers, only those the relays
    /// demand: the web client's 320x180 and 640x360 layers (their bitrates and frame rates)
    /// and a top one at `--video-bitrate`. Each subscribes to what its `--view` shows.
    #[arg(long)]
    pub simulcast: bool,
    /// With `--simulcast`, what each receiver shows and so subscribes to.
    #[arg(long, value_enum, default_value_t = ViewMix::Thumbnails)]
    pub view: ViewMix,
    /// Participants per room whose microphone is on (the lowest sessions, the speaker first):
    /// the others are muted and, as the web client does, send no audio. Default: everyone.
    #[arg(long)]
    pub talkers: Option<usize>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    Websocket,
    Webtransport,
    /// Even participants on WebSocket, odd ones on WebTransport.
    Mixed,
}

impl TransportChoice {
    fn for_participant(self, index: usize) -> Transport {
        match self {
            Self::Websocket => Transport::Websocket,
            Self::Webtransport => Transport::Webtransport,
            Self::Mixed if index % 2 == 0 => Transport::Websocket,
            Self::Mixed => Transport::Webtransport,
        }
    }
}

impl LoadArgs {
    fn plan(&self) -> SendPlan {
        let fps = self.fps.max(1);
        SendPlan {
            fps: self.fps,
            video_frame_bytes: (self.video_bitrate / 8 / u64::from(fps)) as usize,
            keyframe_every: ((self.keyframe_interval * f64::from(fps)).round() as u32).max(1),
            audio_pps: self.audio_pps,
            audio_bytes: self.audio_bytes,
            simulcast: self.simulcast,
        }
    }
}

pub async fn run(args: LoadArgs) -> Result<()> {
    if args.participants < 2 * args.rooms.max(1) {
        bail!("need at least two participants per room");
    }
    let rooms = args.rooms.max(1);
    let run_id: u32 = rand::random::<u32>() % 100_000;
    let server = args.server.trim_end_matches('/').to_owned();
    link::check_server(&server)?;
    let http = reqwest::Client::new();
    let webtransport = match args.transport {
        TransportChoice::Websocket => None,
        _ => {
            let mut info = link::WebTransportInfo::fetch(&http, &server).await?;
            info.streams = args.streams;
            if let Some(url) = &args.webtransport_url {
                info.base_url = format!("{}/", url.trim_end_matches('/'));
            }
            Some(Arc::new(info))
        }
    };

    // Join everyone, a few at a time.
    let gate = Arc::new(Semaphore::new(8));
    let joins: Vec<_> = (0..args.participants)
        .map(|i| {
            let (http, server, gate, webtransport) = (http.clone(), server.clone(), gate.clone(), webtransport.clone());
            let transport = args.transport.for_participant(i);
            let room = i % rooms;
            let room_name = format!("{}-{run_id}-{room}", args.room_prefix);
            tokio::spawn(async move {
                let _permit = gate.acquire().await?;
                let name = format!("Load bot {i}");
                Participant::join(&http, &server, transport, webtransport.as_deref(), room, &room_name, &name).await
            })
        })
        .collect();
    let mut participants = Vec::with_capacity(joins.len());
    for join in joins {
        participants.push(join.await.context("join task")??);
    }
    let room_sizes: Vec<usize> = (0..rooms).map(|r| participants.iter().filter(|p| p.room == r).count()).collect();
    for p in &mut participants {
        p.await_peers(room_sizes[p.room] - 1, Duration::from_secs(30)).await?;
    }
    if args.simulcast {
        for p in &mut participants {
            p.subscribe(args.view).await?;
        }
    }
    if !args.quiet {
        eprintln!(
            "{} participants joined {rooms} room(s) on {server}; publishing for {:.0} s",
            participants.len(),
            args.duration
        );
    }

    let live = Arc::new(Live::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs_f64(args.duration);
    let plan = args.plan();
    let mut running = Vec::with_capacity(participants.len());
    let talkers = args.talkers.unwrap_or(usize::MAX);
    for p in participants {
        let room = p.room;
        let plan = if p.talks(talkers) { plan } else { SendPlan { audio_pps: 0, ..plan } };
        let (sender, receiver) = p.run(plan, start, end, stop_rx.clone(), live.clone());
        running.push((room, sender, receiver));
    }
    let progress = (!args.quiet).then(|| tokio::spawn(progress(live.clone(), start, end)));
    let flooders: Vec<_> = (0..args.flooders)
        .map(|i| {
            let (http, server, room_name) = (http.clone(), server.clone(), format!("{}-{run_id}-0", args.room_prefix));
            tokio::spawn(async move {
                tokio::time::sleep_until(start).await;
                flooder::run(http, server, room_name, i, end).await
            })
        })
        .collect();

    tokio::time::sleep_until(end + Duration::from_secs_f64(args.drain)).await;
    let _ = stop_tx.send(true);
    if let Some(progress) = progress {
        progress.abort();
    }

    let mut sent_per_room = vec![0u64; rooms];
    let (mut sent_packets, mut sent_bytes) = (0u64, 0u64);
    let mut total = ReceiverStats::default();
    let mut downlinks = Vec::new();
    for (room, sender, receiver) in running {
        let (sink, packets, bytes) = sender.await.context("sender task")??;
        sent_per_room[room] += packets;
        sent_packets += packets;
        sent_bytes += bytes;
        let (receiving, stats) = receiver.await.context("receiver task")?;
        downlinks.push(stats.bytes as f64 * 8.0 / args.duration / 1e6);
        total.gaps_seen += stats.gaps();
        total.merge(&stats);
        link::close(sink, receiving).await;
    }
    let mut flood = (args.flooders > 0).then(flooder::FloodReport::default);
    for f in flooders {
        let report = f.await.context("flooder task")?;
        if let Some(flood) = &mut flood {
            flood.merge(report);
        }
    }
    let expected: u64 = if args.simulcast {
        total.unique + total.gaps_seen
    } else {
        sent_per_room.iter().zip(&room_sizes).map(|(sent, size)| sent * (*size as u64 - 1)).sum()
    };
    let seconds = args.duration;
    let summary = Summary {
        server,
        transport: args.transport,
        streams: (args.transport != TransportChoice::Websocket).then_some(args.streams.as_str()),
        rooms,
        participants: args.participants,
        seconds,
        sent_packets,
        sent_bytes,
        expected_deliveries: expected,
        delivered_packets: total.unique,
        delivered_bytes: total.bytes,
        delivered_packets_per_sec: total.unique as f64 / seconds,
        delivered_mbytes_per_sec: total.bytes as f64 / seconds / 1e6,
        lost: expected.saturating_sub(total.unique),
        loss_percent: if expected == 0 {
            0.0
        } else {
            expected.saturating_sub(total.unique) as f64 * 100.0 / expected as f64
        },
        duplicates: total.duplicates,
        reordered: total.reordered,
        latency_ms: Latency::of(&total.latency_us),
        simulcast: args.simulcast,
        view: args.simulcast.then_some(args.view),
        talkers: args.talkers.map_or(args.participants / rooms, |t| t.min(args.participants / rooms)),
        downlink_mbit_per_receiver: downlinks.iter().sum::<f64>() / downlinks.len().max(1) as f64,
        downlink_mbit_max: downlinks.iter().copied().fold(0.0, f64::max),
        flood,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

/// One line a second on stderr: what was sent and delivered in that second.
async fn progress(live: Arc<Live>, start: Instant, end: Instant) {
    tokio::time::sleep_until(start).await;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let (mut sent, mut delivered, mut bytes) = (0, 0, 0);
    loop {
        ticker.tick().await;
        let (s, d, b) = (
            live.sent.load(Ordering::Relaxed),
            live.delivered.load(Ordering::Relaxed),
            live.delivered_bytes.load(Ordering::Relaxed),
        );
        let phase = if Instant::now() > end { "draining" } else { "publishing" };
        eprintln!(
            "[{:>4.0} s] {phase}: sent {} packets/s, delivered {} packets/s, {:.2} MB/s",
            start.elapsed().as_secs_f64(),
            s - sent,
            d - delivered,
            (b - bytes) as f64 / 1e6
        );
        (sent, delivered, bytes) = (s, d, b);
    }
}
