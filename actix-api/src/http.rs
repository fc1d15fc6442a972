//! Health, readiness, metrics and guest tokens.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use videocall_relay::RoomToken;
use videocall_types::{DisplayName, RoomId, UserId};

use crate::AppState;
use crate::api::bad_request;
use crate::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/api/v1/guest-tokens", web::post().to(guest_token))
        .route("/api/v1/webtransport", web::get().to(webtransport))
        .route("/diagnostics/webtransport", web::get().to(webtransport_check));
}

/// The process is up and serving HTTP.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    bus: &'static str,
    bus_ready: bool,
    database: &'static str,
    database_ready: bool,
}

/// Ready when the room bus can carry packets and the database answers.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let bus_ready = state.relay.is_ready();
    let database_ready = match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the database does not answer");
            false
        }
        Err(_) => false,
    };
    let ready = bus_ready && database_ready;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let database = match state.store.backend() {
        videocall_store::Backend::Sqlite => "sqlite",
        videocall_store::Backend::Postgres => "postgres",
    };
    HttpResponse::build(status).json(Readiness {
        ready,
        bus: state.relay.bus_kind(),
        bus_ready,
        database,
        database_ready,
    })
}

/// What the metrics listener serves (METRICS_LISTEN_ADDR), apart from the site.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let relay = &state.relay;
    relay.metrics().bus_ready.set(i64::from(relay.is_ready()));
    let (body, content_type) = videocall_relay::metrics::encode(&state.registry)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e.to_string()))?;
    Ok(HttpResponse::Ok().content_type(content_type).body(body))
}

#[derive(Serialize)]
struct WebTransportInfo {
    /// Base URL; sessions are at `{url}lobby/{user}/{room}?token=…`.
    url: String,
    /// For `new WebTransport(url, {serverCertificateHashes})` with a self-signed certificate.
    certificate_hashes: serde_json::Value,
}

/// A plain page that joins a room over WebTransport and shows what flows: a connection check
/// for users, and what the browser tests drive.
async fn webtransport_check() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(DIAGNOSTICS_PAGE)
}

/// The connection check page (its inline script is allowed by hash).
pub const DIAGNOSTICS_PAGE: &str = include_str!("../static/webtransport-check.html");

/// The WebTransport URL browsers are given: WEBTRANSPORT_URL; else PUBLIC_URL's host, else the
/// `Host` the browser addressed (never `X-Forwarded-Host`, which any client can send), with the
/// in-process listener's port. `None` when this server has no WebTransport relay.
pub fn webtransport_url(state: &AppState, req: &HttpRequest) -> Option<String> {
    if let Some(url) = &state.config.webtransport_url {
        return Some(url.clone());
    }
    let (port, _) = state.webtransport.get()?;
    let public_host = state.config.public_url.as_deref().and_then(|u| host_of(&url::Url::parse(u).ok()?));
    let name = match public_host {
        Some(host) => host,
        None => addressed_name(req.headers().get(actix_web::http::header::HOST)?.to_str().ok()?)?,
    };
    Some(format!("https://{name}:{port}/"))
}

/// The name a `Host` header addressed, without its port, as it goes back into a URL; `None`
/// unless it parses as one.
pub(crate) fn addressed_name(host: &str) -> Option<String> {
    host_of(&url::Url::parse(&format!("http://{host}/")).ok()?)
}

/// A URL's host as it goes back into a URL (IPv6 in brackets).
fn host_of(url: &url::Url) -> Option<String> {
    Some(match url.host()? {
        url::Host::Ipv6(a) => format!("[{a}]"),
        other => other.to_string(),
    })
}

/// Where the WebTransport relay is and, for a development certificate, its hash.
async fn webtransport(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(url) = webtransport_url(&state, &req) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "webtransport_unavailable",
            "this server has no WebTransport relay",
        ));
    };
    let certificate_hashes = match &state.config.webtransport_certificate_url {
        Some(from) => remote_hashes(&state, from).await,
        None => {
            let hash = state.webtransport.get().and_then(|(_, hash)| *hash.read());
            webtransport_server::certificate_hashes_json(hash)
        }
    };
    Ok(HttpResponse::Ok().json(WebTransportInfo { url, certificate_hashes }))
}

/// A separate relay's development certificate hashes, from its `/certificate`. Empty when it
/// does not answer: browsers then check the certificate as usual (and fall back to WebSocket if
/// it is self-signed).
async fn remote_hashes(state: &AppState, from: &str) -> serde_json::Value {
    let answer = state.outbound.get(from).await;
    let hashes = answer.ok().filter(|a| a.status == 200).and_then(|a| {
        let body: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
        Some(body.get("certificate_hashes")?.clone())
    });
    hashes.unwrap_or_else(|| {
        tracing::warn!(from, "no certificate hash from the WebTransport relay");
        serde_json::Value::Array(Vec::new())
    })
}

#[derive(Deserialize)]
struct GuestTokenRequest {
    room: String,
    display_name: String,
    /// The guest records the room (`bot record`): everyone is shown it.
    #[serde(default)]
    recorder: bool,
}

/// A token for a guest: a random user id, the display name and room asked for. Rooms that are
/// meetings are joined through the meeting's join flow instead (password, waiting room).
async fn guest_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<GuestTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    if !state.config.guest_tokens {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "guest_tokens_disabled",
            "this server does not issue guest tokens",
        ));
    }
    state.limits.check_token(&req)?;
    let room = RoomId::parse(&body.room).map_err(|e| bad_request("bad_room_id", e))?;
    let name = DisplayName::parse(&body.display_name).map_err(|e| bad_request("bad_display_name", e))?;
    let meeting = state.store.meeting(room.as_str()).await.map_err(crate::api::session::internal_store)?;
    if meeting.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "meeting_join_required",
            format!("{room} is a meeting: join it through POST /api/v1/meetings/{room}/join"),
        ));
    }
    let suffix: u64 = rand::random();
    let user = UserId::parse(&format!("guest-{suffix:016x}")).map_err(|e| bad_request("bad_user_id", e))?;
    let grant = RoomToken { user, room, name, expires_at: 0, id: RoomToken::fresh_id(), recorder: body.recorder };
    Ok(HttpResponse::Created().json(crate::api::issue_room_token(&state, grant)?))
}
