//! What we send: encoded camera, screen and microphone frames, heartbeats, chat; and the
//! bitrate ladder that follows what receivers report.

use std::rc::{Rc, Weak};

use protobuf::MessageField;
use videocall_types::{AudioMetadata, HeartbeatMetadata, MediaPacket, MediaType, VideoMetadata};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{AudioContext, MediaStreamTrack};

use super::Inner;
use crate::services::js;
use crate::services::media::audio_out::AudioOut;
use crate::services::media::audio_send::{AudioSender, EncodedAudio};
use crate::services::media::capture;
use crate::services::media::video_send::{self, EncodedFrame, VideoSender};
use crate::types::ladder::Ladder;
use crate::types::room::{ChatLine, RoomAction};

/// Screen share: sharp text matters more than motion.
const SCREEN_BITRATE: u32 = 1_500_000;
const SCREEN_FPS: f64 = 15.0;

fn first_track(tracks: js_sys::Array) -> Option<MediaStreamTrack> {
    tracks.iter().next().map(JsCast::unchecked_into)
}

/// Starts playback of what others send.
pub fn start_playback(inner: &Rc<Inner>, context: AudioContext) {
    let weak = Rc::downgrade(inner);
    spawn_local(async move {
        match AudioOut::start(context).await {
            Ok(out) => {
                if let Some(inner) = weak.upgrade() {
                    *inner.audio_out.borrow_mut() = Some(Rc::new(out));
                }
            }
            Err(e) => web_sys::console::error_1(&format!("no audio playback: {e}").into()),
        }
    });
}

/// The track of `kind` ("audio" or "video") of our camera and microphone stream.
fn local_track(inner: &Inner, video: bool) -> Option<MediaStreamTrack> {
    let stream = inner.stream.borrow();
    let stream = stream.as_ref()?;
    first_track(if video { stream.get_video_tracks() } else { stream.get_audio_tracks() })
}

/// Starts the microphone and (once a codec is chosen) the camera.
pub fn start_capture(inner: &Rc<Inner>) {
    if let Some(track) = local_track(inner, false) {
        match AudioSender::start(track, audio_sink(Rc::downgrade(inner))) {
            Ok(sender) => {
                sender.set_muted(!inner.senders.borrow().audio_on);
                inner.senders.borrow_mut().audio = Some(sender);
            }
            Err(e) => web_sys::console::error_1(&format!("no microphone encoding: {e}").into()),
        }
    }
    let weak = Rc::downgrade(inner);
    spawn_local(async move {
        let Some(inner) = weak.upgrade() else { return };
        let Some(track) = local_track(&inner, true) else { return };
        let settings = track.get_settings();
        let width = settings.get_width().unwrap_or(640) as u32;
        let height = settings.get_height().unwrap_or(480) as u32;
        let ladder = Ladder::for_camera(width, height);
        let (_, _, bitrate, _) = ladder.rung();
        let codec = video_send::choose_codec(width, height, bitrate).await.unwrap_or_else(|| "vp8".into());
        {
            let mut senders = inner.senders.borrow_mut();
            senders.codec = codec;
            senders.ladder = Some(ladder);
        }
        let on = inner.senders.borrow().video_on;
        set_video(&inner, on);
    });
    publish_local_state(inner);
}

fn camera_sender(inner: &Rc<Inner>) -> Option<VideoSender> {
    let track = local_track(inner, true)?;
    let senders = inner.senders.borrow();
    let (_, _, bitrate, fps) = senders.ladder.as_ref()?.rung();
    let sink = video_sink(Rc::downgrade(inner), MediaType::VIDEO, senders.codec.clone());
    VideoSender::start(track, &senders.codec, bitrate, fps, sink)
        .map_err(|e| web_sys::console::error_1(&format!("no camera encoding: {e}").into()))
        .ok()
}

pub fn set_video(inner: &Rc<Inner>, on: bool) {
    if let Some(track) = local_track(inner, true) {
        track.set_enabled(on);
    }
    let sender = if on { camera_sender(inner) } else { None };
    {
        let mut senders = inner.senders.borrow_mut();
        senders.video_on = on;
        senders.video = sender;
    }
    publish_local_state(inner);
}

pub fn set_audio(inner: &Rc<Inner>, on: bool) {
    {
        let mut senders = inner.senders.borrow_mut();
        senders.audio_on = on;
        if let Some(audio) = &senders.audio {
            audio.set_muted(!on);
        }
    }
    publish_local_state(inner);
}

pub fn toggle_screen(inner: &Rc<Inner>) {
    if inner.senders.borrow_mut().screen.take().is_some() {
        publish_local_state(inner);
        return;
    }
    let weak = Rc::downgrade(inner);
    spawn_local(async move {
        let stream = match capture::screen().await {
            Ok(s) => s,
            Err(e) => return web_sys::console::warn_1(&e.into()),
        };
        let Some(inner) = weak.upgrade() else { return capture::stop(&stream) };
        let Some(track) = first_track(stream.get_video_tracks()) else { return };
        // The browser's own "Stop sharing" button ends the track.
        let ended = Rc::downgrade(&inner);
        let on_ended = Closure::once_into_js(move || {
            if let Some(inner) = ended.upgrade() {
                if let Some((_, s)) = inner.senders.borrow_mut().screen.take() {
                    capture::stop(&s);
                }
                publish_local_state(&inner);
            }
        });
        track.set_onended(Some(on_ended.unchecked_ref()));
        let codec = inner.senders.borrow().codec.clone();
        let sink = video_sink(Rc::downgrade(&inner), MediaType::SCREEN, codec.clone());
        match VideoSender::start(track, &codec, SCREEN_BITRATE, SCREEN_FPS, sink) {
            Ok(sender) => inner.senders.borrow_mut().screen = Some((sender, stream)),
            Err(e) => {
                capture::stop(&stream);
                web_sys::console::error_1(&format!("no screen encoding: {e}").into());
            }
        }
        publish_local_state(&inner);
    });
}

pub fn send_chat(inner: &Rc<Inner>, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    seal_to(inner, &videocall_client::messages::chat(text), 0);
    let name = inner.display_name.clone();
    inner.dispatch(RoomAction::Chat(ChatLine { session: 0, name, text: text.to_owned() }));
}

/// Seals `media` for one session (`0`: the room) and sends it, when connected.
pub fn seal_to(inner: &Inner, media: &MediaPacket, to_session: u64) {
    if !inner.connected() {
        return;
    }
    let keyframe = media.frame_type == "key";
    if let Err(e) = inner.core.borrow_mut().seal_to(media, keyframe, to_session) {
        web_sys::console::error_1(&format!("sealing failed: {e}").into());
        return;
    }
    inner.flush();
}

/// Someone new will need a keyframe to start decoding.
pub fn request_keyframes(inner: &Inner) {
    let senders = inner.senders.borrow();
    if let Some(v) = &senders.video {
        v.request_keyframe();
    }
    if let Some((s, _)) = &senders.screen {
        s.request_keyframe();
    }
}

pub fn keyframe_requested(inner: &Inner, screen: bool) {
    let senders = inner.senders.borrow();
    if screen {
        if let Some((s, _)) = &senders.screen {
            s.request_keyframe();
        }
    } else if let Some(v) = &senders.video {
        v.request_keyframe();
    }
}

fn next_sequence(inner: &Inner, kind: MediaType) -> u64 {
    let (mut video, mut screen, mut audio) = inner.sequences.get();
    let n = match kind {
        MediaType::SCREEN => {
            screen += 1;
            screen
        }
        MediaType::AUDIO => {
            audio += 1;
            audio
        }
        _ => {
            video += 1;
            video
        }
    };
    inner.sequences.set((video, screen, audio));
    n
}

fn video_sink(weak: Weak<Inner>, kind: MediaType, codec: String) -> video_send::OnEncoded {
    Rc::new(move |frame: EncodedFrame| {
        let Some(inner) = weak.upgrade() else { return };
        if !inner.connected() {
            return;
        }
        let mut media = MediaPacket::new();
        media.media_type = kind.into();
        media.frame_type = if frame.key { "key" } else { "delta" }.into();
        media.timestamp = frame.timestamp;
        media.duration = frame.duration;
        let mut meta = VideoMetadata::new();
        meta.sequence = next_sequence(&inner, kind);
        meta.codec = codec.clone();
        (meta.width, meta.height) = (frame.width, frame.height);
        meta.capture_time_ms = frame.capture_ms;
        media.video_metadata = MessageField::some(meta);
        media.data = frame.data;
        seal_to(&inner, &media, 0);
    })
}

fn audio_sink(weak: Weak<Inner>) -> Rc<dyn Fn(EncodedAudio)> {
    Rc::new(move |audio: EncodedAudio| {
        let Some(inner) = weak.upgrade() else { return };
        if !inner.connected() {
            return;
        }
        let mut media = MediaPacket::new();
        media.media_type = MediaType::AUDIO.into();
        media.frame_type = "key".into();
        media.timestamp = audio.timestamp;
        media.duration = audio.duration;
        let mut meta = AudioMetadata::new();
        meta.audio_format = "opus".into();
        meta.audio_sample_rate = audio.sample_rate as f32;
        meta.audio_number_of_channels = audio.channels;
        meta.sequence = next_sequence(&inner, MediaType::AUDIO);
        media.audio_metadata = MessageField::some(meta);
        media.data = audio.data;
        seal_to(&inner, &media, 0);
    })
}

fn heartbeat(inner: &Inner) -> MediaPacket {
    let senders = inner.senders.borrow();
    let mut media = MediaPacket::new();
    media.media_type = MediaType::HEARTBEAT.into();
    media.timestamp = js::now_ms();
    let mut meta = HeartbeatMetadata::new();
    meta.audio_on = senders.audio_on;
    meta.video_on = senders.video_on;
    meta.screen_on = senders.screen.is_some();
    media.heartbeat_metadata = MessageField::some(meta);
    media
}

/// Our media state to the room page, and at once to the peers.
fn publish_local_state(inner: &Inner) {
    let (audio_on, video_on, screen_on) = {
        let s = inner.senders.borrow();
        (s.audio_on, s.video_on, s.screen.is_some())
    };
    inner.dispatch(RoomAction::LocalMedia { audio_on, video_on, screen_on });
    seal_to(inner, &heartbeat(inner), 0);
}

/// Once a second: a heartbeat, and the ladder moved by what peers report and our queue.
pub fn tick(inner: &Rc<Inner>) {
    seal_to(inner, &heartbeat(inner), 0);
    let worst_loss = inner.peers.borrow().values().map(|p| p.reported_loss).max().unwrap_or(0);
    let queued = inner.transport.borrow().as_ref().map_or(0.0, |t| t.queued_bytes());
    let mut senders = inner.senders.borrow_mut();
    let Some(ladder) = senders.ladder.as_mut() else { return };
    let changed = ladder.tick(worst_loss, queued);
    let (w, h, bitrate, fps) = ladder.rung();
    if changed {
        if let Some(video) = &senders.video {
            video.set_rung(w, h, bitrate, fps);
        }
    }
    let (width, height) = senders.video.as_ref().map_or((0, 0), VideoSender::size);
    let codec = senders.codec.clone();
    drop(senders);
    inner.dispatch(RoomAction::Sending { codec, bitrate_bps: bitrate, width, height });
}
