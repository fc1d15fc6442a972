//! Kiosk links: `/room/{room}?kiosk={token}` joins as soon as the page is ready, with camera
//! and microphone on and no click — for a meeting-room screen or a lobby camera. Any other link
//! waits for the person to press "Join": a link someone sends must not be able to publish their
//! camera into a room.
//!
//! Only whoever holds the token secret (the operator) can issue them:
//! `actix-api --issue-kiosk-token ROOM`. The page asks `GET /api/v1/kiosk/{room}?token=…`,
//! which answers 200 for a token issued for that room and not expired, 403 otherwise.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use videocall_relay::TokenKey;
use videocall_relay::auth::unix_now;
use videocall_types::RoomId;

use super::signed::{Expiring, SignedClaims};
use super::{ApiResult, bad_request};
use crate::AppState;
use crate::error::ApiError;

const PURPOSE: &str = "kiosk link";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    room: String,
    exp: u64,
    iat: u64,
}

impl Expiring for Claims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// A kiosk token for `room`, valid until `expires_at` (seconds since the Unix epoch).
pub fn issue(tokens: &TokenKey, room: &RoomId, expires_at: u64, now: u64) -> Result<String, ApiError> {
    SignedClaims::new(tokens, PURPOSE).sign(&Claims { room: room.to_string(), exp: expires_at, iat: now })
}

/// When `token` is a kiosk token for `room` that has not expired by `now`: its expiry.
pub fn verify(tokens: &TokenKey, token: &str, room: &RoomId, now: u64) -> Option<u64> {
    let claims: Claims = SignedClaims::new(tokens, PURPOSE).read(token, now)?;
    (claims.room == room.as_str()).then_some(claims.exp)
}

#[derive(Deserialize)]
pub struct KioskQuery {
    token: String,
}

#[derive(Serialize)]
struct KioskView {
    room: String,
    expires_at: u64,
}

/// `GET /api/v1/kiosk/{room}?token=…`
pub async fn check(
    state: web::Data<AppState>,
    room: web::Path<String>,
    query: web::Query<KioskQuery>,
) -> ApiResult<HttpResponse> {
    let room = RoomId::parse(&room).map_err(|e| bad_request("invalid_room", e))?;
    match verify(&state.tokens, &query.token, &room, unix_now()) {
        Some(expires_at) => Ok(HttpResponse::Ok().json(KioskView { room: room.to_string(), expires_at })),
        None => Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "kiosk_token_invalid",
            "this link does not join by itself: press Join",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_kiosk_token_opens_its_room_until_it_expires_and_nothing_else() {
        let tokens = TokenKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let room = RoomId::parse("lobby-screen").unwrap();
        let token = issue(&tokens, &room, NOW + 60, NOW).unwrap();
        assert_eq!(verify(&tokens, &token, &room, NOW), Some(NOW + 60));
        assert_eq!(verify(&tokens, &token, &room, NOW + 60), None);
        assert_eq!(verify(&tokens, &token, &RoomId::parse("other").unwrap(), NOW), None);
        let other = TokenKey::from_secret(b"another secret, also long enough!!").unwrap();
        assert_eq!(verify(&other, &token, &room, NOW), None);
        // A session cookie or room token signed with the same secret is no kiosk token.
        let room_token = tokens
            .issue(
                &videocall_relay::RoomToken {
                    user: videocall_types::UserId::parse("a@b").unwrap(),
                    room: room.clone(),
                    name: videocall_types::DisplayName::parse("A").unwrap(),
                    expires_at: NOW + 60,
                    id: videocall_relay::RoomToken::fresh_id(),
                    recorder: false,
                },
                NOW,
            )
            .unwrap();
        assert_eq!(verify(&tokens, &room_token, &room, NOW), None);
    }
}
