//! Judges of media files: Debian's `ffprobe` and `ffmpeg`, a decoder independent of ours, say
//! what a file holds, whether every frame decodes, and how loud its audio is.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn program(name: &str) -> Result<PathBuf> {
    crate::find_program(name)
        .with_context(|| format!("{name} is missing: `cargo xtask test` installs it (Debian's ffmpeg)"))
}

/// What ffprobe says of `path`: `{"streams": [...], "format": {...}}`.
pub fn ffprobe(path: &Path) -> Result<serde_json::Value> {
    let out = Command::new(program("ffprobe")?)
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    if !out.status.success() {
        bail!("ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("reading ffprobe's JSON")
}

/// The file's duration in seconds, as ffprobe reads it.
pub fn duration_seconds(probe: &serde_json::Value) -> Result<f64> {
    probe["format"]["duration"].as_str().and_then(|d| d.parse().ok()).context("ffprobe gives no duration")
}

/// Decodes every frame of `path` with ffmpeg: an error when it fails or says anything (it
/// reports each broken frame at the `error` level). Each frame keeps its own timestamp
/// (`-fps_mode passthrough`, the demuxer's time base): by default ffmpeg re-times a variable
/// frame rate, as every real-time sender's is, to the average rate on the way to the null
/// muxer, and reports two frames landing on one tick of it as an error of its own.
pub fn decodes_cleanly(path: &Path) -> Result<()> {
    let out = Command::new(program("ffmpeg")?)
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-fps_mode", "passthrough", "-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .context("running ffmpeg")?;
    let said = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !said.trim().is_empty() {
        bail!("ffmpeg decoding {}: {said}", path.display());
    }
    Ok(())
}

/// The RMS level (dB) of `path`'s audio over the whole file, from ffmpeg's `astats`.
pub fn audio_rms_db(path: &Path) -> Result<f64> {
    let out = Command::new(program("ffmpeg")?)
        .args(["-nostdin", "-v", "info", "-i"])
        .arg(path)
        .args(["-vn", "-af", "astats=measure_perchannel=none", "-f", "null", "-"])
        .output()
        .context("running ffmpeg")?;
    let said = String::from_utf8_lossy(&out.stderr);
    said.lines()
        .filter_map(|l| l.split("RMS level dB:").nth(1))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back()
        .with_context(|| format!("no RMS level in ffmpeg's astats: {said}"))
}

/// The first picture of `path` (a JPEG, a video) as RGB rows: (width, height, pixels).
pub fn first_picture_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let probe = ffprobe(path)?;
    let video = probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video"))
        .with_context(|| format!("no picture in {}", path.display()))?;
    let (width, height) = (
        video["width"].as_u64().context("no width")? as usize,
        video["height"].as_u64().context("no height")? as usize,
    );
    let out = Command::new(program("ffmpeg")?)
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .context("running ffmpeg")?;
    if !out.status.success() || out.stdout.len() != width * height * 3 {
        bail!("decoding {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok((width, height, out.stdout))
}
