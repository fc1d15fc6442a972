//! The REST API under `/api/v1`: sessions (guests and signed-in users), meetings, the join flow
//! that issues room tokens, and the host's actions. Errors are JSON `{code, message}`.
//!
//! | endpoint | who | what |
//! |---|---|---|
//! | `GET /api/v1/session` | anyone | the caller, and whether sign-in is offered |
//! | `POST /api/v1/session` | anyone | a guest session (display name only); rate-limited |
//! | `DELETE /api/v1/session` | anyone | sign out |
//! | `POST /api/v1/meetings` | signed in or guest | create a meeting |
//! | `GET /api/v1/meetings` | signed in or guest | the meetings I host |
//! | `GET /api/v1/meetings/{id}` | anyone | a meeting's public view |
//! | `POST /api/v1/meetings/{id}/join` | anyone | ask to join (password, waiting room); rate-limited |
//! | `POST /api/v1/meetings/{id}/token` | a participant | a room token once admitted; rate-limited |
//! | `POST /api/v1/meetings/{id}/leave` | a participant | record leaving |
//! | `POST /api/v1/meetings/{id}/end` | the host | end the meeting for everyone |
//! | `GET /api/v1/meetings/{id}/participants` | the host | everyone who asked to join |
//! | `POST /api/v1/meetings/{id}/participants/{user}/{admit,reject,mute,remove}` | the host | host actions |
//! | `GET /api/v1/kiosk/{room}?token=…` | anyone | whether a kiosk link joins by itself |

mod host;
pub mod kiosk;
mod meetings;
pub mod password;
pub mod ratelimit;
pub mod recording;
pub mod session;
pub mod signed;

use actix_web::http::StatusCode;
use actix_web::web;
use serde::Serialize;
use videocall_relay::{RoomToken, auth};

use crate::AppState;
use crate::error::ApiError;

pub type ApiResult<T> = Result<T, ApiError>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Plain routes, not a scope: a scope would answer 404 for the other /api/v1 routes.
    cfg.route("/api/v1/session", web::get().to(session::get))
        .route("/api/v1/session", web::post().to(session::post))
        .route("/api/v1/session", web::delete().to(session::delete))
        .route("/api/v1/meetings", web::post().to(meetings::create))
        .route("/api/v1/meetings", web::get().to(meetings::list_mine))
        .route("/api/v1/meetings/{id}", web::get().to(meetings::get))
        .route("/api/v1/meetings/{id}/join", web::post().to(meetings::join))
        .route("/api/v1/meetings/{id}/token", web::post().to(meetings::token))
        .route("/api/v1/meetings/{id}/leave", web::post().to(meetings::leave))
        .route("/api/v1/meetings/{id}/end", web::post().to(host::end))
        .route("/api/v1/meetings/{id}/participants", web::get().to(host::participants))
        // Before `{action}`: a matching path does not fall through to a later route.
        .route("/api/v1/meetings/{id}/participants/{user}/snapshot", web::get().to(recording::snapshot))
        .route("/api/v1/meetings/{id}/participants/{user}/{action}", web::post().to(host::act))
        .route("/api/v1/meetings/{id}/recording", web::post().to(recording::start))
        .route("/api/v1/meetings/{id}/recording", web::get().to(recording::status))
        .route("/api/v1/meetings/{id}/recording", web::delete().to(recording::stop))
        .route("/api/v1/meetings/{id}/recordings", web::get().to(recording::list))
        .route("/api/v1/recordings/{id}/{file}", web::get().to(recording::download))
        .route("/api/v1/kiosk/{room}", web::get().to(kiosk::check));
}

/// Milliseconds since the Unix epoch, as the store records times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `len` random characters from `a-z0-9`.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

pub fn bad_request(code: &'static str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
}

pub fn internal(code: &'static str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(code, error = %e, "internal error");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, e.to_string())
}

/// A room token and where to use it.
#[derive(Serialize)]
pub struct TokenView {
    pub token: String,
    pub user_id: String,
    pub room: String,
    pub display_name: String,
    pub expires_at: u64,
    /// Path of the WebSocket endpoint for this token, query included.
    pub websocket_path: String,
}

/// Signs a room token valid for the configured lifetime.
pub fn issue_room_token(state: &AppState, mut grant: RoomToken) -> ApiResult<TokenView> {
    let now = auth::unix_now();
    grant.expires_at = now + state.config.room_token_ttl_secs;
    let token = state.tokens.issue(&grant, now).map_err(|e| internal("token", e))?;
    Ok(TokenView {
        websocket_path: format!("/lobby/{}/{}?token={token}", grant.user, grant.room),
        token,
        user_id: grant.user.to_string(),
        room: grant.room.to_string(),
        display_name: grant.name.to_string(),
        expires_at: grant.expires_at,
    })
}
