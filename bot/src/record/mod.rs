//! `bot record`: joins a room as a participant everyone sees ("Recorder", its key fingerprint
//! in every people list), holds the media keys like anyone else, and writes what each
//! participant sends, without re-encoding, to fragmented MP4 files that ordinary players open:
//! one per participant and session (camera and microphone; the screen share in its own),
//! each starting at a keyframe, rotated every hour. Beside each file, `FILE.json` says whose
//! it is, when it began, how long it is and whether it was ended properly.
//!
//! - `mux.rs`: one file's muxing (no I/O, no clock).
//! - `room.rs`: the rules for the room: which media goes where, when files start and end,
//!   when to ask for keyframes (no I/O, time passed in).
//! - here: the adapter: the link, the files, the disk, signals.

mod bench;
pub mod mux;
pub mod room;

pub use bench::{RecordBenchArgs, run as run_bench};

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use protobuf::Message as _;
use rand_core::OsRng;
use tokio::signal::unix::{SignalKind, signal};
use videocall_client::crypto::LocalIdentity;
use videocall_client::messages;
use videocall_client::peers::{Event, PeerState};
use videocall_types::{LARGEST_LAYER, PacketWrapper, Route};

use crate::camera::{JoinArgs, wall_ms};
use crate::load::link::{self, LinkSender};
use room::{Action, FileId, FileSummary, RoomRecorder};

/// How often the free space is looked at while recording.
const DISK_CHECK: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    join: JoinArgs,
    /// Directory the recordings go to (created if missing).
    #[arg(long, env = "RECORD_OUT")]
    out: PathBuf,
    /// The name everyone sees.
    #[arg(long, env = "BOT_NAME", default_value = "Recorder")]
    name: String,
    /// A file ends and the next begins at the first keyframe after this many minutes.
    #[arg(long, env = "RECORD_ROTATE_MINUTES", default_value_t = 60)]
    rotate_minutes: u64,
    /// Free space (MiB) the output directory must keep: below it recording does not start,
    /// or stops (every file ended properly) with a notice to the room.
    #[arg(long, env = "RECORD_MIN_FREE_MB", default_value_t = 512)]
    min_free_mb: u64,
    /// Stop after this many seconds (default: until SIGTERM or Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
}

/// Bytes free for an unprivileged writer under `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let stat =
        nix::sys::statvfs::statvfs(dir).with_context(|| format!("reading the free space of {}", dir.display()))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// An open recording on disk.
struct OnDisk {
    file: File,
    path: PathBuf,
    /// Bytes known written whole: a failed append is cut back to here.
    good: u64,
}

/// Why recording stopped early: the disk ran low, or a file could not be written.
enum Stop {
    Storage(String),
}

struct Files {
    dir: PathBuf,
    open: HashMap<FileId, OnDisk>,
    written: Vec<FileSummary>,
    /// Says nothing of each file opened and ended (the benchmark).
    quiet: bool,
}

impl Files {
    fn sidecar(&self, path: &Path, summary: &FileSummary) -> Result<()> {
        let json = serde_json::to_vec_pretty(summary)?;
        let side = path.with_extension("mp4.json");
        let temporary = path.with_extension("mp4.json.new");
        std::fs::write(&temporary, json).with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, &side).with_context(|| format!("writing {}", side.display()))?;
        Ok(())
    }

    /// Appends whole or not at all (cut back to the last whole fragment), then syncs, so a
    /// crash or a full disk leaves a file that plays to its last fragment.
    fn append(&mut self, id: FileId, bytes: &[u8]) -> Result<(), Stop> {
        let Some(disk) = self.open.get_mut(&id) else { return Ok(()) };
        if bytes.is_empty() {
            return Ok(());
        }
        let result = disk.file.write_all(bytes).and_then(|()| disk.file.sync_data());
        match result {
            Ok(()) => {
                disk.good += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = disk.file.set_len(disk.good);
                Err(Stop::Storage(format!("writing {}: {e}", disk.path.display())))
            }
        }
    }

    fn apply(&mut self, action: Action, core: &mut PeerState<OsRng>) -> Result<(), Stop> {
        match action {
            Action::Open { file, name, summary } => {
                let path = self.dir.join(&name);
                let opened = OpenOptions::new().create_new(true).write(true).open(&path);
                match opened {
                    Ok(handle) => {
                        if !self.quiet {
                            eprintln!(
                                "bot record: {} ({}, session {}) → {name}",
                                summary.participant, summary.user_id, summary.session
                            );
                        }
                        let _ = self.sidecar(&path, &summary);
                        self.open.insert(file, OnDisk { file: handle, path, good: 0 });
                    }
                    Err(e) => return Err(Stop::Storage(format!("creating {}: {e}", path.display()))),
                }
            }
            Action::Append { file, bytes, summary } => {
                self.append(file, &bytes)?;
                // The listing is refreshed every ten fragments: cheap, and a crash loses little.
                if summary.duration_ms / 1000 % 10 == 0
                    && let Some(disk) = self.open.get(&file)
                {
                    let _ = self.sidecar(&disk.path, &summary);
                }
            }
            Action::Close { file, bytes, summary } => {
                let result = self.append(file, &bytes);
                if let Some(disk) = self.open.remove(&file) {
                    let _ = self.sidecar(&disk.path, &summary);
                    if !self.quiet {
                        eprintln!(
                            "bot record: {} ended: {:.1} s, {} bytes",
                            summary.file,
                            summary.duration_ms as f64 / 1000.0,
                            summary.bytes
                        );
                    }
                    self.written.push(summary);
                }
                result?;
            }
            Action::RequestKeyframe { session, screen } => {
                let _ = core.seal_to(&messages::keyframe_request(screen, LARGEST_LAYER), &Route::default(), session);
            }
            Action::Unrecordable { session, stream, reason } => {
                eprintln!("bot record: session {session}'s {stream:?} is not recorded: {reason}");
            }
        }
        Ok(())
    }
}

async fn flush(core: &mut PeerState<OsRng>, sender: &mut LinkSender) -> Result<()> {
    while let Some(packet) = core.poll_transmit() {
        sender.send(packet.write_to_bytes()?).await?;
    }
    Ok(())
}

pub async fn run(args: RecordArgs) -> Result<()> {
    link::check_server(&args.join.server)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let min_free = args.min_free_mb * 1024 * 1024;
    let free = free_bytes(&args.out)?;
    if free < min_free {
        bail!(
            "{} has {} MiB free, less than the {} MiB recording keeps free (--min-free-mb): not recording",
            args.out.display(),
            free / 1024 / 1024,
            args.min_free_mb
        );
    }
    let identity = tokio::task::spawn_blocking(|| LocalIdentity::generate(&mut OsRng)).await??;
    let http = reqwest::Client::new();
    let (user, room_name, mut sender, mut receiver) = args
        .join
        .connect(&http, &args.name, true)
        .await
        .with_context(|| format!("joining {} at {}", args.join.room, args.join.server))?;
    let mut core = PeerState::new(OsRng, identity.public().clone());
    core.restart(&user, &room_name);
    eprintln!(
        "bot record: in room {} as {} ({user}), key fingerprint {}",
        args.join.room,
        args.name,
        core.fingerprint()
    );
    eprintln!("bot record: writing to {}", args.out.display());
    let mut room = RoomRecorder::new(args.rotate_minutes.max(1) * 60_000);
    let mut files = Files { dir: args.out.clone(), open: HashMap::new(), written: Vec::new(), quiet: false };
    let started = std::time::Instant::now();
    let deadline = args.duration.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut disk_checked = tokio::time::Instant::now();
    let mut stop: Option<Stop> = None;
    // Why the loop ended, and whether that is a failure (the connection lost) or was asked for.
    let (ended, lost) = loop {
        if let Err(e) = flush(&mut core, &mut sender).await {
            break (format!("sending to the relay failed: {e:#}"), true);
        }
        let sleep_until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = terminate.recv() => break ("stopped (SIGTERM)".to_owned(), false),
            _ = interrupt.recv() => break ("stopped (interrupted)".to_owned(), false),
            _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => break ("stopped (--duration)".to_owned(), false),
            _ = tick.tick() => {
                room.tick(wall_ms() as u64);
                if disk_checked.elapsed() >= DISK_CHECK {
                    disk_checked = tokio::time::Instant::now();
                    // Unreadable (the directory gone, say): the next write says what is wrong.
                    let free = free_bytes(&args.out).unwrap_or(u64::MAX);
                    if free < min_free {
                        stop = Some(Stop::Storage(format!(
                            "the disk is nearly full ({} MiB free, less than {} MiB)",
                            free / 1024 / 1024,
                            args.min_free_mb
                        )));
                    }
                }
            }
            packet = receiver.recv() => {
                let bytes = match packet {
                    Some(Ok(bytes)) => bytes,
                    Some(Err(e)) => break (format!("the connection failed: {e:#}"), true),
                    None => break ("the relay closed the connection".to_owned(), true),
                };
                let Ok(packet) = PacketWrapper::parse_from_bytes(&bytes) else { continue };
                let now = started.elapsed().as_millis() as u64;
                core.handle_packet(now, packet);
                core.work_locally(&identity, now);
                while let Some(event) = core.poll_event() {
                    match event {
                        Event::Media { session, user, media, .. } => {
                            if let Some(answer) = messages::heartbeat_answer(&media, 0) {
                                let _ = core.seal_to(&answer, &Route::default(), session);
                                continue;
                            }
                            let name = core.peers().get(&session).map(|p| p.display_name.clone()).unwrap_or_default();
                            room.on_media(wall_ms() as u64, session, &user, &name, &media);
                        }
                        // A new identity on a known session is someone else as far as the
                        // recording goes: that session's files end.
                        Event::Left { session } | Event::KeyChanged { session, .. } => room.on_left(session),
                        _ => {}
                    }
                }
            }
        }
        while let Some(action) = room.poll_action() {
            if let Err(e) = files.apply(action, &mut core) {
                stop = Some(e);
            }
        }
        if stop.is_some() {
            break (String::new(), false);
        }
    };
    room.finish();
    while let Some(action) = room.poll_action() {
        if let Err(e) = files.apply(action, &mut core) {
            stop.get_or_insert(e);
        }
    }
    if let Some(Stop::Storage(why)) = &stop {
        let _ = core.seal(&messages::chat(&format!("Recording stopped: {why}")), &Route::default());
    }
    let _ = flush(&mut core, &mut sender).await;
    link::close(sender, receiver).await;
    let total: u64 = files.written.iter().map(|f| f.bytes).sum();
    eprintln!("bot record: {} file(s), {total} bytes in {}", files.written.len(), args.out.display());
    match stop {
        Some(Stop::Storage(why)) => {
            bail!("recording stopped: {why}; every file written so far plays")
        }
        // Every file was ended properly, but the recording did not end when asked.
        None if lost => bail!("recording stopped: {ended}; every file written so far plays"),
        None => {
            eprintln!("bot record: {ended}");
            Ok(())
        }
    }
}
