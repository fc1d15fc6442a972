//! Plain HTTP from other computers is sent to HTTPS. A page on `http://<address>` is not a
//! secure context, so the browser would withhold the camera, WebCrypto and WebTransport, and the
//! `Secure` session cookie; on this machine (`http://localhost`, `http://127.0.0.1`) it is one,
//! and plain HTTP keeps working there.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

/// Paths that stay plain: the CA fetches its challenge over HTTP, and health probes come from
/// orchestrators on other addresses.
const PLAIN_PATHS: [&str; 3] = ["/.well-known/acme-challenge/", "/healthz", "/readyz"];

/// Redirects (307, method kept) a plain HTTP request from another computer to the HTTPS
/// listener, when this server has one.
pub async fn plain_http_redirect(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<crate::AppState>>();
    let https_port = state.and_then(|s| s.https_port);
    let remote = req.peer_addr().is_some_and(|peer| !peer.ip().to_canonical().is_loopback());
    let plain_path = PLAIN_PATHS.iter().any(|p| req.path().starts_with(p) || req.path() == p.trim_end_matches('/'));
    if let Some(port) = https_port
        && remote
        && !plain_path
        && !req.app_config().secure()
    {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let public_url = state.and_then(|s| s.config.public_url.as_deref());
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        if let Some(location) = https_location(host, public_url, port, path) {
            let response = HttpResponse::TemporaryRedirect().insert_header((header::LOCATION, location)).finish();
            return Ok(req.into_response(response));
        }
    }
    next.call(req).await
}

/// Where a plain request for `path` goes: PUBLIC_URL when set (it is the site's HTTPS origin),
/// else the host the browser addressed with the HTTPS listener's port.
fn https_location(host: Option<&str>, public_url: Option<&str>, port: u16, path: &str) -> Option<String> {
    if let Some(public) = public_url.filter(|u| u.starts_with("https://")) {
        return Some(format!("{}{path}", public.trim_end_matches('/')));
    }
    let name = crate::http::addressed_name(host?)?;
    Some(match port {
        443 => format!("https://{name}{path}"),
        port => format!("https://{name}:{port}{path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_request_goes_to_the_same_name_on_the_https_port() {
        let at = |host, port| https_location(Some(host), None, port, "/room/abc?x=1");
        assert_eq!(at("192.168.1.5:8080", 8443).as_deref(), Some("https://192.168.1.5:8443/room/abc?x=1"));
        assert_eq!(at("meet.lan", 443).as_deref(), Some("https://meet.lan/room/abc?x=1"));
        assert_eq!(at("[fd00::5]:8080", 8443).as_deref(), Some("https://[fd00::5]:8443/room/abc?x=1"));
        assert_eq!(at("bad host/", 8443), None);
        assert_eq!(https_location(None, None, 8443, "/"), None);
    }

    #[test]
    fn the_public_url_wins_when_it_is_https() {
        let to = https_location(Some("10.0.0.1:80"), Some("https://meet.example.org/"), 443, "/room/a");
        assert_eq!(to.as_deref(), Some("https://meet.example.org/room/a"));
        let plain = https_location(Some("10.0.0.1:80"), Some("http://meet.example.org"), 8443, "/");
        assert_eq!(plain.as_deref(), Some("https://10.0.0.1:8443/"));
    }
}
