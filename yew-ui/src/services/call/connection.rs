//! Getting a token, connecting (WebTransport first, WebSocket when it fails), and reconnecting
//! with backoff after a drop. After a reconnect the relay gives us a new session: the core
//! forgets everyone, moves to a new media key and announces itself again.

use std::rc::{Rc, Weak};

use videocall_types::CloseReason;
use wasm_bindgen_futures::spawn_local;

use super::Inner;
use crate::services::transport::{self, Incoming, Target};
use crate::services::{api, js};
use crate::types::room::{Connection, RoomAction};

/// Why there is no connection target.
enum NoTarget {
    /// Worth another try after a pause (the network, the server restarting).
    Retry(String),
    /// Over: removed, rejected, the meeting ended.
    Final(String),
}
/// Backoff after a drop: 0.5 s doubling to 8 s, then every 8 s.
const BACKOFF_MS: [u32; 5] = [500, 1_000, 2_000, 4_000, 8_000];

pub fn start(inner: Rc<Inner>) {
    spawn_local(async move {
        connect(&inner).await;
    });
}

/// A room token: from the meeting's join flow, or a guest token for an open room.
async fn grant(inner: &Rc<Inner>) -> Result<api::Grant, NoTarget> {
    let Some(meeting) = &inner.meeting else {
        return api::guest_token(&inner.room, &inner.display_name).await.map_err(NoTarget::Retry);
    };
    match api::meeting_token(meeting).await {
        Ok(view) => view.token.ok_or_else(|| NoTarget::Retry("waiting for the host".into())),
        Err(f) if matches!(f.status, 403 | 404 | 409 | 410) => Err(NoTarget::Final(f.message)),
        Err(f) => Err(NoTarget::Retry(f.message)),
    }
}

/// Where to connect: a fresh token every time (a token may have expired while we were away;
/// the relay treats a reconnect as a new session anyway).
async fn target(inner: &Rc<Inner>) -> Result<Target, NoTarget> {
    // Both questions at once: each is a round trip on the join path.
    let (grant, webtransport) = futures_util::future::join(grant(inner), api::webtransport_info()).await;
    let grant = grant?;
    let retry = |e: String| NoTarget::Retry(e);
    // Sealed frames bind the user id the relay will stamp (this token's), signatures the room.
    inner.core.borrow_mut().restart(&grant.user_id, &grant.room);
    super::incoming::drain_events(inner);
    let location = js::window().map_err(|e| retry(js::describe(&e)))?.location();
    let scheme = if location.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
    let host = location.host().unwrap_or_default();
    let websocket_url = format!("{scheme}://{host}{}", grant.websocket_path);
    let webtransport = match webtransport {
        Ok(Some(info)) => {
            let hashes = info
                .certificate_hashes
                .iter()
                .filter(|h| h.algorithm == "sha-256")
                .filter_map(|h| api::hex_bytes(&h.value))
                .collect();
            let url = format!("{}lobby/{}/{}?token={}", info.url, grant.user_id, grant.room, grant.token);
            Some((url, hashes))
        }
        _ => None,
    };
    Ok(Target { websocket_url, webtransport })
}

async fn connect(inner: &Rc<Inner>) {
    loop {
        if inner.left.get() {
            return;
        }
        let attempt = inner.attempts.get();
        inner.dispatch(RoomAction::Connection(Connection::Connecting { attempt }));
        let generation = inner.generation.get().wrapping_add(1);
        inner.generation.set(generation);
        let weak = Rc::downgrade(inner);
        let on_incoming = Rc::new(move |incoming| on_incoming(&weak, generation, incoming));
        let result = match target(inner).await {
            Ok(target) => {
                *inner.target.borrow_mut() = Some(target.clone());
                transport::connect(inner.preference, &target, on_incoming).await
            }
            Err(NoTarget::Retry(e)) => Err(e),
            Err(NoTarget::Final(reason)) => {
                inner.dispatch(RoomAction::Connection(Connection::Closed { reason }));
                return;
            }
        };
        if inner.left.get() {
            return;
        }
        match result {
            Ok((transport, fallback)) => {
                if let Some(why) = fallback {
                    web_sys::console::info_1(&format!("using WebSocket: {why}").into());
                }
                let kind = transport.kind;
                *inner.transport.borrow_mut() = Some(transport);
                inner.attempts.set(0);
                inner.connected_at_ms.set(js::now_ms());
                js::mark("videocall:connected");
                inner.dispatch(RoomAction::Connection(Connection::Connected { transport: kind }));
                inner.flush();
                return;
            }
            Err(reason) => {
                if !backoff(inner, reason).await {
                    return;
                }
            }
        }
    }
}

/// Waits before the next attempt; false when we should stop.
async fn backoff(inner: &Rc<Inner>, reason: String) -> bool {
    let attempt = inner.attempts.get() + 1;
    inner.attempts.set(attempt);
    let delay_ms = BACKOFF_MS[(attempt as usize - 1).min(BACKOFF_MS.len() - 1)];
    inner.dispatch(RoomAction::Connection(Connection::Reconnecting { attempt, delay_ms, reason }));
    js::sleep(delay_ms as i32).await;
    !inner.left.get()
}

fn on_incoming(weak: &Weak<Inner>, generation: u32, incoming: Incoming) {
    let Some(inner) = weak.upgrade() else { return };
    if inner.generation.get() != generation || inner.left.get() {
        return;
    }
    match incoming {
        Incoming::Packet(packet) => {
            inner.core.borrow_mut().handle_packet(js::now_ms() as u64, packet);
            inner.pump();
        }
        Incoming::Closed { code, reason } => {
            inner.transport.borrow_mut().take();
            // Replaced by a newer session of ours, removed, the meeting ended: the decision
            // stands, no reconnecting.
            let final_reason =
                u16::try_from(code).ok().and_then(CloseReason::from_code).filter(|r| r.is_final()).map(|r| match r {
                    CloseReason::Replaced => "This room was opened in another tab",
                    CloseReason::Removed => "The host removed you from this meeting",
                    CloseReason::Ended => "The host ended the meeting for everyone",
                    other => other.as_str(),
                });
            if let Some(reason) = final_reason {
                inner.dispatch(RoomAction::Connection(Connection::Closed { reason: reason.into() }));
                return;
            }
            let reason = if reason.is_empty() { format!("connection lost (code {code})") } else { reason };
            // New session after the reconnect: forget peers, new key, announce again.
            let (user, room) = {
                let core = inner.core.borrow();
                (core.user().to_owned(), core.room().to_owned())
            };
            inner.core.borrow_mut().restart(&user, &room);
            super::incoming::drain_events(&inner);
            spawn_local(async move {
                if backoff(&inner, reason).await {
                    connect(&inner).await;
                }
            });
        }
    }
}
