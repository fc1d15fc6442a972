//! The web's own attacks against the real server: a page on another site posting with the
//! victim's cookie is refused, and every response carries the headers that keep our pages out
//! of frames and the browser from guessing types.

mod common;

use common::api::Api;
use common::*;
use serde_json::{Value, json};

/// A POST with the session cookie and extra headers, as a browser would send it.
async fn post_as_browser(api: &Api, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", api.base))
        .header("cookie", api.cookie.clone().expect("a session"))
        .json(&json!({"name": "Standup", "waiting_room": false}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_are_refused_and_every_response_has_the_security_headers() {
    let server = start(Config::for_tests()).await;
    let http = http_url(&server);
    let host = http.trim_start_matches("http://").to_owned();
    let mut alice = Api::new(&http);
    assert_eq!(alice.post("/api/v1/session", json!({"display_name": "Alice"})).await.0.as_u16(), 201);

    let own_origin = format!("http://{host}");
    let refused: [&[(&str, &str)]; 5] = [
        // A form on another site (the browser says so), or a page on another port of this host.
        &[("sec-fetch-site", "cross-site"), ("origin", "http://evil.example")],
        &[("sec-fetch-site", "same-site"), ("origin", "http://127.0.0.1:1")],
        // A browser that sends no Sec-Fetch-Site still sends Origin on a POST.
        &[("origin", "http://evil.example")],
        &[("origin", "null")],
        &[("origin", "http://127.0.0.1:1")],
    ];
    for headers in refused {
        let (status, body) = post_as_browser(&alice, "/api/v1/meetings", headers).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("cross_site_request")), "{headers:?}: {body}");
    }
    let (_, mine) = alice.get("/api/v1/meetings").await;
    assert_eq!(mine.as_array().map(Vec::len), Some(0), "nothing was created: {mine}");

    // Our own pages, and clients that are not browsers (no Origin, no Sec-Fetch-Site), go through.
    let allowed: [&[(&str, &str)]; 3] =
        [&[("sec-fetch-site", "same-origin"), ("origin", &own_origin)], &[("origin", &own_origin)], &[]];
    for headers in allowed {
        let (status, body) = post_as_browser(&alice, "/api/v1/meetings", headers).await;
        assert_eq!(status, 201, "{headers:?}: {body}");
    }
    // Reading stays open to anyone (it changes nothing and needs no cookie to be refused).
    let (status, _) = alice.get("/api/v1/session").await;
    assert_eq!(status.as_u16(), 200);

    for path in ["/api/v1/session", "/healthz", "/no-such-page"] {
        let response = reqwest::get(format!("{http}{path}")).await.unwrap();
        let headers = response.headers();
        for (name, wanted) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("cross-origin-opener-policy", "same-origin"),
        ] {
            assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(wanted), "{path}: {name}");
        }
        let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        let permissions = headers.get("permissions-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(permissions.contains("camera=(self)") && permissions.contains("geolocation=()"), "{path}");
    }
    let metrics = reqwest::get(format!("{http}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"api_errors_total{status="403"} 5"#), "{metrics}");
    server.stop().await;
}
