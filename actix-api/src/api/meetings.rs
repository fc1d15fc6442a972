//! Meetings and the join flow: create, look up, list mine; ask to join (password checked,
//! waiting room respected), collect the room token once admitted, leave.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use videocall_relay::RoomToken;
use videocall_store::{Meeting, NewMeeting, Participant, ParticipantState, User, UserKind};
use videocall_types::{DisplayName, RoomId, UserId};

use super::session::{self, UserView, internal_store};
use super::{ApiResult, TokenView, bad_request, issue_room_token, now_ms, password, random_id};
use crate::AppState;
use crate::error::ApiError;

/// Longest meeting name.
const MAX_NAME_CHARS: usize = 120;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
    #[serde(default)]
    password: Option<String>,
    /// Default: on. The host admits each participant.
    #[serde(default = "yes")]
    waiting_room: bool,
    /// Only users signed in through the identity provider may join (needs OIDC configured).
    #[serde(default)]
    signed_in_only: bool,
}

fn yes() -> bool {
    true
}

/// A meeting as callers see it; the password hash never leaves the server.
#[derive(Serialize)]
pub struct MeetingView {
    id: String,
    name: String,
    host_id: String,
    created_at: i64,
    ended_at: Option<i64>,
    has_password: bool,
    waiting_room: bool,
    signed_in_only: bool,
    /// True when the caller hosts it.
    you_are_host: bool,
    /// Where the web client opens it.
    link: String,
}

impl MeetingView {
    pub fn of(meeting: &Meeting, caller: Option<&User>) -> Self {
        Self {
            id: meeting.id.clone(),
            name: meeting.name.clone(),
            host_id: meeting.host_id.clone(),
            created_at: meeting.created_at,
            ended_at: meeting.ended_at,
            has_password: meeting.password_hash.is_some(),
            waiting_room: meeting.waiting_room,
            signed_in_only: meeting.signed_in_only,
            you_are_host: caller.is_some_and(|u| u.id == meeting.host_id),
            link: format!("/meeting/{}", meeting.id),
        }
    }
}

/// The meeting `id`, or 404 `meeting_not_found`.
pub async fn find(state: &AppState, id: &str) -> ApiResult<Meeting> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "meeting_not_found", format!("no meeting {id:?}"));
    if RoomId::parse(id).is_err() {
        return Err(not_found());
    }
    state.store.meeting(id).await.map_err(internal_store)?.ok_or_else(not_found)
}

pub fn ended(meeting: &Meeting) -> ApiError {
    ApiError::new(StatusCode::GONE, "meeting_ended", format!("the meeting {:?} has ended", meeting.name))
}

/// `POST /api/v1/meetings`
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CreateRequest>,
) -> ApiResult<HttpResponse> {
    let host = session::require(&req, &state).await?;
    state.limits.check_create_meeting(&req, &host.id)?;
    let name = body.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || !name.chars().all(videocall_types::ids::is_readable_char)
    {
        return Err(bad_request("bad_name", format!("a meeting name is 1 to {MAX_NAME_CHARS} printable characters")));
    }
    if body.signed_in_only && state.oidc.is_none() {
        return Err(bad_request("sign_in_unavailable", "signed-in-only meetings need sign-in (OIDC) configured"));
    }
    let password_hash = match body.password.as_deref().filter(|p| !p.is_empty()) {
        Some(p) if p.len() > password::MAX_PASSWORD_BYTES => {
            return Err(bad_request(
                "bad_password",
                format!("passwords are at most {} bytes", password::MAX_PASSWORD_BYTES),
            ));
        }
        Some(p) => Some(password::hash(p.to_owned()).await.map_err(|e| super::internal("password_hash", e))?),
        None => None,
    };
    let at = now_ms();
    let mut new = NewMeeting {
        id: String::new(),
        name: name.to_owned(),
        host_id: host.id.clone(),
        password_hash,
        waiting_room: body.waiting_room,
        signed_in_only: body.signed_in_only,
        created_at: at,
    };
    // 36^10 ids: a collision is rare, and then another is drawn.
    let meeting = loop {
        let id = random_id(10);
        new.id = format!("{}-{}-{}", &id[..3], &id[3..7], &id[7..]);
        match state.store.create_meeting(&new).await {
            Ok(meeting) => break meeting,
            Err(videocall_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(internal_store(e)),
        }
    };
    state
        .store
        .join(&meeting.id, &host.id, &host.display_name, ParticipantState::Admitted, at)
        .await
        .map_err(internal_store)?;
    tracing::info!(meeting = %meeting.id, host = %host.id, "meeting created");
    Ok(HttpResponse::Created().json(MeetingView::of(&meeting, Some(&host))))
}

/// `GET /api/v1/meetings`: the caller's meetings, newest first.
pub async fn list_mine(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let host = session::require(&req, &state).await?;
    let meetings = state.store.meetings_hosted_by(&host.id).await.map_err(internal_store)?;
    let views: Vec<MeetingView> = meetings.iter().map(|m| MeetingView::of(m, Some(&host))).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `GET /api/v1/meetings/{id}`
pub async fn get(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let meeting = find(&state, &id).await?;
    let caller = session::caller(&req, &state).await?;
    Ok(HttpResponse::Ok().json(MeetingView::of(&meeting, caller.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The name shown in this meeting; needed when the caller has no session yet.
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Where the caller stands, with the room token once they are in.
#[derive(Serialize)]
pub struct JoinView {
    state: &'static str,
    user: UserView,
    meeting: MeetingView,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenView>,
}

fn refused(participant: &Participant) -> Option<ApiError> {
    match participant.state {
        ParticipantState::Rejected => {
            Some(ApiError::new(StatusCode::FORBIDDEN, "rejected", "the host declined your request to join"))
        }
        ParticipantState::Removed => {
            Some(ApiError::new(StatusCode::FORBIDDEN, "removed", "the host removed you from this meeting"))
        }
        _ => None,
    }
}

fn token_for(state: &AppState, meeting: &Meeting, participant: &Participant) -> ApiResult<TokenView> {
    let grant = RoomToken {
        user: UserId::parse(&participant.user_id).map_err(|e| super::internal("user_id", e))?,
        room: RoomId::parse(&meeting.id).map_err(|e| super::internal("room_id", e))?,
        name: DisplayName::parse(&participant.display_name).map_err(|e| super::internal("display_name", e))?,
        expires_at: 0,
        id: RoomToken::fresh_id(),
        recorder: false,
    };
    issue_room_token(state, grant)
}

/// `POST /api/v1/meetings/{id}/join {display_name?, password?}`: 200 with a token when the
/// caller is in, 202 when they wait for the host. A caller without a session becomes a guest.
pub async fn join(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<JoinRequest>,
) -> ApiResult<HttpResponse> {
    state.limits.check_token(&req)?;
    let meeting = find(&state, &id).await?;
    if meeting.has_ended() {
        return Err(ended(&meeting));
    }
    let display_name = match body.display_name.as_deref() {
        Some(name) => Some(DisplayName::parse(name).map_err(|e| bad_request("bad_display_name", e))?.to_string()),
        None => None,
    };
    // A caller without a session becomes a guest, but only once every check has passed.
    let caller = session::caller(&req, &state).await?;
    if caller.is_none() && display_name.is_none() {
        return Err(bad_request("display_name_required", "give a display name, or sign in, to join"));
    }
    let is_host = caller.as_ref().is_some_and(|u| u.id == meeting.host_id);
    let signed_in = caller.as_ref().is_some_and(|u| u.kind == UserKind::SignedIn);
    if meeting.signed_in_only && !signed_in && !is_host {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "sign_in_required", "this meeting is for signed-in users"));
    }
    let existing = match &caller {
        Some(user) => state.store.participant(&meeting.id, &user.id).await.map_err(internal_store)?,
        None => None,
    };
    if let Some(error) = existing.as_ref().and_then(refused) {
        return Err(error);
    }
    let already_admitted = existing.as_ref().is_some_and(|p| p.state == ParticipantState::Admitted);
    if let (Some(hash), false) = (&meeting.password_hash, is_host || already_admitted) {
        state.limits.check_login(&req)?;
        let Some(given) = body.password.clone().filter(|p| !p.is_empty()) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "password_required", "this meeting has a password"));
        };
        // Guessing from many addresses at once still meets the meeting's own limit.
        state.limits.check_password(&meeting.id)?;
        if given.len() > password::MAX_PASSWORD_BYTES || !password::verify(given, hash.clone()).await {
            state.limits.wrong_password(&meeting.id);
            return Err(ApiError::new(StatusCode::FORBIDDEN, "wrong_password", "the meeting password is not right"));
        }
    }
    let (user, cookie) = match caller {
        Some(user) => (user, None),
        None => {
            let (user, cookie) = session::new_guest(&state, display_name.as_deref().unwrap_or_default()).await?;
            (user, Some(cookie))
        }
    };
    let wanted = if is_host || already_admitted || !meeting.waiting_room {
        ParticipantState::Admitted
    } else {
        ParticipantState::Waiting
    };
    let name = display_name.unwrap_or_else(|| user.display_name.clone());
    let participant = state.store.join(&meeting.id, &user.id, &name, wanted, now_ms()).await.map_err(internal_store)?;
    if let Some(error) = refused(&participant) {
        return Err(error);
    }
    tracing::info!(meeting = %meeting.id, user = %user.id, state = participant.state.as_str(), "asked to join");
    standing(&state, &meeting, &user, &participant, cookie)
}

/// 200 with a room token when the participant is admitted, 202 without one while they wait;
/// `cookie` is a new guest's session.
fn standing(
    state: &AppState,
    meeting: &Meeting,
    user: &User,
    participant: &Participant,
    cookie: Option<actix_web::cookie::Cookie<'static>>,
) -> ApiResult<HttpResponse> {
    let admitted = participant.state == ParticipantState::Admitted;
    let view = JoinView {
        state: participant.state.as_str(),
        user: UserView::from(user),
        meeting: MeetingView::of(meeting, Some(user)),
        token: if admitted { Some(token_for(state, meeting, participant)?) } else { None },
    };
    let mut response = if admitted { HttpResponse::Ok() } else { HttpResponse::Accepted() };
    if let Some(cookie) = cookie {
        response.cookie(cookie);
    }
    Ok(response.json(view))
}

/// The caller's participation in a meeting that goes on, or the error that says why not.
async fn participation(req: &HttpRequest, state: &AppState, id: &str) -> ApiResult<(Meeting, User, Participant)> {
    let user = session::require(req, state).await?;
    let meeting = find(state, id).await?;
    if meeting.has_ended() {
        return Err(ended(&meeting));
    }
    let participant = state.store.participant(&meeting.id, &user.id).await.map_err(internal_store)?;
    let participant = participant.filter(|p| p.state != ParticipantState::Left).ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "not_joined", "ask to join the meeting first (POST …/join)")
    })?;
    if let Some(error) = refused(&participant) {
        return Err(error);
    }
    Ok((meeting, user, participant))
}

/// `POST /api/v1/meetings/{id}/token`: 200 with a room token once admitted, 202 while waiting
/// (the waiting room polls this).
pub async fn token(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    state.limits.check_token(&req)?;
    let (meeting, user, participant) = participation(&req, &state, &id).await?;
    standing(&state, &meeting, &user, &participant, None)
}

/// `POST /api/v1/meetings/{id}/leave`
pub async fn leave(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let user = session::require(&req, &state).await?;
    let meeting = find(&state, &id).await?;
    state.store.leave(&meeting.id, &user.id, now_ms()).await.map_err(internal_store)?;
    Ok(HttpResponse::NoContent().finish())
}
