//! `bot snapshot`: joins a room as a participant everyone sees ("Snapshot"), asks one
//! participant's camera for a keyframe, decodes it and writes a JPEG: the camera-wall thumbnail
//! from the command line. H.264 only (what browsers and the bot send by default).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use protobuf::Message as _;
use rand_core::OsRng;
use videocall_client::crypto::LocalIdentity;
use videocall_client::messages;
use videocall_client::peers::{Event, PeerState};
use videocall_types::{LARGEST_LAYER, MediaType, PacketWrapper, Route};

use crate::camera::JoinArgs;
use crate::load::link;
use crate::picture::{self, JPEG_QUALITY};
use crate::record::mux::VideoCodec;

/// How often the keyframe is asked for again while it has not come.
const ASK_AGAIN: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    join: JoinArgs,
    /// Whose camera: a display name, user id or session number (default: the first camera
    /// that sends a keyframe).
    #[arg(long)]
    participant: Option<String>,
    /// The JPEG to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "Snapshot")]
    name: String,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
}

pub async fn run(args: SnapshotArgs) -> Result<()> {
    link::check_server(&args.join.server)?;
    let identity = tokio::task::spawn_blocking(|| LocalIdentity::generate(&mut OsRng)).await??;
    let http = reqwest::Client::new();
    let (user, room, mut sender, mut receiver) = args.join.connect(&http, &args.name, false).await?;
    let mut core = PeerState::new(OsRng, identity.public().clone());
    core.restart(&user, &room);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut asked: std::collections::HashMap<u64, Instant> = Default::default();
    let wanted = |session: u64, user: &str, name: &str| {
        args.participant.as_deref().is_none_or(|p| p == name || p == user || p == session.to_string())
    };
    let picture = 'found: loop {
        while let Some(packet) = core.poll_transmit() {
            sender.send(packet.write_to_bytes()?).await?;
        }
        let bytes = match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(Ok(bytes))) => bytes,
            Ok(_) => bail!("the relay closed the connection"),
            Err(_) => match &args.participant {
                Some(p) => bail!("no keyframe from {p}'s camera in {} s", args.timeout),
                None => bail!("no camera sent a keyframe in {} s", args.timeout),
            },
        };
        let Ok(packet) = PacketWrapper::parse_from_bytes(&bytes) else { continue };
        let now = started.elapsed().as_millis() as u64;
        core.handle_packet(now, packet);
        core.work_locally(&identity, now);
        while let Some(event) = core.poll_event() {
            let Event::Media { session, user, media, .. } = event else { continue };
            if let Some(answer) = messages::heartbeat_answer(&media, 0) {
                let _ = core.seal_to(&answer, &Route::default(), session);
                continue;
            }
            let name = core.peers().get(&session).map(|p| p.display_name.clone()).unwrap_or_default();
            if media.media_type.enum_value() != Ok(MediaType::VIDEO) || !wanted(session, &user, &name) {
                continue;
            }
            if VideoCodec::parse(&media.video_metadata.codec).ok() != Some(VideoCodec::H264) {
                bail!("{name} sends {}: snapshots decode H.264 only", media.video_metadata.codec);
            }
            if media.frame_type == "key" {
                let picture =
                    picture::decode_h264([&media.data[..]]).with_context(|| format!("decoding {name}'s keyframe"))?;
                eprintln!("bot snapshot: {name} (session {session}), {}x{}", picture.width, picture.height);
                break 'found picture;
            }
            if asked.get(&session).is_none_or(|at| at.elapsed() >= ASK_AGAIN) {
                asked.insert(session, Instant::now());
                let _ = core.seal_to(&messages::keyframe_request(false, LARGEST_LAYER), &Route::default(), session);
            }
        }
    };
    let jpeg = picture.jpeg(JPEG_QUALITY)?;
    std::fs::write(&args.out, &jpeg).with_context(|| format!("writing {}", args.out.display()))?;
    println!("bot snapshot: wrote {} ({}x{}, {} bytes)", args.out.display(), picture.width, picture.height, jpeg.len());
    link::close(sender, receiver).await;
    Ok(())
}
