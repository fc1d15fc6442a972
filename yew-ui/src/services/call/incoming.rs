//! What the core tells us: peers coming and going, their keys, and the media it opened.

use std::rc::Rc;

use videocall_client::crypto::OpenError;
use videocall_client::messages;
use videocall_client::packets::PacketError;
use videocall_client::peers::Event;
use videocall_types::{MediaPacket, MediaType};

use super::Inner;
use crate::services::js;
use crate::services::media::audio_recv::AudioReceiver;
use crate::services::media::video_recv::{Decoded, VideoReceiver};
use crate::types::room::{ChatLine, RoomAction};
use crate::types::stats::{RateWindow, SequenceLoss};

/// At most one keyframe request per peer and stream this often: the answer needs a round trip.
const KEYFRAME_REQUEST_INTERVAL_MS: f64 = 1_000.0;

/// One peer's receivers and what we measure about it.
#[derive(Default)]
pub struct PeerMedia {
    pub video: Option<VideoReceiver>,
    pub screen: Option<VideoReceiver>,
    pub audio: Option<AudioReceiver>,
    pub codec: String,
    pub rates: RateWindow,
    pub frames_seen: u64,
    pub loss: SequenceLoss,
    last_video_sequence: Option<u64>,
    last_screen_sequence: Option<u64>,
    last_key_request: [f64; 2],
    pub rtt_ms: Option<f64>,
    /// `performance.now()` when their first media key arrived.
    pub key_at_ms: Option<f64>,
    /// Capture (their clock) to arrival here (ours), milliseconds, the latest camera frames.
    pub arrival_ms: std::collections::VecDeque<f64>,
    /// What this peer said about our video: lost per thousand.
    pub reported_loss: u32,
    pub dropped: u64,
}

pub fn drain_events(inner: &Rc<Inner>) {
    // Whether who is shown, or with which key, changed: the safety code follows.
    let mut people_changed = false;
    loop {
        let Some(event) = inner.core.borrow_mut().poll_event() else { break };
        if matches!(event, Event::Welcomed { .. } | Event::PeerKey { .. } | Event::Left { .. }) {
            people_changed = true;
        }
        match event {
            Event::Welcomed { .. } => {}
            Event::Joined { session } => {
                let (user, display_name, recorder) = inner
                    .core
                    .borrow()
                    .peers()
                    .get(&session)
                    .map(|p| (p.user.clone(), p.display_name.clone(), p.recorder))
                    .unwrap_or_default();
                inner.dispatch(RoomAction::Joined { session, user, display_name, recorder });
            }
            Event::Left { session } => {
                inner.peers.borrow_mut().remove(&session);
                if let Some(out) = inner.audio_out.borrow().as_ref() {
                    out.forget(session);
                }
                inner.dispatch(RoomAction::Left { session });
            }
            Event::PeerKey { session, fingerprint } => {
                inner.dispatch(RoomAction::PeerKey { session, fingerprint: fingerprint.to_string() });
                // They are about to get our media key: a keyframe lets them start at once.
                super::outgoing::request_keyframes(inner);
            }
            Event::KeyChanged { session, fingerprint } => {
                let name =
                    inner.core.borrow().peers().get(&session).map(|p| p.display_name.clone()).unwrap_or_default();
                inner.dispatch(RoomAction::KeyChanged { session, fingerprint: fingerprint.to_string() });
                inner.dispatch(RoomAction::Notice(format!(
                    "{name}'s key changed: compare fingerprints again before accepting it"
                )));
            }
            Event::MediaKey { session, key_id } => {
                inner.peers.borrow_mut().entry(session).or_default().key_at_ms.get_or_insert_with(js::now_ms);
                inner.dispatch(RoomAction::PeerMediaKey { session, key_id });
            }
            Event::Rotated { key_id } => inner.dispatch(RoomAction::OwnKey { key_id }),
            Event::MutedByHost => {
                super::outgoing::set_audio(inner, false);
                inner.dispatch(RoomAction::Notice("The host muted your microphone".into()));
            }
            Event::Media { session, media, .. } => on_media(inner, session, media),
            Event::Dropped { session, error: PacketError::Open(OpenError::UnknownKey { .. }) } => {
                // Sealed before their key reached us (they had not met us yet): expected while
                // joining, and no sign of an attack.
                inner.before_key.set(inner.before_key.get() + 1);
                let _ = session;
            }
            Event::Dropped { session, error: PacketError::Refused(refusal) } => {
                let counts = inner.core.borrow().refused().clone();
                inner.dispatch(RoomAction::Refused(counts));
                web_sys::console::warn_1(&format!("refused a key packet from session {session}: {refusal}").into());
            }
            Event::Dropped { session, error } => {
                inner.dropped.set(inner.dropped.get() + 1);
                if let Some(peer) = inner.peers.borrow_mut().get_mut(&session) {
                    peer.dropped += 1;
                }
                web_sys::console::debug_1(&format!("dropped a packet from {session}: {error}").into());
            }
        }
    }
    if people_changed {
        let code = inner.core.borrow().safety_code().to_string();
        inner.dispatch(RoomAction::SafetyCode(code));
    }
}

fn on_media(inner: &Rc<Inner>, session: u64, media: MediaPacket) {
    let kind = media.media_type.enum_value_or(MediaType::VIDEO);
    match kind {
        MediaType::VIDEO | MediaType::SCREEN => on_video(inner, session, kind == MediaType::SCREEN, &media),
        MediaType::AUDIO => on_audio(inner, session, &media),
        MediaType::HEARTBEAT => on_heartbeat(inner, session, &media),
        MediaType::CHAT => {
            let text = String::from_utf8_lossy(&media.data).chars().take(4_000).collect::<String>();
            let name = inner.core.borrow().peers().get(&session).map(|p| p.display_name.clone()).unwrap_or_default();
            inner.dispatch(RoomAction::Chat(ChatLine { session, name, text }));
        }
        MediaType::KEYFRAME_REQUEST => super::outgoing::keyframe_requested(inner, media.frame_type == "screen"),
    }
}

fn on_video(inner: &Rc<Inner>, session: u64, screen: bool, media: &MediaPacket) {
    let Some(meta) = media.video_metadata.as_ref() else { return };
    let mut peers = inner.peers.borrow_mut();
    let peer = peers.entry(session).or_default();
    let now = js::now_ms();
    let last = if screen { &mut peer.last_screen_sequence } else { &mut peer.last_video_sequence };
    let gap = last.is_some_and(|l| meta.sequence > l + 1);
    *last = Some(meta.sequence);
    let slot = if screen { &mut peer.screen } else { &mut peer.video };
    if slot.is_none() {
        let canvas = format!("{}-{session}", if screen { "screen" } else { "video" });
        *slot = VideoReceiver::new(canvas).ok();
    }
    let Some(receiver) = slot.as_mut() else { return };
    if gap {
        receiver.lost_frames();
    }
    let key = media.frame_type == "key";
    let decoded = receiver.decode(&meta.codec, key, &media.data, media.timestamp, meta.capture_time_ms);
    if !screen {
        if meta.capture_time_ms > 0.0 {
            peer.arrival_ms.push_back(js::wall_ms() - meta.capture_time_ms);
            if peer.arrival_ms.len() > 300 {
                peer.arrival_ms.pop_front();
            }
        }
        peer.loss.receive(meta.sequence);
        peer.rates.bytes(now, media.data.len());
        peer.codec = meta.codec.clone();
    }
    let index = usize::from(screen);
    if decoded == Decoded::NeedKeyframe && now - peer.last_key_request[index] > KEYFRAME_REQUEST_INTERVAL_MS {
        peer.last_key_request[index] = now;
        drop(peers);
        super::outgoing::seal_to(inner, &messages::keyframe_request(screen), session);
    }
}

fn on_audio(inner: &Rc<Inner>, session: u64, media: &MediaPacket) {
    let Some(out) = inner.audio_out.borrow().clone() else { return };
    let mut peers = inner.peers.borrow_mut();
    let peer = peers.entry(session).or_default();
    if peer.audio.is_none() {
        peer.audio = AudioReceiver::new(session, out).ok();
    }
    let (rate, channels) =
        media.audio_metadata.as_ref().map_or((48_000, 1), |m| (m.audio_sample_rate as u32, m.audio_number_of_channels));
    if let Some(receiver) = peer.audio.as_mut() {
        receiver.decode(&media.data, media.timestamp, rate, channels);
    }
}

/// A heartbeat to the room tells us their media state; we answer it so they learn the round
/// trip and how much of their video we lost. An answer tells us ours.
fn on_heartbeat(inner: &Rc<Inner>, session: u64, media: &MediaPacket) {
    let Some(beat) = media.heartbeat_metadata.as_ref() else { return };
    if beat.echo_timestamp > 0.0 {
        if let Some(peer) = inner.peers.borrow_mut().get_mut(&session) {
            peer.rtt_ms = Some(js::now_ms() - beat.echo_timestamp);
            peer.reported_loss = beat.loss_permille;
        }
        return;
    }
    inner.dispatch(RoomAction::PeerMedia {
        session,
        audio_on: beat.audio_on,
        video_on: beat.video_on,
        screen_on: beat.screen_on,
    });
    let loss_permille = {
        let mut peers = inner.peers.borrow_mut();
        let peer = peers.entry(session).or_default();
        if !beat.screen_on {
            peer.screen = None;
            peer.last_screen_sequence = None;
        }
        peer.loss.take_permille()
    };
    if let Some(answer) = messages::heartbeat_answer(media, loss_permille) {
        super::outgoing::seal_to(inner, &answer, session);
    }
}
