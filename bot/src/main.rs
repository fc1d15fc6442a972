//! `bot`: the native client. `bot camera` publishes a camera into a room; `bot devices` lists
//! cameras and encoders; `bot watch` checks a room's video; `bot load` runs synthetic
//! participants against a relay and measures what the relay delivers; `bot flood` misbehaves
//! over WebTransport on purpose; `bot record` records a room as a participant everyone sees;
//! `bot snapshot` writes a JPEG of a participant's camera.

mod camera;
mod devices;
mod flood;
mod load;
mod picture;
mod record;
mod snapshot;
mod watch;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "bot", version, about = "Native client of the video conferencing platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Joins a room and publishes a camera (a V4L2 device, or the synthetic test pattern),
    /// encoded by a V4L2 hardware encoder when there is one (else OpenH264) and end-to-end
    /// encrypted as the browser does; a status line shows what it sends.
    Camera(camera::CameraArgs),
    /// Lists the V4L2 cameras (formats and sizes) and hardware encoders (coded and raw
    /// formats) found.
    Devices,
    /// Joins a room as a viewer and exits 0 once it has opened enough well-formed frames
    /// (H.264, VP8 or FWHT; what the VM test checks a camera with).
    Watch(watch::WatchArgs),
    /// Encodes the test pattern as fast as it can and prints throughput, CPU per frame and
    /// capture-to-encoded latency, per size.
    EncodeBench(camera::EncodeBenchArgs),
    /// Synthetic participants publishing video- and audio-like packets; prints delivery,
    /// loss and latency figures.
    Load(load::LoadArgs),
    /// WebTransport sessions that begin packets on every stream they can open and never
    /// finish them: shows a relay's memory stays bounded and it closes them.
    Flood(flood::FloodArgs),
    /// Joins as "Recorder" (shown to everyone, holding keys like anyone) and writes each
    /// participant's camera, microphone and screen, as sent, to fragmented MP4 files.
    Record(record::RecordArgs),
    /// What recording costs per participant: 720p30 H.264 and audio opened, muxed and written
    /// by the recorder's own code; prints CPU and memory per participant.
    RecordBench(record::RecordBenchArgs),
    /// Joins, asks a participant's camera for a keyframe and writes it as a JPEG.
    Snapshot(snapshot::SnapshotArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    // TLS (https/wss servers) through rustls with ring; fails only if one is already installed.
    #[cfg(feature = "tls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Camera(args) => camera::run(args).await,
        Command::Devices => devices::run(),
        Command::Watch(args) => watch::run(args).await,
        Command::EncodeBench(args) => camera::run_encode_bench(args),
        Command::Load(args) => load::run(args).await,
        Command::Flood(args) => flood::run(args).await,
        Command::Record(args) => record::run(args).await,
        Command::RecordBench(args) => record::run_bench(args),
        Command::Snapshot(args) => snapshot::run(args).await,
    }
}
