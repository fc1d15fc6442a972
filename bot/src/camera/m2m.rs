//! Hardware encoding through the V4L2 memory-to-memory stateful encoder interface
//! (`Documentation/userspace-api/media/v4l/dev-encoder.rst`): raw frames are queued on the
//! OUTPUT queue, coded frames come back on the CAPTURE queue.
//!
//! Encoders are found, not named: every node under `/sys/class/video4linux` is asked with
//! `VIDIOC_QUERYCAP` and `VIDIOC_ENUM_FMT`, and a memory-to-memory device whose CAPTURE queue
//! offers a compressed format is an encoder of that format. Nothing here knows a codec beyond
//! its fourcc, so the same code drives a Raspberry Pi's H.264 encoder and the kernel's FWHT
//! test encoder (`vicodec`). Bitrate, keyframe interval and forced keyframes are set where the
//! driver has the control; stopping drains the encoder (`V4L2_ENC_CMD_STOP`) to its last frame.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use v4l2r::ioctl::{
    self, BufferFlags, Capabilities, Capability, DqBufIoctlError, EncoderCommand, FormatFlags, FormatIterator,
    IoctlConvertError, PlaneMapping, QBufPlane, QBuffer, QueryBuffer, V4l2Buffer,
};
use v4l2r::memory::{MemoryType, MmapHandle};
use v4l2r::{Format, PixelFormat, QueueType};

use super::coded::Codec;
use super::encode::{Encoded, VideoEncoder};
use super::frame::I420Frame;

/// Raw formats we can fill from I420, in order of preference: the planar ones need no
/// interleaving; `YM12`/`NM12` are the same with each plane in its own buffer.
const RAW_FORMATS: [&[u8; 4]; 4] = [b"YU12", b"NV12", b"YM12", b"NM12"];
/// Buffers on each queue.
const BUFFERS: u32 = 4;
/// How long a frame may take to come out before `encode` returns without it (it is picked
/// up by a later call): a one-in, one-out encoder answers well inside this.
const FRAME_WAIT: Duration = Duration::from_millis(200);
/// No free input buffer for this long: the encoder has stalled.
const STALL: Duration = Duration::from_secs(2);

// Stateful codec controls (`linux/v4l2-controls.h`, V4L2_CID_CODEC_BASE + n).
const CID_CODEC_BASE: u32 = 0x0099_0900;
const CID_GOP_SIZE: u32 = CID_CODEC_BASE + 203;
const CID_BITRATE: u32 = CID_CODEC_BASE + 207;
const CID_HEADER_MODE: u32 = CID_CODEC_BASE + 216;
const CID_REPEAT_SEQ_HEADER: u32 = CID_CODEC_BASE + 226;
const CID_FORCE_KEY_FRAME: u32 = CID_CODEC_BASE + 229;
const CID_H264_I_PERIOD: u32 = CID_CODEC_BASE + 358;
const CID_H264_LEVEL: u32 = CID_CODEC_BASE + 359;
const CID_H264_PROFILE: u32 = CID_CODEC_BASE + 363;
/// V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE and V4L2_MPEG_VIDEO_H264_LEVEL_4_0:
/// what `avc1.42e028` promises the browser.
const H264_CONSTRAINED_BASELINE: i32 = 1;
const H264_LEVEL_4_0: i32 = 11;
/// V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME: SPS and PPS inside the keyframe.
const HEADER_JOINED: i32 = 1;

/// An encoder found on this machine.
#[derive(Debug, Clone)]
pub struct EncoderInfo {
    pub path: PathBuf,
    pub card: String,
    /// Coded formats (CAPTURE queue).
    pub coded: Vec<PixelFormat>,
    /// Raw formats it takes (OUTPUT queue).
    pub raw: Vec<PixelFormat>,
    pub multiplanar: bool,
}

/// `/dev/videoN` nodes, in order (none when the kernel has no video4linux at all).
pub fn video_nodes() -> Vec<PathBuf> {
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

fn open_node(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The queues of a memory-to-memory device, or `None` for anything else.
fn m2m_queues(caps: &Capability) -> Option<(QueueType, QueueType, bool)> {
    let device = caps.device_caps();
    if device.contains(Capabilities::VIDEO_M2M_MPLANE) {
        Some((QueueType::VideoOutputMplane, QueueType::VideoCaptureMplane, true))
    } else if device.contains(Capabilities::VIDEO_M2M) {
        Some((QueueType::VideoOutput, QueueType::VideoCapture, false))
    } else {
        None
    }
}

fn formats(file: &File, queue: QueueType, compressed: bool) -> Vec<PixelFormat> {
    FormatIterator::new(file, queue)
        .filter(|f| f.flags.contains(FormatFlags::COMPRESSED) == compressed)
        .map(|f| f.pixelformat)
        .collect()
}

/// `path` as an encoder, if it is one.
pub fn probe(path: &Path) -> Result<Option<EncoderInfo>> {
    let file = open_node(path)?;
    let caps: Capability = ioctl::querycap(&file).with_context(|| format!("{}: VIDIOC_QUERYCAP", path.display()))?;
    let Some((output, capture, multiplanar)) = m2m_queues(&caps) else { return Ok(None) };
    let (coded, raw) = (formats(&file, capture, true), formats(&file, output, false));
    if coded.is_empty() || raw.is_empty() {
        // A decoder (compressed in, raw out) or a converter.
        return Ok(None);
    }
    Ok(Some(EncoderInfo { path: path.to_owned(), card: caps.card, coded, raw, multiplanar }))
}

/// Every encoder on this machine.
pub fn find_encoders() -> Vec<EncoderInfo> {
    video_nodes().iter().filter_map(|p| probe(p).ok().flatten()).collect()
}

/// The first encoder of `codec` that takes a raw format we can fill.
pub fn find_encoder(codec: Codec) -> Option<EncoderInfo> {
    let wanted = PixelFormat::from_fourcc(&codec.fourcc());
    find_encoders()
        .into_iter()
        .find(|e| e.coded.contains(&wanted) && RAW_FORMATS.iter().any(|f| e.raw.contains(&PixelFormat::from_fourcc(f))))
}

/// Where each plane of the raw format lives: `(buffer plane, offset, stride)` for Y, U and V,
/// and whether U and V are interleaved (NV12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLayout {
    pub width: usize,
    pub height: usize,
    planes: [(usize, usize, usize); 3],
    interleaved: bool,
    /// Bytes used in each buffer plane.
    pub sizes: Vec<usize>,
}

impl RawLayout {
    /// The layout of `fourcc` at the driver's `bytesperline` and `sizeimage` per buffer plane;
    /// `coded_height` is the height the driver pads planes to (at least the picture's).
    pub fn new(
        fourcc: &[u8; 4],
        width: usize,
        height: usize,
        coded_height: usize,
        buffers: &[(usize, usize)],
    ) -> Result<Self> {
        let plane = |i: usize| buffers.get(i).copied().with_context(|| format!("{fourcc:?}: no buffer plane {i}"));
        let (y_stride, y_size) = plane(0)?;
        let (planes, interleaved) = match fourcc {
            b"YU12" => {
                let c = y_stride / 2;
                let u = y_stride * coded_height;
                ([(0, 0, y_stride), (0, u, c), (0, u + c * coded_height / 2, c)], false)
            }
            b"NV12" => ([(0, 0, y_stride), (0, y_stride * coded_height, y_stride), (0, 0, 0)], true),
            b"YM12" => ([(0, 0, y_stride), (1, 0, plane(1)?.0), (2, 0, plane(2)?.0)], false),
            b"NM12" => ([(0, 0, y_stride), (1, 0, plane(1)?.0), (0, 0, 0)], true),
            other => bail!("no I420 conversion to {}", String::from_utf8_lossy(other)),
        };
        if y_stride < width {
            bail!("{}: {y_stride} bytes per line for {width} pixels", String::from_utf8_lossy(fourcc));
        }
        let sizes = if buffers.len() == 1 { vec![y_size] } else { buffers.iter().map(|b| b.1).collect() };
        Ok(Self { width, height, planes, interleaved, sizes })
    }

    /// Writes `frame` into the buffer planes `out`.
    pub fn fill(&self, frame: &I420Frame, out: &mut [&mut [u8]]) -> Result<()> {
        let (w, h) = (self.width, self.height);
        if (frame.width, frame.height) != (w, h) {
            bail!("a {}x{} frame for an encoder set up for {w}x{h}", frame.width, frame.height);
        }
        let (y, u, v) = frame.planes();
        let rows = |(plane, offset, stride): (usize, usize, usize), count: usize, len: usize| {
            (0..count).map(move |r| (plane, offset + r * stride, len))
        };
        let mut put = |(plane, at, len): (usize, usize, usize), src: &[u8]| -> Result<()> {
            let dst = out.get_mut(plane).context("buffer plane")?;
            dst.get_mut(at..at + len).context("raw frame larger than the encoder's buffer")?.copy_from_slice(src);
            Ok(())
        };
        for (row, spot) in rows(self.planes[0], h, w).enumerate() {
            put(spot, &y[row * w..(row + 1) * w])?;
        }
        let (cw, ch) = (w / 2, h / 2);
        if self.interleaved {
            let mut line = vec![0; w];
            for (row, spot) in rows(self.planes[1], ch, w).enumerate() {
                for x in 0..cw {
                    line[2 * x] = u[row * cw + x];
                    line[2 * x + 1] = v[row * cw + x];
                }
                put(spot, &line)?;
            }
        } else {
            for (row, spot) in rows(self.planes[1], ch, cw).enumerate() {
                put(spot, &u[row * cw..(row + 1) * cw])?;
            }
            for (row, spot) in rows(self.planes[2], ch, cw).enumerate() {
                put(spot, &v[row * cw..(row + 1) * cw])?;
            }
        }
        Ok(())
    }
}

/// Asks the driver to encode only the top-left `width`x`height` of its padded frame (the
/// visible rectangle, `V4L2_SEL_TGT_CROP` on OUTPUT: what a 1080-line picture in 1088 coded
/// lines needs); true when it took exactly.
fn crop(file: &File, width: usize, height: usize, format: &Format) -> bool {
    use ioctl::{SelectionFlags, SelectionTarget, SelectionType};
    if (format.width as usize) < width || (format.height as usize) < height {
        return false;
    }
    let rect = v4l2r::bindings::v4l2_rect { left: 0, top: 0, width: width as u32, height: height as u32 };
    let set: Result<v4l2r::bindings::v4l2_rect, _> =
        ioctl::s_selection(file, SelectionType::Output, SelectionTarget::Crop, rect, SelectionFlags::empty());
    set.is_ok_and(|r| (r.left, r.top, r.width as usize, r.height as usize) == (0, 0, width, height))
}

/// Sets a control, clamped to the range the driver declares; the value set, if it took.
fn set_control(file: &File, id: u32, value: i32) -> Option<i32> {
    let ctrl = ioctl::CtrlId::new(id).ok()?;
    let range: v4l2r::bindings::v4l2_queryctrl = ioctl::queryctrl(file, ctrl, ioctl::QueryCtrlFlags::empty()).ok()?;
    let value = value.clamp(range.minimum, range.maximum);
    ioctl::s_ctrl(file, id, value).ok()
}

fn not_ready<CE: std::fmt::Debug>(e: &IoctlConvertError<DqBufIoctlError, CE>) -> bool {
    matches!(e, IoctlConvertError::IoctlError(DqBufIoctlError::NotReady))
}

fn end_of_stream<CE: std::fmt::Debug>(e: &IoctlConvertError<DqBufIoctlError, CE>) -> bool {
    matches!(e, IoctlConvertError::IoctlError(DqBufIoctlError::Eos))
}

fn map_buffers(file: &File, queue: QueueType, count: u32) -> Result<Vec<Vec<PlaneMapping>>> {
    (0..count as usize)
        .map(|i| {
            let info: QueryBuffer = ioctl::querybuf(file, queue, i).with_context(|| format!("{queue:?} buffer {i}"))?;
            info.planes
                .iter()
                .map(|p| {
                    ioctl::mmap(file, p.mem_offset, p.length).with_context(|| format!("mapping {queue:?} buffer {i}"))
                })
                .collect()
        })
        .collect()
}

pub struct M2mEncoder {
    output: QueueType,
    capture: QueueType,
    layout: RawLayout,
    codec: Codec,
    codec_string: String,
    name: String,
    /// The driver takes `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME`.
    can_force_key: bool,
    free: Vec<u32>,
    coded: VecDeque<Encoded>,
    out_maps: Vec<Vec<PlaneMapping>>,
    cap_maps: Vec<Vec<PlaneMapping>>,
    /// Last: the mappings above are unmapped before the device closes.
    file: File,
}

impl M2mEncoder {
    /// Opens the encoder at `info` for `codec` at `width`x`height`, `fps`, `bitrate` bits/s.
    pub fn open(info: &EncoderInfo, codec: Codec, width: usize, height: usize, fps: u32, bitrate: u32) -> Result<Self> {
        let path = info.path.display().to_string();
        let mut file = open_node(&info.path)?;
        let caps: Capability = ioctl::querycap(&file).context("VIDIOC_QUERYCAP")?;
        let (output, capture, _) =
            m2m_queues(&caps).with_context(|| format!("{path} is not a memory-to-memory device"))?;
        let coded_format = PixelFormat::from_fourcc(&codec.fourcc());
        if !formats(&file, capture, true).contains(&coded_format) {
            bail!("{path} ({}) does not encode {coded_format}", caps.card);
        }
        // 1. The coded format on CAPTURE first: it decides what OUTPUT offers.
        let mut wanted: Format = ioctl::g_fmt(&file, capture).context("VIDIOC_G_FMT (CAPTURE)")?;
        (wanted.pixelformat, wanted.width, wanted.height) = (coded_format, width as u32, height as u32);
        let got: Format = ioctl::s_fmt(&mut file, (capture, &wanted)).context("VIDIOC_S_FMT (CAPTURE)")?;
        if got.pixelformat != coded_format {
            bail!("{path} refused {coded_format} and set {}", got.pixelformat);
        }
        // 2. The raw format on OUTPUT.
        let offered = formats(&file, output, false);
        let raw = RAW_FORMATS
            .iter()
            .find(|f| offered.contains(&PixelFormat::from_fourcc(f)))
            .with_context(|| format!("{path} takes none of YU12, NV12, YM12, NM12"))?;
        let wanted = Format {
            width: width as u32,
            height: height as u32,
            pixelformat: PixelFormat::from_fourcc(raw),
            plane_fmt: Vec::new(),
        };
        let got: Format = ioctl::s_fmt(&mut file, (output, &wanted)).context("VIDIOC_S_FMT (OUTPUT)")?;
        if got.pixelformat != wanted.pixelformat {
            bail!("{path} refused {} and set {}", wanted.pixelformat, got.pixelformat);
        }
        if (got.width as usize, got.height as usize) != (width, height) && !crop(&file, width, height, &got) {
            // Encoding the larger picture would send the frame in a corner of it.
            bail!(
                "{path} ({}) encodes {}x{} where the camera gives {width}x{height}, and cannot crop to it",
                caps.card,
                got.width,
                got.height
            );
        }
        let planes: Vec<(usize, usize)> =
            got.plane_fmt.iter().map(|p| (p.bytesperline as usize, p.sizeimage as usize)).collect();
        let layout = RawLayout::new(raw, width, height, got.height as usize, &planes)?;

        // 3. Frame rate and controls: best effort, drivers differ.
        let mut parm = v4l2r::bindings::v4l2_streamparm { type_: output as u32, ..Default::default() };
        // `output` is an output queue: `parm.output` is the union's member in use.
        parm.parm.output.timeperframe = v4l2r::bindings::v4l2_fract { numerator: 1, denominator: fps.max(1) };
        let _ = ioctl::s_parm::<_, v4l2r::bindings::v4l2_streamparm>(&file, parm);
        // A button control: writing it asks for a keyframe, which the first frame is anyway.
        let can_force_key = ioctl::s_ctrl(&file, CID_FORCE_KEY_FRAME, 1).is_ok();
        // A keyframe every 3 s, as the browser sends; every second when a viewer's request
        // cannot force one.
        let gop = fps.max(1) * if can_force_key { 3 } else { 1 };
        let mut set = vec![];
        for (id, value, what) in
            [(CID_BITRATE, bitrate as i32, "bitrate"), (CID_GOP_SIZE, gop as i32, "keyframe interval")]
        {
            if let Some(value) = set_control(&file, id, value) {
                set.push(format!("{what} {value}"));
            }
        }
        if codec == Codec::H264 {
            for (id, value) in [
                (CID_H264_PROFILE, H264_CONSTRAINED_BASELINE),
                (CID_H264_LEVEL, H264_LEVEL_4_0),
                (CID_H264_I_PERIOD, gop as i32),
                (CID_HEADER_MODE, HEADER_JOINED),
                (CID_REPEAT_SEQ_HEADER, 1),
            ] {
                set_control(&file, id, value);
            }
        }

        // 4. Buffers: every CAPTURE buffer queued from the start; OUTPUT buffers as frames come.
        let count = |n: v4l2r::ioctl::RequestBuffers| n.count;
        let outputs =
            count(ioctl::reqbufs(&file, output, MemoryType::Mmap, BUFFERS).context("VIDIOC_REQBUFS (OUTPUT)")?);
        let captures =
            count(ioctl::reqbufs(&file, capture, MemoryType::Mmap, BUFFERS).context("VIDIOC_REQBUFS (CAPTURE)")?);
        if outputs == 0 || captures == 0 {
            bail!("{path} allocated no buffers");
        }
        let out_maps = map_buffers(&file, output, outputs)?;
        let cap_maps = map_buffers(&file, capture, captures)?;
        let codec_string = match codec {
            Codec::H264 => h264_codec_string(&file),
            Codec::Vp8 => "vp8".to_owned(),
            Codec::Fwht => "fwht".to_owned(),
        };
        let encoder = Self {
            output,
            capture,
            layout,
            codec,
            codec_string,
            name: format!(
                "{} on {path} (hardware, {}{})",
                caps.card,
                String::from_utf8_lossy(&raw[..]),
                if set.is_empty() { String::new() } else { format!(", {}", set.join(", ")) }
            ),
            can_force_key,
            free: (0..outputs).collect(),
            coded: VecDeque::new(),
            out_maps,
            cap_maps,
            file,
        };
        for index in 0..captures {
            encoder.queue_capture(index)?;
        }
        ioctl::streamon(&encoder.file, output).context("VIDIOC_STREAMON (OUTPUT)")?;
        ioctl::streamon(&encoder.file, capture).context("VIDIOC_STREAMON (CAPTURE)")?;
        Ok(encoder)
    }

    fn queue_capture(&self, index: u32) -> Result<()> {
        let mut buffer = QBuffer::<MmapHandle>::new(self.capture, index);
        buffer.planes = self.cap_maps[index as usize].iter().map(|_| QBufPlane::new(0)).collect();
        ioctl::qbuf::<_, ()>(&self.file, buffer).context("VIDIOC_QBUF (CAPTURE)")?;
        Ok(())
    }

    /// Takes back whatever the driver has finished: input buffers it consumed and coded
    /// frames. Returns true once the last frame of a drain has come out.
    fn collect(&mut self) -> Result<bool> {
        loop {
            match ioctl::dqbuf::<V4l2Buffer>(&self.file, self.output) {
                Ok(buffer) => self.free.push(buffer.index()),
                Err(e) if not_ready(&e) || end_of_stream(&e) => break,
                Err(e) => return Err(anyhow::anyhow!("VIDIOC_DQBUF (OUTPUT): {e}")),
            }
        }
        loop {
            let buffer = match ioctl::dqbuf::<V4l2Buffer>(&self.file, self.capture) {
                Ok(buffer) => buffer,
                Err(e) if not_ready(&e) => return Ok(false),
                Err(e) if end_of_stream(&e) => return Ok(true),
                Err(e) => return Err(anyhow::anyhow!("VIDIOC_DQBUF (CAPTURE): {e}")),
            };
            let flags = buffer.flags();
            let index = buffer.index();
            let plane = buffer.get_first_plane();
            let (used, offset) = (*plane.bytesused as usize, plane.data_offset.copied().unwrap_or(0) as usize);
            let mapping = self.cap_maps.get(index as usize).and_then(|m| m.first()).context("CAPTURE buffer index")?;
            // A buffer the driver marks bad is dropped: the viewer asks for a keyframe.
            let good = !flags.contains(BufferFlags::ERROR);
            if let Some(data) = mapping.as_ref().get(offset..used).filter(|d| good && !d.is_empty()) {
                let stamp = buffer.timestamp();
                let keyframe =
                    flags.contains(BufferFlags::KEYFRAME) || self.codec.check(data).is_ok_and(|info| info.keyframe);
                self.coded.push_back(Encoded {
                    data: data.to_vec(),
                    keyframe,
                    timestamp_us: stamp.tv_sec as u64 * 1_000_000 + stamp.tv_usec as u64,
                });
            }
            if buffer.is_last() {
                return Ok(true);
            }
            self.queue_capture(index)?;
        }
    }

    /// Waits up to `timeout` for the driver to finish something.
    fn wait(&self, timeout: Duration) -> Result<()> {
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN | PollFlags::POLLOUT)];
        let ms = PollTimeout::from(timeout.as_millis().min(60_000) as u16);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(anyhow::anyhow!("polling the encoder: {e}")),
        }
    }

    fn submit(&mut self, frame: &I420Frame, keyframe: bool, timestamp_us: u64) -> Result<()> {
        let stalled_at = Instant::now() + STALL;
        let index = loop {
            self.collect()?;
            if let Some(index) = self.free.pop() {
                break index;
            }
            if Instant::now() >= stalled_at {
                bail!("the encoder kept every input buffer for {} s", STALL.as_secs());
            }
            self.wait(FRAME_WAIT)?;
        };
        if keyframe && self.can_force_key {
            let _ = ioctl::s_ctrl(&self.file, CID_FORCE_KEY_FRAME, 1);
        }
        let maps = &mut self.out_maps[index as usize];
        let mut planes: Vec<&mut [u8]> = maps.iter_mut().map(|m| &mut *m.data).collect();
        self.layout.fill(frame, &mut planes)?;
        let mut buffer = QBuffer::<MmapHandle>::new(self.output, index)
            .set_timestamp((timestamp_us / 1_000_000) as _, (timestamp_us % 1_000_000) as _);
        buffer.planes = self.layout.sizes.iter().map(|&size| QBufPlane::new(size)).collect();
        ioctl::qbuf::<_, ()>(&self.file, buffer).context("VIDIOC_QBUF (OUTPUT)")?;
        Ok(())
    }
}

/// The WebCodecs string for what the driver says it is producing (profile and level controls),
/// Constrained Baseline 4.0 when it does not say.
fn h264_codec_string(file: &File) -> String {
    let profile = match ioctl::g_ctrl(file, CID_H264_PROFILE) {
        Ok(2) => "4d00", // main
        Ok(4) => "6400", // high
        Ok(0) => "4200", // baseline
        _ => "42e0",     // constrained baseline
    };
    const LEVELS: [u8; 16] = [10, 9, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51];
    let level = ioctl::g_ctrl(file, CID_H264_LEVEL)
        .ok()
        .and_then(|l| LEVELS.get(usize::try_from(l).ok()?).copied())
        .unwrap_or(40);
    format!("avc1.{profile}{level:02x}")
}

impl VideoEncoder for M2mEncoder {
    fn codec(&self) -> &str {
        &self.codec_string
    }

    fn simulcast(&self) -> bool {
        // A board's encoder is often one instance, and vicodec will not open a second at
        // another size (the VM test found it): with one, the camera is one layer.
        false
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn encode(&mut self, frame: &I420Frame, keyframe: bool, timestamp_us: u64) -> Result<Option<Encoded>> {
        self.submit(frame, keyframe, timestamp_us)?;
        let deadline = Instant::now() + FRAME_WAIT;
        while self.coded.is_empty() && Instant::now() < deadline {
            self.wait(deadline.saturating_duration_since(Instant::now()))?;
            self.collect()?;
        }
        Ok(self.coded.pop_front())
    }

    fn finish(&mut self) -> Result<Vec<Encoded>> {
        ioctl::encoder_cmd::<_, ()>(&self.file, &EncoderCommand::Stop(false)).context("V4L2_ENC_CMD_STOP")?;
        let deadline = Instant::now() + STALL;
        while !self.collect()? {
            if Instant::now() >= deadline {
                bail!("the encoder did not finish draining within {} s", STALL.as_secs());
            }
            self.wait(FRAME_WAIT)?;
        }
        Ok(self.coded.drain(..).collect())
    }
}

impl Drop for M2mEncoder {
    fn drop(&mut self) {
        let _ = ioctl::streamoff(&self.file, self.capture);
        let _ = ioctl::streamoff(&self.file, self.output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x2 I420 frame: Y 0..8, U 100 101, V 200 201.
    fn frame() -> I420Frame {
        I420Frame { width: 4, height: 2, data: [(0..8).collect(), vec![100, 101], vec![200, 201]].concat() }
    }

    #[test]
    fn yu12_rows_land_at_the_drivers_stride_and_padded_height() {
        // 8 bytes per line, planes padded to 4 rows.
        let layout = RawLayout::new(b"YU12", 4, 2, 4, &[(8, 48)]).unwrap();
        let mut buf = vec![0xee; 48];
        layout.fill(&frame(), &mut [&mut buf[..]]).unwrap();
        assert_eq!(&buf[0..4], &[0, 1, 2, 3]);
        assert_eq!(&buf[8..12], &[4, 5, 6, 7]);
        assert_eq!(&buf[32..34], &[100, 101]); // U after 4 rows of 8
        assert_eq!(&buf[40..42], &[200, 201]); // V after 2 rows of 4
        assert_eq!(layout.sizes, vec![48]);
    }

    #[test]
    fn nv12_and_two_plane_nm12_interleave_chroma() {
        let layout = RawLayout::new(b"NV12", 4, 2, 2, &[(4, 12)]).unwrap();
        let mut buf = vec![0; 12];
        layout.fill(&frame(), &mut [&mut buf[..]]).unwrap();
        assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7, 100, 200, 101, 201]);

        let layout = RawLayout::new(b"NM12", 4, 2, 2, &[(4, 8), (4, 4)]).unwrap();
        let (mut y, mut uv) = (vec![0; 8], vec![0; 4]);
        layout.fill(&frame(), &mut [&mut y[..], &mut uv[..]]).unwrap();
        assert_eq!((y, uv), ((0..8).collect(), vec![100, 200, 101, 201]));
        assert_eq!(layout.sizes, vec![8, 4]);
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let layout = RawLayout::new(b"YU12", 4, 2, 2, &[(4, 12)]).unwrap();
        let mut small = vec![0; 10];
        assert!(layout.fill(&frame(), &mut [&mut small[..]]).is_err());
        let other = I420Frame { width: 2, height: 2, data: vec![0; 6] };
        assert!(layout.fill(&other, &mut [&mut vec![0; 12][..]]).is_err());
        assert!(RawLayout::new(b"YUYV", 4, 2, 2, &[(8, 16)]).is_err());
        assert!(RawLayout::new(b"YU12", 4, 2, 2, &[(2, 16)]).is_err());
        assert!(RawLayout::new(b"YM12", 4, 2, 2, &[(4, 8)]).is_err());
    }
}
