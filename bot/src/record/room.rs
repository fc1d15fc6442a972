//! The recorder's rules for a whole room, with no I/O and the time passed in: which opened
//! media goes to which file, when a file starts (a keyframe), ends (the participant left, the
//! stream changed, the hour is up) and when to ask a sender for a keyframe. The adapter
//! (`record::run`) turns the actions into file writes and sealed packets.

use std::collections::BTreeMap;

use serde::Serialize;
use videocall_types::{MediaPacket, MediaType};

use super::mux::{AudioIn, FileMuxer, MuxError, Refused, VideoCodec, VideoIn};

/// How often a stream still waiting for its first keyframe asks its sender for one (the web
/// client asks as often).
pub const KEYFRAME_REQUEST_MS: u64 = 1_000;

/// Which of a participant's streams a file holds: the camera with the microphone, or the
/// screen share on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Camera,
    Screen,
}

/// A file's number, for the adapter's bookkeeping.
pub type FileId = u64;

/// What one file holds, for the listing beside it.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub file: String,
    pub participant: String,
    pub user_id: String,
    pub session: u64,
    pub stream: Stream,
    pub codec: String,
    /// Wall-clock milliseconds (Unix epoch) of the file's first sample.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub has_video: bool,
    pub has_audio: bool,
    /// Whether the file was ended properly (its index written).
    pub complete: bool,
}

#[derive(Debug)]
pub enum Action {
    /// Create `name` (relative to the output directory) for `file`.
    Open {
        file: FileId,
        name: String,
        summary: FileSummary,
    },
    Append {
        file: FileId,
        bytes: Vec<u8>,
        summary: FileSummary,
    },
    Close {
        file: FileId,
        bytes: Vec<u8>,
        summary: FileSummary,
    },
    /// Seal a keyframe request to this session.
    RequestKeyframe {
        session: u64,
        screen: bool,
    },
    /// A stream that cannot be recorded (said once per stream).
    Unrecordable {
        session: u64,
        stream: Stream,
        reason: String,
    },
}

struct Open {
    id: FileId,
    muxer: FileMuxer,
    summary: FileSummary,
}

#[derive(Default)]
struct StreamState {
    file: Option<Open>,
    /// When a keyframe was last asked for (while there is no file, or a rotation is due).
    asked_ms: Option<u64>,
    /// Said why it cannot be recorded: do not say it again.
    refused: bool,
    /// The hour is up: the next keyframe starts a new file.
    rotate: bool,
}

pub struct RoomRecorder {
    rotate_ms: u64,
    streams: BTreeMap<(u64, Stream), StreamState>,
    next_id: FileId,
    actions: Vec<Action>,
}

/// Letters, digits, '-' and '_' of a name, at most 40: safe in any file system.
fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(40)
        .collect();
    if safe.is_empty() { "participant".into() } else { safe }
}

/// `20261202T101500Z` for wall-clock milliseconds.
pub fn timestamp_name(wall_ms: u64) -> String {
    let at =
        time::OffsetDateTime::from_unix_timestamp((wall_ms / 1000) as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    at.format(&format).unwrap_or_else(|_| (wall_ms / 1000).to_string())
}

impl RoomRecorder {
    /// Files are rotated at the first keyframe after `rotate_ms` of recording.
    pub fn new(rotate_ms: u64) -> Self {
        Self { rotate_ms, streams: BTreeMap::new(), next_id: 1, actions: Vec::new() }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() { None } else { Some(self.actions.remove(0)) }
    }

    /// An opened media packet from `session`. `now_ms`: wall-clock milliseconds.
    pub fn on_media(&mut self, now_ms: u64, session: u64, user: &str, name: &str, media: &MediaPacket) {
        let (stream, video) = match media.media_type.enum_value() {
            Ok(MediaType::VIDEO) => (Stream::Camera, true),
            Ok(MediaType::SCREEN) => (Stream::Screen, true),
            Ok(MediaType::AUDIO) => (Stream::Camera, false),
            _ => return,
        };
        let result = if video {
            self.video(now_ms, session, stream, user, name, media)
        } else {
            self.audio(now_ms, session, user, name, media)
        };
        if let Err(e) = result {
            let state = self.streams.entry((session, stream)).or_default();
            // The file so far stays good; this stream is recorded no further.
            if let Some(open) = state.file.take() {
                self.actions.push(close(open));
            }
            if !state.refused {
                state.refused = true;
                self.actions.push(Action::Unrecordable { session, stream, reason: e.to_string() });
            }
        }
    }

    fn video(
        &mut self,
        now_ms: u64,
        session: u64,
        stream: Stream,
        user: &str,
        name: &str,
        media: &MediaPacket,
    ) -> Result<(), MuxError> {
        let meta = &media.video_metadata;
        let frame = VideoIn {
            codec: VideoCodec::parse(&meta.codec)?,
            keyframe: media.frame_type == "key",
            data: &media.data,
            timestamp_us: media.timestamp,
            width: meta.width,
            height: meta.height,
        };
        let state = self.streams.entry((session, stream)).or_default();
        if state.refused {
            return Ok(());
        }
        if let Some(open) = &mut state.file {
            let due = state.rotate && frame.keyframe;
            if !due {
                match open.muxer.push_video(now_ms, &frame)? {
                    Ok(bytes) => {
                        if let Some(bytes) = bytes {
                            refresh(open);
                            self.actions.push(Action::Append { file: open.id, bytes, summary: open.summary.clone() });
                        }
                        if now_ms.saturating_sub(open.muxer.started_ms()) >= self.rotate_ms {
                            state.rotate = true;
                        }
                        return Ok(());
                    }
                    Err(Refused::NeedKeyframe) => return Ok(()),
                    Err(Refused::Rotate) => {}
                }
            }
            if let Some(open) = state.file.take() {
                self.actions.push(close(open));
            }
        }
        state.rotate = false;
        if !frame.keyframe {
            if state.asked_ms.is_none_or(|at| now_ms.saturating_sub(at) >= KEYFRAME_REQUEST_MS) {
                state.asked_ms = Some(now_ms);
                self.actions.push(Action::RequestKeyframe { session, screen: stream == Stream::Screen });
            }
            return Ok(());
        }
        state.asked_ms = None;
        let muxer = FileMuxer::with_video(now_ms, &frame)?;
        let open = self.open(now_ms, session, stream, user, name, frame.codec.name(), muxer);
        self.streams.entry((session, stream)).or_default().file = Some(open);
        Ok(())
    }

    fn audio(
        &mut self,
        now_ms: u64,
        session: u64,
        user: &str,
        name: &str,
        media: &MediaPacket,
    ) -> Result<(), MuxError> {
        let meta = &media.audio_metadata;
        let packet = AudioIn {
            data: &media.data,
            timestamp_us: media.timestamp,
            duration_us: (media.duration > 0.0).then_some(media.duration),
            channels: meta.audio_number_of_channels.max(1),
        };
        let state = self.streams.entry((session, Stream::Camera)).or_default();
        if state.refused {
            return Ok(());
        }
        if let Some(open) = &mut state.file {
            // Audio alone rotates at any packet; with video, at the video's keyframe.
            let rotate_now =
                !open.muxer.has_video() && now_ms.saturating_sub(open.muxer.started_ms()) >= self.rotate_ms;
            if !rotate_now {
                match open.muxer.push_audio(now_ms, &packet)? {
                    Ok(Some(bytes)) => {
                        refresh(open);
                        self.actions.push(Action::Append { file: open.id, bytes, summary: open.summary.clone() });
                    }
                    Ok(None) => {}
                    // A video file without audio: the microphone came on later. The next
                    // keyframe starts a file with both.
                    Err(_) => state.rotate = true,
                }
                return Ok(());
            }
            if let Some(open) = state.file.take() {
                self.actions.push(close(open));
            }
        }
        // Audio alone starts a file; a camera that comes on joins it within its first
        // fragment, or starts the next file at its keyframe.
        let muxer = FileMuxer::with_audio(now_ms, &packet);
        let open = self.open(now_ms, session, Stream::Camera, user, name, "none", muxer);
        self.streams.entry((session, Stream::Camera)).or_default().file = Some(open);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        now_ms: u64,
        session: u64,
        stream: Stream,
        user: &str,
        name: &str,
        codec: &str,
        muxer: FileMuxer,
    ) -> Open {
        let id = self.next_id;
        self.next_id += 1;
        let suffix = if stream == Stream::Screen { "_screen" } else { "" };
        let file = format!("{}_{}_{session}{suffix}_{id}.mp4", timestamp_name(now_ms), file_safe(name));
        let summary = FileSummary {
            file: file.clone(),
            participant: name.to_owned(),
            user_id: user.to_owned(),
            session,
            stream,
            codec: codec.to_owned(),
            started_ms: now_ms,
            duration_ms: 0,
            bytes: 0,
            has_video: muxer.has_video(),
            has_audio: muxer.has_audio(),
            complete: false,
        };
        self.actions.push(Action::Open { file: id, name: file, summary: summary.clone() });
        Open { id, muxer, summary }
    }

    /// Asks again for keyframes that have not come. `now_ms`: wall-clock milliseconds.
    pub fn tick(&mut self, now_ms: u64) {
        for (&(session, stream), state) in &mut self.streams {
            let waiting = state.file.is_none() || state.rotate;
            if waiting
                && !state.refused
                && state.asked_ms.is_some_and(|at| now_ms.saturating_sub(at) >= KEYFRAME_REQUEST_MS)
            {
                state.asked_ms = Some(now_ms);
                self.actions.push(Action::RequestKeyframe { session, screen: stream == Stream::Screen });
            }
        }
    }

    /// `session` left (or its key changed): its files end.
    pub fn on_left(&mut self, session: u64) {
        let keys: Vec<_> = self.streams.keys().filter(|(s, _)| *s == session).copied().collect();
        for key in keys {
            if let Some(open) = self.streams.remove(&key).and_then(|s| s.file) {
                self.actions.push(close(open));
            }
        }
    }

    /// Stopping: every file ends.
    pub fn finish(&mut self) {
        for (_, state) in std::mem::take(&mut self.streams) {
            if let Some(open) = state.file {
                self.actions.push(close(open));
            }
        }
    }
}

/// The summary, from what the muxer has written.
fn refresh(open: &mut Open) {
    open.summary.duration_ms = open.muxer.duration_ms();
    open.summary.bytes = open.muxer.bytes();
    open.summary.has_video = open.muxer.has_video();
    open.summary.has_audio = open.muxer.has_audio();
    open.summary.codec = open.muxer.codec().map_or("none", VideoCodec::name).into();
}

fn close(mut open: Open) -> Action {
    let bytes = match open.muxer.finish() {
        Ok(bytes) => bytes,
        // Whatever was appended stays a playable file; only its index is missing.
        Err(e) => {
            tracing::warn!(file = %open.summary.file, error = %e, "ending a recording");
            Vec::new()
        }
    };
    refresh(&mut open);
    open.summary.complete = true;
    Action::Close { file: open.id, bytes, summary: open.summary }
}

#[cfg(test)]
mod tests {
    use protobuf::MessageField;
    use videocall_types::VideoMetadata;

    use super::*;
    use crate::camera::encoded_test_pattern;

    const T0: u64 = 1_796_000_000_000;

    fn frame(kind: MediaType, data: &[u8], key: bool, i: usize, codec: &str) -> MediaPacket {
        let mut media = MediaPacket::new();
        media.media_type = kind.into();
        media.frame_type = if key { "key" } else { "delta" }.into();
        media.timestamp = i as f64 * 33_333.3;
        media.data = data.to_vec().into();
        let mut meta = VideoMetadata::new();
        meta.codec = codec.into();
        (meta.width, meta.height) = (320, 240);
        media.video_metadata = MessageField::some(meta);
        media
    }

    fn drain(room: &mut RoomRecorder) -> Vec<Action> {
        std::iter::from_fn(|| room.poll_action()).collect()
    }

    #[test]
    fn a_camera_is_asked_for_a_keyframe_then_recorded_until_it_leaves() {
        let frames = encoded_test_pattern(320, 240, 120, 60);
        let mut room = RoomRecorder::new(3_600_000);
        // Joined mid-stream: frames 1.. are deltas until the keyframe at 60.
        let mut requests = 0;
        for (i, (data, key)) in frames.iter().enumerate().skip(1).take(59) {
            assert!(!key);
            room.on_media(
                T0 + i as u64 * 33,
                7,
                "u7",
                "Ada Lovelace",
                &frame(MediaType::VIDEO, data, false, i, "avc1.42e028"),
            );
            requests += drain(&mut room)
                .iter()
                .filter(|a| matches!(a, Action::RequestKeyframe { session: 7, screen: false }))
                .count();
        }
        assert_eq!(requests, 2, "asked once a second while waiting (two seconds)");
        let mut opened = None;
        let mut appended = 0;
        for (i, (data, key)) in frames.iter().enumerate().skip(60) {
            room.on_media(
                T0 + i as u64 * 33,
                7,
                "u7",
                "Ada Lovelace",
                &frame(MediaType::VIDEO, data, *key, i, "avc1.42e028"),
            );
            for action in drain(&mut room) {
                match action {
                    Action::Open { name, summary, .. } => {
                        assert_eq!(name, "20261130T005321Z_Ada_Lovelace_7_1.mp4");
                        assert_eq!((summary.participant.as_str(), summary.user_id.as_str()), ("Ada Lovelace", "u7"));
                        opened = Some(name);
                    }
                    Action::Append { bytes, .. } => appended += bytes.len(),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert!(opened.is_some() && appended > 0);
        room.on_left(7);
        let actions = drain(&mut room);
        let [Action::Close { summary, bytes, .. }] = &actions[..] else { panic!("{actions:?}") };
        assert!(summary.complete && summary.has_video && !summary.has_audio && !bytes.is_empty());
        assert_eq!(summary.codec, "h264");
        assert!((1_900..2_100).contains(&summary.duration_ms), "60 frames: {} ms", summary.duration_ms);
    }

    #[test]
    fn files_rotate_at_the_first_keyframe_after_the_hour_and_screens_have_their_own() {
        let frames = encoded_test_pattern(320, 240, 120, 30);
        let mut room = RoomRecorder::new(2_000);
        let mut names = Vec::new();
        let mut closed = 0;
        for (i, (data, key)) in frames.iter().enumerate() {
            let now = T0 + i as u64 * 33;
            room.on_media(now, 3, "u3", "Grace", &frame(MediaType::VIDEO, data, *key, i, "avc1.42e028"));
            room.on_media(now, 3, "u3", "Grace", &frame(MediaType::SCREEN, data, *key, i, "avc1.42e028"));
            for action in drain(&mut room) {
                match action {
                    Action::Open { name, .. } => names.push(name),
                    Action::Close { summary, .. } => {
                        closed += 1;
                        assert!(summary.duration_ms >= 1_900, "a file ends at a keyframe after its 2 s: {summary:?}");
                    }
                    _ => {}
                }
            }
        }
        // Keyframes every second, rotation every 2 s: files at 0, 2 and 3 s (4 s in all).
        assert_eq!(names.iter().filter(|n| n.contains("_screen_")).count(), 2, "{names:?}");
        assert_eq!(names.iter().filter(|n| !n.contains("_screen_")).count(), 2, "{names:?}");
        assert_eq!(closed, 2);
        room.finish();
        assert_eq!(drain(&mut room).iter().filter(|a| matches!(a, Action::Close { .. })).count(), 2);
    }

    #[test]
    fn an_unknown_codec_is_said_once_and_others_go_on() {
        let frames = encoded_test_pattern(320, 240, 3, 30);
        let mut room = RoomRecorder::new(3_600_000);
        for i in 0..3 {
            room.on_media(T0 + i, 9, "u9", "Mallory", &frame(MediaType::VIDEO, b"junk", true, i as usize, "theora"));
            room.on_media(
                T0 + i,
                4,
                "u4",
                "Alan",
                &frame(MediaType::VIDEO, &frames[i as usize].0, frames[i as usize].1, i as usize, "avc1.42e028"),
            );
        }
        let actions = drain(&mut room);
        let said = actions.iter().filter(|a| matches!(a, Action::Unrecordable { session: 9, .. })).count();
        assert_eq!(said, 1, "{actions:?}");
        assert!(actions.iter().any(|a| matches!(a, Action::Open { summary, .. } if summary.session == 4)));
        // A keyframe that is not H.264 at all, labelled H.264: refused, nothing written for it.
        room.on_media(
            T0 + 10,
            5,
            "u5",
            "Eve",
            &frame(MediaType::VIDEO, &[0, 0, 0, 1, 0x65, 9, 9], true, 0, "avc1.42e028"),
        );
        let actions = drain(&mut room);
        assert!(matches!(&actions[..], [Action::Unrecordable { session: 5, .. }]), "{actions:?}");
    }
}
