//! `bot record-bench`: what recording costs per participant, on this machine, with the
//! recorder's own code: each participant's 720p30 H.264 (the test pattern with camera-like
//! noise, encoded once by OpenH264 beforehand) and 50 Opus-sized audio packets a second,
//! sealed as a sender seals them; timed is what the recorder does with each packet: parsing
//! it, opening it (AES-256-GCM), muxing it and writing (and syncing) the files. Not timed: the
//! sending side and the socket reads. Prints CPU per participant (share of one core for
//! real-time media), how many participants one core records in real time, and memory.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use protobuf::{Message as _, MessageField};
use rand_core::OsRng;
use videocall_client::crypto::{KeyMaterial, KeyRing, LocalIdentity, SenderKey};
use videocall_client::packets;
use videocall_client::peers::PeerState;
use videocall_types::{AudioMetadata, MediaPacket, MediaType, PacketWrapper, Route, VideoMetadata};

use super::Files;
use super::room::RoomRecorder;
use crate::camera::encode::{SoftwareH264, VideoEncoder as _};
use crate::camera::pattern::TestPattern;
use crate::camera::thread_cpu_seconds;

#[derive(Debug, Args)]
pub struct RecordBenchArgs {
    /// Participants recorded at once, one run per count.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 8])]
    participants: Vec<usize>,
    /// Seconds of media per participant.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 1280)]
    width: usize,
    #[arg(long, default_value_t = 720)]
    height: usize,
    /// Video bitrate the encoder aims at, bits/s.
    #[arg(long, default_value_t = 1_500_000)]
    bitrate: u32,
    /// Where the files go (a temporary directory, removed after, by default).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// Bytes of one Opus packet at 32 kb/s and 20 ms: what a browser's microphone sends.
const AUDIO_PACKET_BYTES: usize = 80;
const FPS: u64 = 30;

fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn run(args: RecordBenchArgs) -> Result<()> {
    let frames = (args.seconds * FPS) as usize;
    eprintln!("bot record-bench: encoding {frames} frames of {}x{} once…", args.width, args.height);
    let mut pattern = TestPattern::new(args.width, args.height).with_noise(6);
    let mut encoder = SoftwareH264::new(args.bitrate, FPS as f32, 0)?;
    let mut video = Vec::with_capacity(frames);
    for i in 0..frames {
        // A keyframe every 3 s, as the web client sends.
        if let Some(encoded) = encoder.encode(&pattern.next_frame(), i % 90 == 0, i as u64 * 33_333)? {
            video.push((i, encoded.data, encoded.keyframe));
        }
    }
    let video_bytes: usize = video.iter().map(|(_, d, _)| d.len()).sum();
    println!(
        "media: {}x{} H.264 at {:.0} kb/s ({} frames in {} s) + Opus-sized audio, 50 packets/s of {AUDIO_PACKET_BYTES} bytes",
        args.width,
        args.height,
        video_bytes as f64 * 8.0 / args.seconds as f64 / 1000.0,
        video.len(),
        args.seconds
    );
    let identity = LocalIdentity::generate(&mut OsRng).context("an identity")?;
    let mut core = PeerState::new(OsRng, identity.public().clone());
    println!(
        "participants | CPU per participant (share of a core) | participants per core, real time | recorder's wall time (syncs included) | memory per participant"
    );
    for &n in &args.participants {
        let dir = args
            .out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("record-bench-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut files = Files { dir: dir.clone(), open: HashMap::new(), written: Vec::new(), quiet: true };
        let mut room = RoomRecorder::new(3_600_000);
        let mut ring = KeyRing::default();
        let mut senders: Vec<(u64, String, SenderKey)> = (0..n)
            .map(|p| {
                let material = KeyMaterial::generate(&mut OsRng);
                let session = 1000 + p as u64;
                ring.install(session, 1, material.clone(), 0).expect("a fresh key");
                (session, format!("guest-{p:04}"), SenderKey::new(1, material))
            })
            .collect();
        let rss_before = vm_kib("VmRSS:");
        let (mut timed, mut timed_wall) = (0.0, 0.0);
        let mut peak_rss = rss_before;
        let started = Instant::now();
        let mut next_video = 0;
        // Media time in milliseconds: video every 33.3 ms, audio every 20 ms, interleaved.
        for ms in 0..args.seconds * 1000 {
            let mut out: Vec<(MediaPacket, bool)> = Vec::new();
            while next_video < video.len() && video[next_video].0 as u64 * 1000 / FPS <= ms {
                let (i, data, key) = &video[next_video];
                let mut media = MediaPacket::new();
                media.media_type = MediaType::VIDEO.into();
                media.frame_type = if *key { "key" } else { "delta" }.into();
                media.timestamp = *i as f64 * 33_333.3;
                let mut meta = VideoMetadata::new();
                meta.codec = "avc1.42e028".into();
                (meta.width, meta.height) = (args.width as u32, args.height as u32);
                media.video_metadata = MessageField::some(meta);
                media.data = data.clone().into();
                out.push((media, *key));
                next_video += 1;
            }
            if ms % 20 == 0 {
                let mut media = MediaPacket::new();
                media.media_type = MediaType::AUDIO.into();
                media.timestamp = ms as f64 * 1000.0;
                media.duration = 20_000.0;
                let mut meta = AudioMetadata::new();
                meta.audio_number_of_channels = 1;
                media.audio_metadata = MessageField::some(meta);
                media.data = vec![0x5a; AUDIO_PACKET_BYTES].into();
                out.push((media, false));
            }
            for (media, key) in out {
                for (session, user, key_material) in &mut senders {
                    let mut packet =
                        packets::seal_media(key_material, user, &media, &Route { keyframe: key, ..Route::default() })?;
                    (packet.session_id, packet.email) = (*session, user.clone());
                    let bytes = packet.write_to_bytes()?;
                    let (before, wall_before) = (thread_cpu_seconds(), Instant::now());
                    // The recorder's part: read, open, mux, write.
                    let packet = PacketWrapper::parse_from_bytes(&bytes)?;
                    let opened = packets::open_media(&mut ring, packet, ms)?;
                    room.on_media(1_796_000_000_000 + ms, *session, user, user, &opened);
                    while let Some(action) = room.poll_action() {
                        if files.apply(action, &mut core).is_err() {
                            anyhow::bail!("writing to {} failed", dir.display());
                        }
                    }
                    timed += thread_cpu_seconds() - before;
                    timed_wall += wall_before.elapsed().as_secs_f64();
                }
            }
            if ms % 1000 == 0 {
                peak_rss = peak_rss.max(vm_kib("VmRSS:"));
            }
        }
        room.finish();
        while let Some(action) = room.poll_action() {
            let _ = files.apply(action, &mut core);
        }
        let share = timed / (n as f64 * args.seconds as f64);
        let written: u64 = files.written.iter().map(|f| f.bytes).sum();
        println!(
            "{n:>12} | {:>5.2} % ({:.2} ms per media second) | {:>6.0} | {:.2} s for {} s of media | {:.1} MiB ({} files, {:.1} MB written; {:.1} s in all)",
            share * 100.0,
            share * 1000.0,
            1.0 / share.max(1e-9),
            timed_wall,
            n as u64 * args.seconds,
            peak_rss.saturating_sub(rss_before) as f64 / 1024.0 / n as f64,
            files.written.len(),
            written as f64 / 1e6,
            started.elapsed().as_secs_f64(),
        );
        if args.out.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}
