//! A V4L2 camera: MMAP streaming, the format negotiated from what the device offers (YU12,
//! NV12, YUYV or MJPEG, converted to I420), and a report of what the device actually gave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, FourCC};

use super::frame::{self, I420Frame};

/// Formats we convert, in order of preference (planar needs no work; YUYV is what most USB
/// cameras give uncompressed; MJPEG costs a JPEG decode but is how they give large sizes).
pub const FORMATS: [&[u8; 4]; 4] = [b"YU12", b"NV12", b"YUYV", b"MJPG"];
/// Buffers in flight between the driver and us.
const BUFFERS: u32 = 4;

pub struct V4l2Camera {
    path: PathBuf,
    stream: Stream<'static>,
    fourcc: FourCC,
    width: usize,
    height: usize,
    stride: usize,
    /// What the device settled on, for the status line.
    pub description: String,
}

impl V4l2Camera {
    /// Opens `path` asking for `width`x`height` at `fps`, in `format` if given, else the best
    /// of [`FORMATS`] it offers.
    pub fn open(path: &Path, format: Option<[u8; 4]>, width: u32, height: u32, fps: u32) -> Result<Self> {
        let device = Device::with_path(path).with_context(|| format!("opening {}", path.display()))?;
        let caps = device.query_caps().with_context(|| format!("{}: not a V4L2 device", path.display()))?;
        if !caps.capabilities.contains(v4l::capability::Flags::VIDEO_CAPTURE) {
            bail!("{} ({}) cannot capture video", path.display(), caps.card);
        }
        let offered: Vec<FourCC> = device.enum_formats()?.into_iter().map(|f| f.fourcc).collect();
        let names = || offered.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let fourcc = match format {
            Some(wanted) if offered.contains(&FourCC::new(&wanted)) => FourCC::new(&wanted),
            Some(wanted) => bail!("{} offers {} and not {}", path.display(), names(), FourCC::new(&wanted)),
            None => match FORMATS.iter().map(|f| FourCC::new(f)).find(|f| offered.contains(f)) {
                Some(fourcc) => fourcc,
                None => bail!("{} offers {} and none of YU12, NV12, YUYV, MJPG", path.display(), names()),
            },
        };
        let mut wanted = device.format()?;
        (wanted.width, wanted.height, wanted.fourcc) = (width, height, fourcc);
        let got = device.set_format(&wanted).context("setting the capture format")?;
        if got.fourcc != fourcc {
            bail!("{} refused {fourcc} and gave {}", path.display(), got.fourcc);
        }
        let params = device.set_params(&Parameters::with_fps(fps)).context("setting the frame rate")?;
        let actual_fps = params.interval.denominator as f64 / params.interval.numerator.max(1) as f64;
        let description = format!(
            "{} ({}): {}x{} {} at {actual_fps:.0} fps (asked {width}x{height} at {fps})",
            path.display(),
            caps.card,
            got.width,
            got.height,
            got.fourcc
        );
        let stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS).context("starting MMAP streaming")?;
        Ok(Self {
            path: path.to_owned(),
            stream,
            fourcc,
            width: got.width as usize,
            height: got.height as usize,
            stride: got.stride as usize,
            description,
        })
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// The next frame, as I420, and how long ago the driver captured it.
    pub fn next_frame(&mut self) -> Result<(I420Frame, Duration)> {
        let (buffer, meta) = self.stream.next().with_context(|| format!("reading {}", self.path.display()))?;
        // The age is taken once the frame is converted: conversion is part of the latency.
        let age = || since_monotonic(meta.timestamp.sec, meta.timestamp.usec);
        let data = &buffer[..(meta.bytesused as usize).min(buffer.len())];
        let (w, h) = (self.width, self.height);
        if &self.fourcc.repr == b"MJPG" {
            return Ok((frame::mjpeg_to_i420(data, w, h)?, age()));
        }
        let tight = match &self.fourcc.repr {
            b"YUYV" => w * 2,
            _ => w,
        };
        let packed;
        let data = if self.stride > tight {
            packed = unpad(data, self.stride, tight, h, &self.fourcc.repr);
            &packed[..]
        } else {
            data
        };
        let frame = match &self.fourcc.repr {
            b"YU12" => frame::yu12_to_i420(data, w, h)?,
            b"NV12" => frame::nv12_to_i420(data, w, h)?,
            _ => frame::yuyv_to_i420(data, w, h)?,
        };
        Ok((frame, age()))
    }
}

/// How long ago a driver timestamp (CLOCK_MONOTONIC, as V4L2 stamps buffers) was; zero when
/// the driver gave none.
fn since_monotonic(sec: i64, usec: i64) -> Duration {
    let Ok(now) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) else { return Duration::ZERO };
    let stamp_us = sec.saturating_mul(1_000_000).saturating_add(usec);
    let now_us = now.tv_sec().saturating_mul(1_000_000).saturating_add(now.tv_nsec() / 1_000);
    if stamp_us <= 0 || stamp_us > now_us {
        return Duration::ZERO;
    }
    Duration::from_micros((now_us - stamp_us) as u64)
}

/// Drops the row padding of a frame whose rows are `stride` bytes but hold `tight`.
pub fn unpad(data: &[u8], stride: usize, tight: usize, height: usize, fourcc: &[u8; 4]) -> Vec<u8> {
    // Planar formats: the chroma rows are half as long, padded in proportion.
    let rows: Vec<(usize, usize)> = match fourcc {
        b"YUYV" => vec![(stride, tight); height],
        b"NV12" => [vec![(stride, tight); height], vec![(stride, tight); height / 2]].concat(),
        _ => [vec![(stride, tight); height], vec![(stride / 2, tight / 2); height]].concat(),
    };
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for (stride, tight) in rows {
        if let Some(row) = data.get(at..at + tight) {
            out.extend_from_slice(row);
        }
        at += stride;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpad_drops_row_padding_of_each_layout() {
        // 4x2 frame, rows padded to 6 (luma) and 3 (chroma) bytes.
        let yu12 = [0, 1, 2, 3, 9, 9, 4, 5, 6, 7, 9, 9, 10, 11, 9, 20, 21, 9];
        assert_eq!(unpad(&yu12, 6, 4, 2, b"YU12"), vec![0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 20, 21]);
        let nv12 = [0, 1, 2, 3, 9, 9, 4, 5, 6, 7, 9, 9, 10, 20, 11, 21, 9, 9];
        assert_eq!(unpad(&nv12, 6, 4, 2, b"NV12"), vec![0, 1, 2, 3, 4, 5, 6, 7, 10, 20, 11, 21]);
        let yuyv = [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0];
        assert_eq!(unpad(&yuyv, 10, 8, 2, b"YUYV"), (1..=16).collect::<Vec<u8>>());
        // A short buffer loses rows, it does not panic.
        assert_eq!(unpad(&yuyv[..12], 10, 8, 2, b"YUYV").len(), 8);
    }
}
