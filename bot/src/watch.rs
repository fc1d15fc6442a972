//! `bot watch`: joins a room as a viewer, with the same end-to-end encryption as everyone,
//! and exits 0 once it has opened enough video frames, each well formed for its codec (H.264
//! access units with parameter sets on keyframes, VP8 frame tags, FWHT headers whose sizes
//! add up) and labelled keyframe exactly when it is one. What the VM test uses to check a
//! camera published from inside the VM; useful for checking any room's video.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use protobuf::Message as _;
use rand_core::OsRng;
use videocall_client::crypto::LocalIdentity;
use videocall_client::peers::{Event, PeerState};
use videocall_types::{MediaPacket, MediaType, PacketWrapper};

use crate::camera::coded::Codec;
use crate::load::link::{self, Transport};

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[arg(long, env = "BOT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "BOT_ROOM")]
    room: String,
    #[arg(long, default_value = "Watcher")]
    name: String,
    /// Video frames to open before succeeding.
    #[arg(long, default_value_t = 60)]
    frames: u64,
    /// Count only frames after a pause in the video of at least this long (a camera unplugged
    /// and back): proves the video came back.
    #[arg(long)]
    after_gap_ms: Option<u64>,
    /// The codec the frames must be in (default: whatever the sender says, if we know it).
    #[arg(long, value_enum)]
    codec: Option<Codec>,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// Checks one opened video frame: a codec we know (and the one `expected`, if given), well
/// formed, labelled keyframe exactly when it is one, and the size it says. Whether it is a
/// keyframe.
fn check_frame(media: &MediaPacket, user: &str, expected: Option<Codec>) -> Result<bool> {
    let meta = &media.video_metadata;
    let codec = Codec::from_codec_string(&meta.codec)
        .with_context(|| format!("{user} sends {}, which this check does not know", meta.codec))?;
    if expected.is_some_and(|c| c != codec) {
        bail!("{user} sends {codec:?}, not {expected:?}");
    }
    let info =
        codec.check(&media.data).with_context(|| format!("frame {} from {user} is not well formed", meta.sequence))?;
    let key = media.frame_type == "key";
    if key != info.keyframe {
        bail!(
            "frame {} from {user} is labelled {} but is {}",
            meta.sequence,
            media.frame_type,
            if info.keyframe { "a keyframe" } else { "not one" }
        );
    }
    if let Some(size) = info.size.filter(|s| *s != (meta.width, meta.height)) {
        bail!("frame {} from {user} is {}x{} but says {}x{}", meta.sequence, size.0, size.1, meta.width, meta.height);
    }
    Ok(key)
}

pub async fn run(args: WatchArgs) -> Result<()> {
    link::check_server(&args.server)?;
    let identity = tokio::task::spawn_blocking(|| LocalIdentity::generate(&mut OsRng)).await??;
    let http = reqwest::Client::new();
    let (user, room, mut sender, mut receiver) =
        crate::camera::connect(&http, &args.server, &args.room, &args.name, Transport::Websocket).await?;
    let mut core = PeerState::new(OsRng, identity.public().clone());
    core.restart(&user, &room);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let (mut frames, mut keyframes, mut dropped) = (0u64, 0u64, 0u64);
    // With --after-gap-ms: when the last frame came, and whether the pause has been seen.
    let mut last_frame: Option<Instant> = None;
    let mut gap_seen = args.after_gap_ms.is_none();
    let mut last_codec = String::new();
    loop {
        while let Some(packet) = core.poll_transmit() {
            sender.send(packet.write_to_bytes()?).await?;
        }
        let bytes = match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(Ok(bytes))) => bytes,
            Ok(_) => bail!("the relay closed the connection after {frames} frames"),
            Err(_) => bail!("only {frames} video frames ({keyframes} keyframes) opened in {} s", args.timeout),
        };
        let packet = PacketWrapper::parse_from_bytes(&bytes).context("a malformed packet from the relay")?;
        let now = started.elapsed().as_millis() as u64;
        core.handle_packet(now, packet);
        core.work_locally(&identity, now);
        while let Some(event) = core.poll_event() {
            match event {
                Event::Media { media, user, .. } if media.media_type.enum_value() == Ok(MediaType::VIDEO) => {
                    let key = check_frame(&media, &user, args.codec)?;
                    last_codec = media.video_metadata.codec.clone();
                    let now = Instant::now();
                    if let (Some(min), Some(last)) = (args.after_gap_ms, last_frame) {
                        let pause = now.duration_since(last);
                        if !gap_seen && pause >= Duration::from_millis(min) {
                            println!("bot watch: the video paused for {} ms, counting from here", pause.as_millis());
                            gap_seen = true;
                        }
                    }
                    last_frame = Some(now);
                    // A decoder starts at a keyframe.
                    if gap_seen && (key || keyframes > 0) {
                        frames += 1;
                        keyframes += u64::from(key);
                    }
                }
                Event::KeyChanged { session, fingerprint } => {
                    tracing::warn!(session, %fingerprint, "a participant's key changed; it gets nothing from us");
                }
                Event::Dropped { .. } => dropped += 1,
                _ => {}
            }
        }
        if frames >= args.frames && keyframes > 0 {
            println!(
                "bot watch: opened {frames} {last_codec} frames ({keyframes} keyframes, {dropped} packets dropped before keys) in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            link::close(sender, receiver).await;
            return Ok(());
        }
    }
}
