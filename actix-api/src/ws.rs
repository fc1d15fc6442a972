//! The WebSocket relay endpoint: `GET /lobby/{email}/{room}?token=…`.
//!
//! Refusals before the upgrade are HTTP errors with a JSON body; after it, protocol violations
//! close the connection with a close code and a reason:
//!
//! | what | result |
//! |---|---|
//! | room or user id invalid | 400 `bad_room_id` / `bad_user_id` |
//! | token missing, forged, malformed, expired | 401 `token_missing` / `token_invalid` / `token_expired` |
//! | token for another user or room | 403 `token_mismatch` |
//! | removed by the host, or the meeting ended | 403 `token_revoked` |
//! | the database does not answer the revocation check | 503 `revocation_check_failed` |
//! | room full | 409 `room_full` |
//! | bus unavailable | 503 `bus_unavailable` |
//! | text frame | close 1003 |
//! | malformed `PacketWrapper` | close 1007 |
//! | unknown or forbidden packet type | close 1008 |
//! | message over the size limit | close 1009 |
//! | replaced by a newer connection of the same user | close 4000 |
//! | nothing heard within the heartbeat timeout | close 4001 |
//! | too slow to receive control packets | close 4002 |
//! | removed by the host | close 4003 |
//! | the host ended the meeting for everyone | close 4004 |
//!
//! A packet's sender identity is always overwritten with the token's.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Item, ProtocolError};
use bytes::Bytes;
use serde::Deserialize;
use videocall_relay::relay::JoinFailure;
use videocall_relay::{RelayMetrics, RoomToken, SessionError, SessionHandle, auth};

use crate::AppState;
use crate::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/lobby/{email}/{room}", web::get().to(lobby));
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn refuse(metrics: &RelayMetrics, status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    metrics.refused(code);
    ApiError::new(status, code, message)
}

/// Checks ids and token; the path must name the token's user and room.
fn authorize(state: &AppState, path: &(String, String), query: &TokenQuery) -> Result<RoomToken, ApiError> {
    auth::authorize(&state.tokens, &path.0, &path.1, query.token.as_deref(), auth::unix_now()).map_err(|e| {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        refuse(state.relay.metrics(), status, e.code(), e.to_string())
    })
}

async fn lobby(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<(String, String)>,
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let grant = authorize(&state, &path, &query)?;
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let metrics = state.relay.metrics();
    let client = state.limits.client(&req);
    let handle = state.relay.join(&grant, client).await.map_err(|e| {
        let status = match e {
            JoinFailure::Revoked | JoinFailure::TokenUsed => StatusCode::FORBIDDEN,
            JoinFailure::Bus(_)
            | JoinFailure::RevocationCheck(_)
            | JoinFailure::TooManySessions { .. }
            | JoinFailure::TooManyRooms { .. } => StatusCode::SERVICE_UNAVAILABLE,
            JoinFailure::TooManyFromAddress { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::CONFLICT,
        };
        refuse(metrics, status, e.code(), e.to_string())
    })?;
    tracing::info!(room = %grant.room, user = %grant.user, session = %handle.id(), "joined");
    let max = state.config.relay.max_packet_bytes;
    let stream = stream.max_frame_size(max).aggregate_continuations().max_continuation_size(max);
    actix_web::rt::spawn(run_session(handle, session, stream, state.into_inner()));
    Ok(response)
}

/// A close frame, and the `sessions_closed` label it is counted under.
struct Ending {
    frame: CloseReason,
    label: &'static str,
}

fn close(code: u16, reason: impl Into<String>, label: &'static str) -> Ending {
    Ending { frame: CloseReason { code: CloseCode::from(code), description: Some(reason.into()) }, label }
}

impl From<SessionError> for Ending {
    fn from(e: SessionError) -> Self {
        close(e.close_code(), e.to_string(), e.reason())
    }
}

/// Largest WebSocket frame the writer hands to actix-ws. Its queue holds 32 messages whatever
/// their size, so a packet goes out in fragments of at most this many bytes (browsers and
/// WebSocket libraries reassemble them): a stalled receiver pins at most 32 × 16 KiB = 512 KiB
/// there, on top of its outbox (`OUTBOX_MAX_BYTES`), instead of 32 of the largest packets.
const WS_FRAGMENT_BYTES: usize = 16 * 1024;

/// Sends one packet as one WebSocket message, fragmented above [`WS_FRAGMENT_BYTES`]. Only the
/// writer sends data frames, so a message's fragments are never interleaved with another's.
async fn send_packet(session: &mut actix_ws::Session, packet: Bytes) -> Result<(), actix_ws::Closed> {
    if packet.len() <= WS_FRAGMENT_BYTES {
        return session.binary(packet).await;
    }
    session.continuation(Item::FirstBinary(packet.slice(..WS_FRAGMENT_BYTES))).await?;
    let mut at = WS_FRAGMENT_BYTES;
    while packet.len() - at > WS_FRAGMENT_BYTES {
        session.continuation(Item::Continue(packet.slice(at..at + WS_FRAGMENT_BYTES))).await?;
        at += WS_FRAGMENT_BYTES;
    }
    session.continuation(Item::Last(packet.slice(at..))).await
}

/// Moves packets both ways until the client or the relay ends the session.
async fn run_session(
    handle: SessionHandle,
    mut session: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
    state: std::sync::Arc<AppState>,
) {
    let metrics = state.relay.metrics().clone();
    let max = state.config.relay.max_packet_bytes;
    let mut ping = tokio::time::interval(state.config.relay.ping_interval());
    let mut writer_session = session.clone();
    let writer = async {
        let mut batch: Vec<Bytes> = Vec::new();
        loop {
            batch.clear();
            if let Err(reason) = handle.recv_batch(&mut batch).await {
                return Some(close(reason.close_code(), reason.as_str(), reason.as_str()));
            }
            for packet in batch.drain(..) {
                if send_packet(&mut writer_session, packet).await.is_err() {
                    return None;
                }
            }
        }
    };
    let reader = async {
        loop {
            tokio::select! {
                message = stream.recv() => match message {
                    None | Some(Ok(AggregatedMessage::Close(_))) => return None,
                    Some(Ok(AggregatedMessage::Binary(packet))) => {
                        if let Err(e) = handle.publish(&packet).await {
                            return Some(e.into());
                        }
                    }
                    Some(Ok(AggregatedMessage::Text(_))) => {
                        metrics.rejected("text_frame");
                        return Some(close(1003, "text frames are not accepted: send one binary PacketWrapper per message", "text_frame"));
                    }
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        handle.touch();
                        let _ = session.pong(&payload).await;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => handle.touch(),
                    Some(Err(e)) if is_oversized(&e) => {
                        metrics.rejected("oversized");
                        return Some(close(1009, format!("message exceeds the limit of {max} bytes"), "oversized"));
                    }
                    // The connection itself failed (reset, dropped): nobody to tell.
                    Some(Err(ProtocolError::Io(_))) => return None,
                    Some(Err(e)) => {
                        metrics.rejected("protocol_error");
                        return Some(close(1002, e.to_string(), "protocol_error"));
                    }
                },
                _ = ping.tick() => {
                    if session.ping(b"").await.is_err() {
                        return None;
                    }
                }
            }
        }
    };
    let ending = tokio::select! {
        ending = writer => ending,
        ending = reader => ending,
    };
    tracing::info!(
        room = %handle.room(),
        user = %handle.user(),
        session = %handle.id(),
        close = ?ending.as_ref().map(|e| (u16::from(e.frame.code), e.frame.description.clone())),
        "session ended"
    );
    // Sessions the relay ended are already counted with the relay's reason.
    handle.finish(ending.as_ref().map_or("left", |e| e.label));
    let _ = session.close(ending.map(|e| e.frame)).await;
}

/// A frame over the limit, or continuations adding up to more than it.
fn is_oversized(e: &ProtocolError) -> bool {
    match e {
        ProtocolError::Overflow => true,
        // actix-ws reports an over-long continuation as this I/O error.
        ProtocolError::Io(io) => io.to_string().contains("maximum continuation size"),
        _ => false,
    }
}
