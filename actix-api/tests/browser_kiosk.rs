//! A link cannot publish someone's camera: in headless Chromium with the real web client (and
//! its strict Content-Security-Policy), `?autojoin=1` or a forged kiosk token leave the page in
//! the lobby until a click; a kiosk token the operator issued for the room joins by itself.

mod common;

use std::time::Duration;

use common::web_client::{start_with_client, wait};
use common::*;
use testkit::Browser;

const ROOM: &str = "front-desk-screen";

/// Opens `query` on the room page and waits until the lobby could join (camera open, key made).
async fn open_lobby(http: &str, query: &str) -> Browser {
    let browser = Browser::launch().await.unwrap();
    browser.goto(&format!("{http}/room/{ROOM}?{query}")).await.unwrap();
    wait(&browser, "const b = document.querySelector('#join-button'); return !!b && !b.disabled", 20).await;
    browser
}

async fn violations(browser: &Browser) -> serde_json::Value {
    browser.eval("return window.videocallCspViolations").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_kiosk_link_the_operator_issued_joins_without_a_click() {
    let client = start_with_client().await;
    let http = client.http.clone();

    for query in ["name=Ada&autojoin=1", "name=Ada&kiosk=eyJhbGciOiJIUzI1NiJ9.e30.forged"] {
        let browser = open_lobby(&http, query).await;
        // Give an autojoin every chance to happen.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let joined = browser.eval("return !!document.querySelector('#connection')").await.unwrap();
        assert_eq!(joined, serde_json::json!(false), "{query} joined without a click");
        assert_eq!(violations(&browser).await, serde_json::json!([]), "{query}: the page broke its policy");
        browser.quit().await;
    }

    let token = actix_api::kiosk_token(&Config::for_tests(), ROOM).unwrap();
    let browser = Browser::launch().await.unwrap();
    browser.goto(&format!("{http}/room/{ROOM}?name=Front%20desk&kiosk={token}")).await.unwrap();
    wait(
        &browser,
        "const c = document.querySelector('#connection'); return !!c && c.dataset.state === 'connected'",
        30,
    )
    .await;
    assert_eq!(violations(&browser).await, serde_json::json!([]), "the call broke the page's policy");
    browser.quit().await;
    client.stop().await;
}
