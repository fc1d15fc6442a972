//! The host's actions: see who asked to join, admit or reject them, mute or remove a
//! participant, end the meeting for everyone. Decisions go to the database first (so every
//! server refuses a removed participant's token from then on), then to the relays on the room
//! bus (so open connections close, on whichever relay they are).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use videocall_relay::Moderation;
use videocall_store::{Meeting, Participant, ParticipantState};
use videocall_types::{RoomId, UserId};

use super::meetings::{ended, find};
use super::session::{self, internal_store};
use super::{ApiResult, now_ms};
use crate::AppState;
use crate::error::ApiError;

/// The meeting, if the caller hosts it and it goes on.
pub(super) async fn hosted(req: &HttpRequest, state: &AppState, id: &str) -> ApiResult<Meeting> {
    let user = session::require(req, state).await?;
    let meeting = find(state, id).await?;
    if meeting.host_id != user.id {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_host", "only the host can do this"));
    }
    if meeting.has_ended() {
        return Err(ended(&meeting));
    }
    Ok(meeting)
}

/// Tells every relay; the decision is already recorded, so a failure here is worth a retry.
async fn moderate(state: &AppState, meeting: &Meeting, action: Moderation) -> ApiResult<()> {
    let room = RoomId::parse(&meeting.id).map_err(|e| super::internal("room_id", e))?;
    state.relay.moderate(&room, &action).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bus_unavailable",
            format!("recorded, but the relays could not be told ({e}); try again"),
        )
    })
}

/// How long a revocation must last: every room token issued before it has expired by then.
fn revocation_expiry(state: &AppState) -> i64 {
    let ttl_ms = i64::try_from(state.config.room_token_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    now_ms().saturating_add(ttl_ms)
}

#[derive(Serialize)]
struct ParticipantView {
    user_id: String,
    display_name: String,
    state: &'static str,
    joined_at: i64,
    decided_at: Option<i64>,
    left_at: Option<i64>,
    is_host: bool,
}

impl ParticipantView {
    fn of(p: &Participant, meeting: &Meeting) -> Self {
        Self {
            user_id: p.user_id.clone(),
            display_name: p.display_name.clone(),
            state: p.state.as_str(),
            joined_at: p.joined_at,
            decided_at: p.decided_at,
            left_at: p.left_at,
            is_host: p.user_id == meeting.host_id,
        }
    }
}

/// `GET /api/v1/meetings/{id}/participants`: everyone who asked to join, in order.
pub async fn participants(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let meeting = hosted(&req, &state, &id).await?;
    let list = state.store.participants(&meeting.id).await.map_err(internal_store)?;
    Ok(HttpResponse::Ok().json(list.iter().map(|p| ParticipantView::of(p, &meeting)).collect::<Vec<_>>()))
}

/// `POST /api/v1/meetings/{id}/participants/{user}/{admit|reject|mute|remove}`
pub async fn act(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, user, action) = path.into_inner();
    let meeting = hosted(&req, &state, &id).await?;
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "participant_not_found", format!("{user:?} has not asked to join"));
    let target = match UserId::parse(&user) {
        Ok(id) => id,
        Err(_) => return Err(not_found()),
    };
    let participant =
        state.store.participant(&meeting.id, &user).await.map_err(internal_store)?.ok_or_else(not_found)?;
    let at = now_ms();
    match action.as_str() {
        "admit" | "reject" => {
            let decided =
                state.store.decide(&meeting.id, &user, action == "admit", at).await.map_err(internal_store)?;
            let decided = decided.ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "not_waiting",
                    format!("{user:?} is not in the waiting room (they are {})", participant.state.as_str()),
                )
            })?;
            tracing::info!(meeting = %meeting.id, user, state = decided.state.as_str(), "host decided");
            Ok(HttpResponse::Ok().json(ParticipantView::of(&decided, &meeting)))
        }
        "mute" => {
            if participant.state != ParticipantState::Admitted {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_in_meeting",
                    format!("{user:?} is not in the meeting"),
                ));
            }
            moderate(&state, &meeting, Moderation::Mute(target)).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "remove" => {
            if user == meeting.host_id {
                return Err(super::bad_request(
                    "cannot_remove_host",
                    "the host cannot remove themself; end the meeting instead",
                ));
            }
            state.store.remove(&meeting.id, &user, at).await.map_err(internal_store)?;
            // Whoever was removed could come straight back as a new guest (a new session is a
            // click away): after a removal, the host admits each newcomer.
            if state.store.require_admission(&meeting.id).await.map_err(internal_store)? {
                tracing::info!(meeting = %meeting.id, "waiting room turned on after a removal");
            }
            state
                .store
                .revoke_participant(&meeting.id, &user, revocation_expiry(&state), at)
                .await
                .map_err(internal_store)?;
            moderate(&state, &meeting, Moderation::Remove(target)).await?;
            tracing::info!(meeting = %meeting.id, user, "host removed a participant");
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_action",
            format!("{action:?} is not a host action (admit, reject, mute, remove)"),
        )),
    }
}

/// `POST /api/v1/meetings/{id}/end`: ends the meeting for everyone.
pub async fn end(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let meeting = hosted(&req, &state, &id).await?;
    let at = now_ms();
    if !state.store.end_meeting(&meeting.id, at).await.map_err(internal_store)? {
        return Err(ended(&meeting));
    }
    state.store.revoke_meeting(&meeting.id, revocation_expiry(&state), at).await.map_err(internal_store)?;
    moderate(&state, &meeting, Moderation::End).await?;
    tracing::info!(meeting = %meeting.id, "meeting ended for everyone");
    Ok(HttpResponse::NoContent().finish())
}
