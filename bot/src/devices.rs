//! `bot devices`: the V4L2 devices of this machine, found through `/sys/class/video4linux` and
//! asked with `VIDIOC_QUERYCAP`: cameras with their formats and sizes, and memory-to-memory
//! codecs (what a hardware encoder is).

use anyhow::{Context, Result};
use v4l::capability::Flags;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::camera::m2m::{self, video_nodes};

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
        let encoder = m2m::probe(&node).ok().flatten();
        let kind = if encoder.is_some() { "encoder" } else { kind };
        println!("{}: {} (driver {}, {}): {kind}", node.display(), caps.card, caps.driver, caps.bus);
        if let Some(encoder) = encoder {
            let list =
                |formats: &[v4l2r::PixelFormat]| formats.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            println!(
                "  encodes {} from {} ({}-planar)",
                list(&encoder.coded),
                list(&encoder.raw),
                if encoder.multiplanar { "multi" } else { "single" }
            );
        }
        if kind == "camera" {
            for format in device.enum_formats().unwrap_or_default() {
                println!("  {} ({}): {}", format.fourcc, format.description, sizes(&device, format.fourcc));
            }
        }
    }
    Ok(())
}
