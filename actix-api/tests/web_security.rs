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
    let metrics = common::metrics(&server).await;
    assert!(metrics.contains(r#"api_errors_total{status="403"} 5"#), "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_get_a_strict_policy_that_names_their_scripts_and_relay_and_no_header_moves_the_relay() {
    let mut config = Config::for_tests();
    config.webtransport_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = start(config).await;
    let http = http_url(&server);
    let wt_port = server.webtransport_addr().unwrap().port();

    let page = reqwest::get(format!("{http}/diagnostics/webtransport")).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for part in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval' 'sha256-",
        &format!("connect-src 'self' https://127.0.0.1:{wt_port};"),
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part:?} missing from {csp}");
    }
    let scripts = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src ")).unwrap();
    assert!(!scripts.contains("'unsafe-inline'") && !scripts.contains("'unsafe-eval'"), "{scripts}");
    // JSON is no page: it keeps the short policy.
    let json = reqwest::get(format!("{http}/api/v1/webtransport")).await.unwrap();
    assert!(!json.headers()["content-security-policy"].to_str().unwrap().contains("script-src"));

    // The relay's address follows the Host the browser addressed, never X-Forwarded-Host.
    let client = reqwest::Client::new();
    let info: serde_json::Value = client
        .get(format!("{http}/api/v1/webtransport"))
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "host=evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["url"], format!("https://127.0.0.1:{wt_port}/"), "{info}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_issued_kiosk_token_for_the_room_joins_without_a_click() {
    let config = Config::for_tests();
    let token = actix_api::kiosk_token(&config, "lobby-screen").unwrap();
    let server = start(config.clone()).await;
    let http = http_url(&server);
    let status = |path: String| async move { reqwest::get(path).await.unwrap().status().as_u16() };
    assert_eq!(status(format!("{http}/api/v1/kiosk/lobby-screen?token={token}")).await, 200);
    assert_eq!(status(format!("{http}/api/v1/kiosk/another-room?token={token}")).await, 403);
    assert_eq!(status(format!("{http}/api/v1/kiosk/lobby-screen?token=forged")).await, 403);
    // A guest token (signed with the same secret) is no kiosk token.
    let guest = guest(&http, "lobby-screen", "Eve").await;
    assert_eq!(status(format!("{http}/api/v1/kiosk/lobby-screen?token={}", guest.token)).await, 403);
    // Issuing needs the deployment's secret: a random one would make tokens nobody accepts.
    let mut no_secret = config;
    no_secret.relay.token_secret = None;
    assert!(actix_api::kiosk_token(&no_secret, "lobby-screen").is_err());
    server.stop().await;
}

/// A worker's policy is its script's, not the page's: the call's worker (which connects to the
/// relay and compiles the WebAssembly) and the drawing worker get the page policy; other
/// scripts keep the short one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_scripts_get_the_page_policy() {
    let root = std::env::temp_dir().join(format!("web-security-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html><script>window.x = 1;</script>").unwrap();
    std::fs::write(root.join("yew_ui_bg.wasm"), b"\0asm").unwrap();
    for script in ["call-worker.js", "draw-worker.js", "yew_ui.js"] {
        std::fs::write(root.join(script), "self.x = 1;").unwrap();
    }
    let mut config = Config::for_tests();
    config.web_root = Some(root.clone());
    config.webtransport_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = start(config).await;
    let http = http_url(&server);
    let wt_port = server.webtransport_addr().unwrap().port();
    let policy = |path: &'static str| {
        let http = http.clone();
        async move {
            let response = reqwest::get(format!("{http}/{path}")).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.headers()["content-security-policy"].to_str().unwrap().to_owned()
        }
    };
    for worker in ["call-worker.js", "draw-worker.js"] {
        let csp = policy(worker).await;
        for part in
            ["script-src 'self' 'wasm-unsafe-eval'", &format!("connect-src 'self' https://127.0.0.1:{wt_port};")]
        {
            assert!(csp.contains(part), "{worker}: {part:?} missing from {csp}");
        }
    }
    assert!(!policy("yew_ui.js").await.contains("script-src"));
    let _ = std::fs::remove_dir_all(&root);
}
