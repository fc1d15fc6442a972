//! The server's HTTP API: sessions, meetings and their join flow, the host's actions, guest
//! tokens for open rooms, and where the WebTransport relay is. The session cookie is the
//! browser's business (HttpOnly): these calls only send it along.

use serde::Deserialize;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use super::js;

#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    pub token: String,
    pub user_id: String,
    pub room: String,
    pub websocket_path: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CertificateHash {
    pub algorithm: String,
    /// Hex.
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebTransportInfo {
    pub url: String,
    pub certificate_hashes: Vec<CertificateHash>,
}

/// An answer that is not what was asked for: the status and the server's `{code, message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    fn of(status: u16, body: &str) -> Self {
        match serde_json::from_str::<ApiError>(body) {
            Ok(e) => Self { status, code: e.code, message: e.message },
            Err(_) => Self { status, code: "http".into(), message: format!("the server answered HTTP {status}") },
        }
    }

    fn network(message: String) -> Self {
        Self { status: 0, code: "network".into(), message }
    }
}

#[derive(Deserialize)]
struct ApiError {
    code: String,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserView {
    pub id: String,
    pub display_name: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SessionInfo {
    pub user: Option<UserView>,
    pub sign_in_available: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MeetingView {
    pub id: String,
    pub name: String,
    pub host_id: String,
    pub ended_at: Option<i64>,
    pub has_password: bool,
    pub waiting_room: bool,
    pub signed_in_only: bool,
    pub you_are_host: bool,
}

/// Where a participant stands: the room token once admitted, none while waiting.
#[derive(Debug, Clone, Deserialize)]
pub struct JoinView {
    pub token: Option<Grant>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParticipantView {
    pub user_id: String,
    pub display_name: String,
    /// "waiting", "admitted", "rejected", "removed" or "left".
    pub state: String,
    pub is_host: bool,
}

/// A call whose success is `ok` (a status), decoded from JSON.
async fn call<T: serde::de::DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    ok: &[u16],
) -> Result<(u16, T), Failure> {
    let (status, text) = fetch(method, path, body.map(|b| b.to_string())).await.map_err(Failure::network)?;
    if !ok.contains(&status) {
        return Err(Failure::of(status, &text));
    }
    let text = if text.is_empty() { "null" } else { &text };
    serde_json::from_str(text).map(|v| (status, v)).map_err(|e| Failure::network(format!("{path}: {e}")))
}

pub async fn session() -> Result<SessionInfo, Failure> {
    Ok(call("GET", "/api/v1/session", None, &[200]).await?.1)
}

/// A guest session under `display_name` (or the current one renamed).
pub async fn start_session(display_name: &str) -> Result<UserView, Failure> {
    Ok(call("POST", "/api/v1/session", Some(serde_json::json!({"display_name": display_name})), &[200, 201]).await?.1)
}

pub async fn create_meeting(name: &str, password: &str, waiting_room: bool) -> Result<MeetingView, Failure> {
    let mut body = serde_json::json!({"name": name, "waiting_room": waiting_room});
    if !password.is_empty() {
        body["password"] = password.into();
    }
    Ok(call("POST", "/api/v1/meetings", Some(body), &[201]).await?.1)
}

/// The meeting `id`; `None` when there is none (an open room of that name, perhaps).
pub async fn meeting(id: &str) -> Result<Option<MeetingView>, Failure> {
    match call("GET", &format!("/api/v1/meetings/{id}"), None, &[200]).await {
        Ok((_, m)) => Ok(Some(m)),
        Err(f) if f.status == 404 => Ok(None),
        Err(f) => Err(f),
    }
}

/// Asks to join: admitted (with a token) or waiting for the host.
pub async fn join_meeting(id: &str, display_name: &str, password: &str) -> Result<JoinView, Failure> {
    let mut body = serde_json::json!({"display_name": display_name});
    if !password.is_empty() {
        body["password"] = password.into();
    }
    Ok(call("POST", &format!("/api/v1/meetings/{id}/join"), Some(body), &[200, 202]).await?.1)
}

/// The room token once admitted (`token` is `None` while waiting).
pub async fn meeting_token(id: &str) -> Result<JoinView, Failure> {
    Ok(call("POST", &format!("/api/v1/meetings/{id}/token"), None, &[200, 202]).await?.1)
}

pub async fn leave_meeting(id: &str) -> Result<(), Failure> {
    call::<serde_json::Value>("POST", &format!("/api/v1/meetings/{id}/leave"), None, &[204]).await.map(|_| ())
}

pub async fn participants(id: &str) -> Result<Vec<ParticipantView>, Failure> {
    Ok(call("GET", &format!("/api/v1/meetings/{id}/participants"), None, &[200]).await?.1)
}

/// `admit`, `reject`, `mute` or `remove`.
pub async fn host_action(id: &str, user: &str, action: &str) -> Result<(), Failure> {
    let path = format!("/api/v1/meetings/{id}/participants/{user}/{action}");
    call::<serde_json::Value>("POST", &path, None, &[200, 202, 204]).await.map(|_| ())
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordingView {
    pub file: String,
    pub participant: String,
    pub duration_ms: u64,
    pub bytes: u64,
    /// A download link that expires.
    pub url: String,
}

#[derive(Deserialize)]
struct RecordingState {
    recording: bool,
}

/// Whether the meeting is being recorded (host only).
pub async fn recording(id: &str) -> Result<bool, Failure> {
    let (_, state): (u16, RecordingState) =
        call("GET", &format!("/api/v1/meetings/{id}/recording"), None, &[200]).await?;
    Ok(state.recording)
}

pub async fn start_recording(id: &str) -> Result<(), Failure> {
    call::<serde_json::Value>("POST", &format!("/api/v1/meetings/{id}/recording"), None, &[201]).await.map(|_| ())
}

/// Stops recording: the meeting's files, with download links.
pub async fn stop_recording(id: &str) -> Result<Vec<RecordingView>, Failure> {
    Ok(call("DELETE", &format!("/api/v1/meetings/{id}/recording"), None, &[200]).await?.1)
}

pub async fn end_meeting(id: &str) -> Result<(), Failure> {
    call::<serde_json::Value>("POST", &format!("/api/v1/meetings/{id}/end"), None, &[204]).await.map(|_| ())
}

async fn fetch(method: &str, path: &str, body: Option<String>) -> Result<(u16, String), String> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = &body {
        init.set_body(&body.into());
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(|e| js::describe(&e))?;
    if body.is_some() {
        let _ = request.headers().set("content-type", "application/json");
    }
    let response: Response = JsFuture::from(js::fetch(&request).map_err(|e| js::describe(&e))?)
        .await
        .map_err(|e| format!("{path}: {}", js::describe(&e)))?
        .unchecked_into();
    let text = JsFuture::from(response.text().map_err(|e| js::describe(&e))?).await.map_err(|e| js::describe(&e))?;
    Ok((response.status(), text.as_string().unwrap_or_default()))
}

fn error_text(status: u16, body: &str) -> String {
    match serde_json::from_str::<ApiError>(body) {
        Ok(e) => format!("{} ({}, HTTP {status})", e.message, e.code),
        Err(_) => format!("HTTP {status}"),
    }
}

/// A guest token for `room` under `display_name`.
pub async fn guest_token(room: &str, display_name: &str) -> Result<Grant, String> {
    let body = serde_json::json!({"room": room, "display_name": display_name}).to_string();
    let (status, text) = fetch("POST", "/api/v1/guest-tokens", Some(body)).await?;
    if status != 201 {
        return Err(error_text(status, &text));
    }
    serde_json::from_str(&text).map_err(|e| format!("guest token answer: {e}"))
}

/// Whether `token` is a kiosk token the server issued for `room`: a kiosk link joins without a
/// click. Any other answer (a forged or expired token, another room's) means "wait for a click".
pub async fn kiosk_allowed(room: &str, token: &str) -> Result<bool, String> {
    let path = format!("/api/v1/kiosk/{}?token={}", js::encode_uri_component(room), js::encode_uri_component(token));
    let (status, text) = fetch("GET", &path, None).await?;
    match status {
        200 => Ok(true),
        403 | 404 => Ok(false),
        _ => Err(error_text(status, &text)),
    }
}

/// Where the WebTransport relay is; `None` when this server has none.
pub async fn webtransport_info() -> Result<Option<WebTransportInfo>, String> {
    let (status, text) = fetch("GET", "/api/v1/webtransport", None).await?;
    match status {
        200 => serde_json::from_str(&text).map(Some).map_err(|e| format!("webtransport answer: {e}")),
        404 => Ok(None),
        _ => Err(error_text(status, &text)),
    }
}

/// Hex to bytes; `None` if it is not hex.
pub fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}
