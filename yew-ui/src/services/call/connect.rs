//! One connection attempt, as the engine asks for it: a fresh room token (from the meeting's
//! join flow, or a guest token for an open room), then WebTransport, else WebSocket. The
//! answer, and then every packet and the close of that transport, go back to the call's task
//! tagged with the attempt's generation.

use std::rc::Rc;

use futures_channel::mpsc::UnboundedSender;
use videocall_client::call::Failure;

use super::driver::Msg;
use crate::services::api;
use crate::services::transport::{self, Incoming, Preference, Target};

/// What every attempt needs.
pub struct Params {
    pub room: String,
    pub meeting: Option<String>,
    pub display_name: String,
    pub preference: Preference,
    /// `ws://host` or `wss://host`: the page's own server.
    pub websocket_origin: String,
}

/// A room token and where to connect with it.
async fn target(params: &Params) -> Result<(api::Grant, Target), Failure> {
    // Both questions at once: each is a round trip on the join path.
    let (grant, webtransport) = futures_util::future::join(grant(params), api::webtransport_info()).await;
    let grant = grant?;
    let websocket_url = format!("{}{}", params.websocket_origin, grant.websocket_path);
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
    Ok((grant, Target { websocket_url, webtransport }))
}

/// A fresh token every time: one may have expired while we were away, and the relay treats a
/// reconnect as a new session anyway.
async fn grant(params: &Params) -> Result<api::Grant, Failure> {
    let Some(meeting) = &params.meeting else {
        return api::guest_token(&params.room, &params.display_name).await.map_err(Failure::Retry);
    };
    match api::meeting_token(meeting).await {
        Ok(view) => view.token.ok_or_else(|| Failure::Retry("waiting for the host".into())),
        Err(f) if matches!(f.status, 403 | 404 | 409 | 410) => Err(Failure::Final(f.message)),
        Err(f) => Err(Failure::Retry(f.message)),
    }
}

/// Attempt `generation`: its outcome, then its transport's packets and close, to `tx`.
pub async fn attempt(params: Rc<Params>, generation: u32, tx: UnboundedSender<Msg>) {
    let (grant, target) = match target(&params).await {
        Ok(t) => t,
        Err(failure) => {
            let _ = tx.unbounded_send(Msg::ConnectFailed { generation, failure });
            return;
        }
    };
    let incoming = tx.clone();
    let on_incoming = Rc::new(move |event| {
        let msg = match event {
            Incoming::Bytes(bytes) => Msg::Bytes { generation, bytes },
            Incoming::Closed { code, reason } => Msg::Closed { generation, code, reason },
        };
        let _ = incoming.unbounded_send(msg);
    });
    let msg = match transport::connect(params.preference, &target, on_incoming).await {
        Ok((transport, fallback)) => {
            if let Some(why) = fallback {
                web_sys::console::info_1(&format!("using WebSocket: {why}").into());
            }
            Msg::Connected { generation, transport, user: grant.user_id, room: grant.room }
        }
        Err(reason) => Msg::ConnectFailed { generation, failure: Failure::Retry(reason) },
    };
    let _ = tx.unbounded_send(msg);
}
