//! `bot watch`: joins a room as a viewer, with the same end-to-end encryption as everyone,
//! and exits 0 once it has opened enough video frames from one sender, each a well-formed
//! H.264 Annex B access unit (keyframes carrying their SPS and PPS). What the VM test uses to
//! check a camera published from inside the VM; useful for checking any room's video.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use protobuf::Message as _;
use rand_core::OsRng;
use videocall_client::crypto::IdentityKey;
use videocall_client::peers::{Event, PeerState};
use videocall_types::{MediaType, PacketWrapper};

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
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// NAL unit types of an Annex B access unit.
fn nal_types(data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < data.len() {
        let start = if data[i..].starts_with(&[0, 0, 1]) {
            3
        } else if data[i..].starts_with(&[0, 0, 0, 1]) {
            4
        } else {
            i += 1;
            continue;
        };
        if let Some(header) = data.get(i + start) {
            types.push(header & 0x1f);
        }
        i += start;
    }
    types
}

pub async fn run(args: WatchArgs) -> Result<()> {
    link::check_server(&args.server)?;
    let identity = tokio::task::spawn_blocking(|| IdentityKey::generate(&mut OsRng)).await??;
    let http = reqwest::Client::new();
    let (user, mut sender, mut receiver) =
        crate::camera::connect(&http, &args.server, &args.room, &args.name, Transport::Websocket).await?;
    let mut core = PeerState::new(OsRng, identity, &user)?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let (mut frames, mut keyframes, mut dropped) = (0u64, 0u64, 0u64);
    // With --after-gap-ms: (when the last frame came, the longest pause seen so far).
    let mut last_frame: Option<Instant> = None;
    let mut gap_seen = args.after_gap_ms.is_none();
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
        core.handle_packet(started.elapsed().as_millis() as u64, packet);
        while let Some(event) = core.poll_event() {
            match event {
                Event::Media { media, user, .. } if media.media_type.enum_value() == Ok(MediaType::VIDEO) => {
                    let codec = &media.video_metadata.codec;
                    if !codec.starts_with("avc1") {
                        bail!("{user} sends {codec}, not H.264");
                    }
                    let types = nal_types(&media.data);
                    let key = media.frame_type == "key";
                    if types.is_empty() || (key && !(types.contains(&7) && types.contains(&8) && types.contains(&5))) {
                        bail!("frame {frames} from {user} is not a well-formed access unit: NAL types {types:?}");
                    }
                    let now = Instant::now();
                    if let (Some(min), Some(last)) = (args.after_gap_ms, last_frame) {
                        let pause = now.duration_since(last);
                        if !gap_seen && pause >= Duration::from_millis(min) {
                            println!("bot watch: the video paused for {} ms, counting from here", pause.as_millis());
                            gap_seen = true;
                        }
                    }
                    last_frame = Some(now);
                    if gap_seen {
                        frames += 1;
                        keyframes += u64::from(key);
                    }
                }
                Event::Dropped { .. } => dropped += 1,
                _ => {}
            }
        }
        if frames >= args.frames && keyframes > 0 {
            println!(
                "bot watch: opened {frames} H.264 frames ({keyframes} keyframes, {dropped} packets dropped before keys) in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            link::close(sender, receiver).await;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nal_types;

    #[test]
    fn finds_nal_units_after_both_start_codes() {
        let unit = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9];
        assert_eq!(nal_types(&unit), vec![7, 8, 5]);
        assert!(nal_types(&[1, 2, 3]).is_empty());
    }
}
