//! The web's own attacks: a page on another site making the browser act with our cookie
//! (cross-site request forgery), framing our pages, sniffing types, leaking addresses in the
//! `Referer`. State-changing API requests must come from our own pages; every response carries
//! headers that keep it out of frames and keep the browser from guessing. Pages (HTML) get a
//! strict Content-Security-Policy: scripts from this site and the page's own inline scripts
//! (by hash) only, WebAssembly allowed, connections to this site and its WebTransport relay only.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{DefaultHeaders, Next};

use crate::error::ApiError;

/// The CSP of everything that is not a page: nothing may frame it, nothing it says is a base
/// URL, a plugin or a form target elsewhere.
const RESOURCE_POLICY: &str = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'";

/// `'sha256-…'` sources of the inline `<script>` elements of `html`, for its `script-src`.
/// The pages are ours (the web client's index.html, the diagnostics page), so a plain scan for
/// `<script …>…</script>` is all the parsing they need.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else { break };
        let tag = &after[..open_end];
        let body_and_rest = &after[open_end + 1..];
        let Some(close) = body_and_rest.find("</script>") else { break };
        if !tag.contains(" src=") {
            let digest = sha2::Sha256::digest(&body_and_rest.as_bytes()[..close]);
            hashes.push(format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        }
        rest = &body_and_rest[close + "</script>".len()..];
    }
    hashes
}

/// The Content-Security-Policy of a page whose inline scripts hash to `scripts`, which may
/// connect to this site and to `connect` (the WebTransport relay's origin). Style attributes
/// are allowed (the call grid and level meter set sizes through them); style elements and
/// sheets come from this site only.
pub fn page_policy(scripts: &[String], connect: Option<&str>) -> String {
    let scripts = scripts.join(" ");
    let connect = connect.map(|c| format!(" {c}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' {scripts}; style-src 'self'; \
         style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
         connect-src 'self'{connect}; worker-src 'self' blob:; {RESOURCE_POLICY}"
    )
}

/// The origin (`https://host:port`) of a URL, for a CSP source; `None` if it has none.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Headers on every response. The policy forbids framing, `<base>` and plugins, and keeps
/// forms on this site; camera, microphone and screen capture are for this site only.
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, RESOURCE_POLICY))
        .add((
            "Permissions-Policy",
            "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), usb=()",
        ))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// Gives every HTML page, and every worker script (`…-worker.js`: a worker's policy is its
/// script's), the page policy ([`page_policy`]) in place of the resources' one.
pub async fn page_security(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
        || res.request().path().ends_with("-worker.js");
    let state = res.request().app_data::<actix_web::web::Data<crate::AppState>>().cloned();
    if let (true, Some(state)) = (is_page, state) {
        let connect = crate::http::webtransport_url(&state, res.request()).and_then(|u| origin_of(&u));
        let policy = page_policy(&state.page_scripts, connect.as_deref());
        if let Ok(value) = header::HeaderValue::from_str(&policy) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    Ok(res)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let html = "<p><script>alert(1)</script><script src=\"/a.js\"></script><script type=\"module\">x()</script>";
        // printf 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            inline_script_hashes(html),
            vec![
                "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='".to_owned(),
                "'sha256-D6IGS8VMvCoyaR/l0h9tERrBTATY01CoPS7l6xDv0kI='".to_owned()
            ]
        );
        assert!(inline_script_hashes("<script>never closed").is_empty());
    }

    #[test]
    fn the_page_policy_names_its_scripts_and_relay() {
        let policy = page_policy(&["'sha256-x'".into()], origin_of("https://meet.example.org:4433/").as_deref());
        assert!(policy.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-x';"), "{policy}");
        assert!(policy.contains("connect-src 'self' https://meet.example.org:4433;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(origin_of("not a url"), None);
    }
}
