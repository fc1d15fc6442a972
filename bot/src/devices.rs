//! `bot devices`: the V4L2 devices of this machine, found through `/sys/class/video4linux` and
//! asked with `VIDIOC_QUERYCAP`: cameras with their formats and sizes, and memory-to-memory
//! codecs (what a hardware encoder is).

use std::path::PathBuf;

use anyhow::{Context, Result};
use v4l::capability::Flags;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;
use v4l::{Device, FourCC};

/// `/dev/videoN` nodes, in order (none when the kernel has no video4linux at all).
fn video_nodes() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/class/video4linux") else { return Vec::new() };
    let mut nodes: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, PathBuf::from("/dev").join(name)))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

fn sizes(device: &Device, fourcc: FourCC) -> String {
    let Ok(sizes) = device.enum_framesizes(fourcc) else { return String::new() };
    let list: Vec<String> = sizes
        .into_iter()
        .map(|s| match s.size {
            FrameSizeEnum::Discrete(d) => format!("{}x{}", d.width, d.height),
            FrameSizeEnum::Stepwise(s) => {
                format!("{}x{} to {}x{}", s.min_width, s.min_height, s.max_width, s.max_height)
            }
        })
        .collect();
    list.join(", ")
}

pub fn run() -> Result<()> {
    let nodes = video_nodes();
    if nodes.is_empty() {
        println!("no V4L2 video devices");
    }
    for node in nodes {
        let device = match Device::with_path(&node) {
            Ok(d) => d,
            Err(e) => {
                println!("{}: cannot open: {e}", node.display());
                continue;
            }
        };
        let caps = device.query_caps().with_context(|| format!("{}: VIDIOC_QUERYCAP", node.display()))?;
        let flags = caps.capabilities;
        let kind = if flags.intersects(Flags::VIDEO_M2M | Flags::VIDEO_M2M_MPLANE) {
            "memory-to-memory codec"
        } else if flags.contains(Flags::VIDEO_CAPTURE) {
            "camera"
        } else {
            "other"
        };
        println!("{}: {} (driver {}, {}): {kind}", node.display(), caps.card, caps.driver, caps.bus);
        if kind == "camera" {
            for format in device.enum_formats().unwrap_or_default() {
                println!("  {} ({}): {}", format.fourcc, format.description, sizes(&device, format.fourcc));
            }
        }
    }
    Ok(())
}
