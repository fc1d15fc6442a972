//! `bot encode-bench`: the software encoder on the test pattern, one thread, as fast as it
//! goes: frames per second, CPU per frame, and captured-frame-to-encoded latency, on the clean
//! pattern and with camera-like noise.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::encode::{SoftwareH264, VideoEncoder};
use super::pattern::TestPattern;

#[derive(Debug, Args)]
pub struct EncodeBenchArgs {
    /// Sizes, WxH.
    #[arg(long, value_delimiter = ',', default_values_t = ["640x480".to_string(), "1280x720".to_string()])]
    sizes: Vec<String>,
    /// Frames per size.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Bitrate the encoder aims at, bits/s.
    #[arg(long, default_value_t = 1_500_000)]
    bitrate: u32,
    /// Encoder threads (1: "one core").
    #[arg(long, default_value_t = 1)]
    threads: u16,
    /// Luma noise amplitudes to try (0: the clean pattern; 6: about what a webcam adds indoors).
    #[arg(long, value_delimiter = ',', default_values_t = [0u8, 6])]
    noise: Vec<u8>,
}

/// Frames drawn before timing starts and encoded in turn.
const SOURCE_FRAMES: usize = 60;

/// CPU time, seconds (user + system), from a `/proc/.../stat` file (`/proc/self/stat`: the
/// process).
pub fn cpu_seconds(stat: &str) -> f64 {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// This thread's CPU time, seconds, to the nanosecond (`/proc`'s ticks are 10 ms, longer than
/// a packet takes).
pub fn thread_cpu_seconds() -> f64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN)
}

pub fn run(args: EncodeBenchArgs) -> Result<()> {
    println!(
        "{:>10} {:>6} {:>8} {:>10} {:>12} {:>10} {:>10} {:>10}",
        "size", "noise", "frames", "fps", "CPU ms/frame", "p50 ms", "p95 ms", "kb/s @30"
    );
    for (size, &noise) in args.sizes.iter().flat_map(|s| args.noise.iter().map(move |n| (s, n))) {
        let (w, h) = size.split_once('x').context("sizes are WxH")?;
        let (w, h): (usize, usize) = (w.parse()?, h.parse()?);
        // Two seconds of frames drawn beforehand: the figures are the encoder's alone.
        let mut source = TestPattern::new(w, h).with_noise(noise);
        let frames: Vec<_> = (0..SOURCE_FRAMES).map(|_| source.next_frame()).collect();
        let mut encoder = SoftwareH264::new(args.bitrate, 30.0, args.threads)?;
        let (mut latency, mut bytes) = (Vec::with_capacity(args.frames), 0usize);
        let (started, cpu_before) = (Instant::now(), thread_cpu_seconds());
        for i in 0..args.frames {
            let frame = &frames[i % SOURCE_FRAMES];
            let captured = Instant::now();
            if let Some(encoded) = encoder.encode(frame, i % 90 == 0, i as u64)? {
                bytes += encoded.data.len();
            }
            latency.push(captured.elapsed().as_secs_f64() * 1000.0);
        }
        let (wall, cpu) = (started.elapsed().as_secs_f64(), thread_cpu_seconds() - cpu_before);
        latency.sort_by(f64::total_cmp);
        println!(
            "{:>10} {:>6} {:>8} {:>10.1} {:>12.2} {:>10.2} {:>10.2} {:>10.0}",
            size,
            noise,
            args.frames,
            args.frames as f64 / wall,
            cpu * 1000.0 / args.frames as f64,
            percentile(&latency, 0.5),
            percentile(&latency, 0.95),
            bytes as f64 * 8.0 / (args.frames as f64 / 30.0) / 1000.0
        );
    }
    println!(
        "encoder: OpenH264, {} thread(s), a keyframe every 90 frames; latency: captured frame to encoded",
        args.threads
    );
    Ok(())
}
