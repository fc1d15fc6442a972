//! The web's own attacks: a page on another site making the browser act with our cookie
//! (cross-site request forgery), framing our pages, sniffing types, leaking addresses in the
//! `Referer`. State-changing API requests must come from our own pages; every response carries
//! headers that keep it out of frames and keep the browser from guessing.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{DefaultHeaders, Next};

use crate::error::ApiError;

/// Headers on every response. The policy forbids framing, `<base>` and plugins, and keeps
/// forms on this site; camera, microphone and screen capture are for this site only.
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'",
        ))
        .add((
            "Permissions-Policy",
            "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), usb=()",
        ))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// Why a request looks cross-site, if it does. Browsers send `Sec-Fetch-Site` (and `Origin` on
/// every POST); a request with neither is not from a browser page, so it carries no ambient
/// cookie of a victim's and is let through.
fn cross_site(req: &ServiceRequest, public_origin: Option<&str>) -> Option<String> {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("invalid");
        // "none": typed by the user or a bookmark; "same-origin": our own pages.
        return (site != "same-origin" && site != "none").then(|| format!("Sec-Fetch-Site is {site}"));
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("invalid");
    // The site as configured, or the host the browser addressed: a page elsewhere has its own
    // origin, and a page that made its name point here gets no cookie of ours.
    let public = public_origin.is_some_and(|public| origin.eq_ignore_ascii_case(public.trim_end_matches('/')));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    let addressed = !host.is_empty() && origin_host.eq_ignore_ascii_case(host);
    (!public && !addressed).then(|| format!("Origin {origin} is not this site"))
}

/// Refuses state-changing API requests from other sites with 403 `cross_site_request`.
pub async fn same_site_writes(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state && req.path().starts_with("/api/") {
        let public = req.app_data::<actix_web::web::Data<crate::AppState>>().and_then(|s| s.config.public_url.clone());
        if let Some(why) = cross_site(&req, public.as_deref()) {
            let error = ApiError::new(StatusCode::FORBIDDEN, "cross_site_request", format!("refused: {why}"));
            return Ok(req.error_response(error));
        }
    }
    next.call(req).await
}
