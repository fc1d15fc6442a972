//! Figures: per-peer statistics to the room page once a second, and `window.videocallStats()`
//! as JSON for diagnostics and the browser tests. Times in them are on the page's clock.

use serde_json::json;

use videocall_client::call::VideoStream;

use super::driver::Driver;
use super::wire::ToPage;
use crate::services::js;
use crate::types::room::canvas_id;
use crate::types::stats::PeerStats;

/// RMS above this counts as speaking: well over the noise floor of a quiet room.
pub const SPEAKING_LEVEL: f32 = 0.02;

pub fn report(driver: &mut Driver) -> ToPage {
    let now = js::now_ms();
    let out = driver.audio_out.clone();
    let mut list = Vec::with_capacity(driver.peers.len());
    for (session, peer) in driver.peers.iter_mut() {
        let mut stats = PeerStats { codec: peer.codec.clone(), ..PeerStats::default() };
        if let Some(video) = &peer.video {
            let counters = video.counters();
            let c = counters.borrow();
            for _ in peer.frames_seen..c.frames {
                peer.rates.frame(now);
            }
            peer.frames_seen = c.frames;
            (stats.frames_decoded, stats.decode_errors, stats.width, stats.height) =
                (c.frames, c.errors, c.width, c.height);
        }
        if let Some(screen) = &peer.screen {
            stats.screen_frames = screen.counters().borrow().frames;
        }
        (stats.fps, stats.bitrate_bps) = peer.rates.rates(now);
        let playout = out.as_ref().map(|o| o.stats(*session)).unwrap_or_default();
        if let Some(audio) = &peer.audio {
            stats.audio_frames = audio.frames();
            stats.decode_errors += audio.errors();
        }
        stats.audio_played_ms = playout.played_ms;
        stats.audio_level = playout.level;
        if let Some(link) = driver.engine.link(*session) {
            (stats.rtt_ms, stats.dropped_packets) = (link.rtt_ms, link.dropped);
            stats.layer = link.layer(VideoStream::Camera);
        }
        list.push((*session, stats, playout.level > SPEAKING_LEVEL));
    }
    ToPage::Stats(list)
}

pub fn json(driver: &Driver) -> String {
    let core = driver.engine.core();
    let page = |ms: f64| ms + driver.page_offset_ms;
    let out = driver.audio_out.as_ref();
    let list: Vec<serde_json::Value> = core
        .peers()
        .iter()
        .map(|(session, peer)| {
            let media = driver.peers.get(session);
            let link = driver.engine.link(*session);
            let video = media.and_then(|m| m.video.as_ref()).map(|v| v.counters());
            let screen = media.and_then(|m| m.screen.as_ref()).map(|v| v.counters());
            let (frames, errors, width, height, latency, first) =
                video.as_ref().map_or((0, 0, 0, 0, vec![], None), |c| {
                    let c = c.borrow();
                    (
                        c.frames,
                        c.errors,
                        c.width,
                        c.height,
                        c.latency_ms.iter().copied().collect(),
                        c.first_frame_ms.map(page),
                    )
                });
            json!({
                "session": session,
                "user": peer.user,
                "name": peer.display_name,
                "fingerprint": peer.identity.as_ref().map(|k| k.fingerprint().to_string()),
                "key_changed": peer.changed.as_ref().map(|k| k.fingerprint().to_string()),
                "key_id": core.peer_key_id(*session),
                "frames_decoded": frames,
                "frames_drawn": driver.frames.drawn(&canvas_id(VideoStream::Camera, *session)),
                "decode_errors": errors,
                "width": width,
                "height": height,
                "screen_frames": screen.map_or(0, |c| c.borrow().frames),
                "audio_frames": media.and_then(|m| m.audio.as_ref()).map_or(0, |a| a.frames()),
                "audio_played_ms": out.map_or(0.0, |o| o.stats(*session).played_ms),
                "rtt_ms": link.and_then(|l| l.rtt_ms),
                "dropped": link.map_or(0, |l| l.dropped),
                "layer": link.and_then(|l| l.layer(VideoStream::Camera)),
                "latency_ms": latency,
                "first_frame_ms": first,
                "key_at_ms": link.and_then(|l| l.key_at).map(|t| page(t as f64)),
                "arrival_ms": media.map(|m| m.arrival_ms.iter().copied().collect::<Vec<_>>()),
            })
        })
        .collect();
    json!({
        "transport": driver.transport.as_ref().map(|t| t.kind.label()),
        "key_id": core.key_id(),
        "fingerprint": core.fingerprint().to_string(),
        "session": core.session(),
        "safety_code": core.safety_code().to_string(),
        "refused": core.refused(),
        "dropped": driver.engine.dropped(),
        "before_key": driver.engine.before_key(),
        "joined_at_ms": driver.joined_at_ms,
        "connected_at_ms": driver.connected_at_ms,
        "codec": driver.codec.clone().unwrap_or_default(),
        "frames_dropped_at_capture": driver.camera.as_ref().map_or(0, |v| v.dropped()),
        "encode_ms": driver.camera.as_ref().map(|v| v.encode_ms()),
        "sending_layers": driver.camera.as_ref().map(|v| {
            let (active, count) = v.layers();
            json!({ "count": count, "active": active })
        }),
        "audio_running": out.is_some_and(|o| o.running()),
        "peers": list,
    })
    .to_string()
}
