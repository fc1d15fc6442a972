//! Who is calling: a session cookie, set when a guest gives a display name or a user signs in
//! through OpenID Connect. The cookie holds a JWT (HS256, under a key derived from the token
//! secret, so every server of a deployment reads it and no room token passes for one) naming
//! the user and the session; signing out revokes the session in the database.
//!
//! The cookie is `HttpOnly` (no script reads it), `Secure` (browsers treat http://localhost as
//! secure, so development works) and `SameSite=Lax` (no cross-site POST carries it).

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use videocall_relay::TokenKey;
use videocall_relay::auth::unix_now;
use videocall_store::{User, UserKind};
use videocall_types::DisplayName;

use super::signed::{Expiring, SignedClaims};
use super::{ApiResult, now_ms, random_id};
use crate::AppState;
use crate::error::ApiError;

pub const COOKIE: &str = "videocall_session";

/// Signs and reads session cookies.
#[derive(Clone)]
pub struct SessionKey {
    signed: SignedClaims,
    pub ttl_secs: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id.
    sub: String,
    /// The session id, revoked on sign-out.
    sid: String,
    exp: u64,
    iat: u64,
}

impl Expiring for Claims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

impl SessionKey {
    pub fn new(tokens: &TokenKey, ttl_secs: u64) -> Self {
        Self { signed: SignedClaims::new(tokens, "session cookie"), ttl_secs }
    }

    fn issue(&self, user: &str, now: u64) -> Result<String, ApiError> {
        self.signed.sign(&Claims { sub: user.to_owned(), sid: random_id(16), exp: now + self.ttl_secs, iat: now })
    }

    /// The claims of a cookie that is ours and current; `None` otherwise.
    fn read(&self, cookie: &str, now: u64) -> Option<Claims> {
        self.signed.read(cookie, now)
    }
}

fn session_cookie(value: String, max_age_secs: i64) -> Cookie<'static> {
    secure_cookie(COOKIE, value, "/", max_age_secs)
}

/// `HttpOnly`, `Secure`, `SameSite=Lax`: what every cookie of this server is. An empty value
/// with `max_age_secs` 0 clears it.
pub fn secure_cookie(name: &'static str, value: String, path: &'static str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

/// The signed-in or guest user behind the request's cookie, if any. A cookie that is forged,
/// expired, signed out or for a user the database does not know counts as none.
pub async fn caller(req: &HttpRequest, state: &AppState) -> ApiResult<Option<User>> {
    Ok(match current(req, state).await? {
        Some((user, _)) => Some(user),
        None => None,
    })
}

async fn current(req: &HttpRequest, state: &AppState) -> ApiResult<Option<(User, Claims)>> {
    let Some(cookie) = req.cookie(COOKIE) else { return Ok(None) };
    let Some(claims) = state.sessions.read(cookie.value(), unix_now()) else { return Ok(None) };
    if state.store.is_revoked(&format!("session:{}", claims.sid)).await.map_err(internal_store)? {
        return Ok(None);
    }
    Ok(state.store.user(&claims.sub).await.map_err(internal_store)?.map(|user| (user, claims)))
}

/// The caller, or 401 `not_signed_in`.
pub async fn require(req: &HttpRequest, state: &AppState) -> ApiResult<User> {
    caller(req, state)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "not_signed_in", "sign in or give a display name first"))
}

pub fn internal_store(e: videocall_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "database error");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database did not answer; try again")
}

/// A new session for `user`, as a cookie for the response.
pub fn start(state: &AppState, user: &str) -> ApiResult<Cookie<'static>> {
    let jwt = state.sessions.issue(user, unix_now())?;
    Ok(session_cookie(jwt, state.sessions.ttl_secs as i64))
}

#[derive(Serialize)]
pub struct UserView {
    pub id: String,
    pub display_name: String,
    pub kind: &'static str,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self { id: user.id.clone(), display_name: user.display_name.clone(), kind: user.kind.as_str() }
    }
}

#[derive(Serialize)]
struct SessionView {
    user: Option<UserView>,
    /// Whether "Sign in" (OpenID Connect) is offered.
    sign_in_available: bool,
}

/// `GET /api/v1/session`: who the cookie says the caller is, and whether sign-in is offered.
pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let user = caller(&req, &state).await?;
    Ok(HttpResponse::Ok()
        .json(SessionView { user: user.as_ref().map(UserView::from), sign_in_available: state.oidc.is_some() }))
}

#[derive(Deserialize)]
pub struct GuestRequest {
    display_name: String,
}

/// Creates a guest user and its session.
pub async fn new_guest(state: &AppState, display_name: &str) -> ApiResult<(User, Cookie<'static>)> {
    let name = DisplayName::parse(display_name).map_err(|e| super::bad_request("bad_display_name", e))?;
    let user = User {
        id: format!("guest-{}", random_id(16)),
        display_name: name.to_string(),
        kind: UserKind::Guest,
        subject: None,
        created_at: now_ms(),
    };
    state.store.save_user(&user).await.map_err(internal_store)?;
    let cookie = start(state, &user.id)?;
    Ok((user, cookie))
}

/// `POST /api/v1/session {display_name}`: a guest session. A caller who already has one is
/// renamed instead.
pub async fn post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<GuestRequest>,
) -> ApiResult<HttpResponse> {
    state.limits.check_login(&req)?;
    if let Some(mut user) = caller(&req, &state).await? {
        let name = DisplayName::parse(&body.display_name).map_err(|e| super::bad_request("bad_display_name", e))?;
        user.display_name = name.to_string();
        state.store.save_user(&user).await.map_err(internal_store)?;
        return Ok(HttpResponse::Ok().json(UserView::from(&user)));
    }
    let (user, cookie) = new_guest(&state, &body.display_name).await?;
    Ok(HttpResponse::Created().cookie(cookie).json(UserView::from(&user)))
}

/// `DELETE /api/v1/session`: signs out. The session is revoked on every server, and the cookie
/// cleared.
pub async fn delete(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    if let Some((_, claims)) = current(&req, &state).await? {
        let expires = i64::try_from(claims.exp.saturating_mul(1000)).unwrap_or(i64::MAX);
        state
            .store
            .revoke_token(&format!("session:{}", claims.sid), expires, now_ms())
            .await
            .map_err(internal_store)?;
    }
    Ok(HttpResponse::NoContent().cookie(session_cookie(String::new(), 0)).finish())
}
