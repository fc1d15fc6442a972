//! The server's HTTP API: guest tokens and where the WebTransport relay is.

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

#[derive(Deserialize)]
struct ApiError {
    code: String,
    message: String,
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
    let window = js::window().map_err(|e| js::describe(&e))?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
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
