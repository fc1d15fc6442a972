//! Headless Chromium opens `new WebTransport(url, {serverCertificateHashes})` from a page served
//! by actix-api, joins a room and exchanges packets with a native WebTransport client.

mod common;

use std::time::{Duration, Instant};

use common::webtransport::{WebTransportServer, WtClient, lobby, start_with_webtransport};
use common::*;
use testkit::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_a_native_client_exchange_packets_over_webtransport() {
    let config = Config::for_tests();
    let WebTransportServer { server, http, base, hash } = start_with_webtransport(config).await;
    let native_guest = guest(&http, "browser-room", "Native").await;
    let native = WtClient::connect(&lobby(&base, &native_guest), hash).await.unwrap();
    assert!(matches!(native.recv().await.unwrap(), Received::Members(_)));

    let browser = Browser::launch().await.unwrap();
    browser.goto(&format!("{http}/diagnostics/webtransport?room=browser-room&name=Chromium")).await.unwrap();
    let state = browser
        .wait_for("return window.result ? window.result.state : 'loading'", Duration::from_secs(20), |v| {
            v != "loading" && v != "starting"
        })
        .await
        .unwrap();
    let error = browser.eval("return window.result.error").await.unwrap();
    assert_eq!(state, "connected", "browser error: {error}");
    let browser_user = browser.eval("return window.result.user").await.unwrap();

    // The browser's packets reach the native client, stamped with the browser's identity.
    let deadline = Instant::now() + Duration::from_secs(15);
    let from_browser = loop {
        assert!(Instant::now() < deadline, "no packet from the browser");
        if let Ok(Received::Packet(p)) = native.recv_within(Duration::from_secs(5)).await {
            break p;
        }
    };
    assert!(String::from_utf8_lossy(&from_browser.data).starts_with("hello from the browser #"));
    assert_eq!(serde_json::Value::from(from_browser.email.clone()), browser_user);

    // And the native client's reach the browser, stamped with the native identity.
    for i in 0..5 {
        native.send(&media(format!("hello from native #{i}").as_bytes())).await.unwrap();
    }
    let received = browser
        .wait_for(
            "return window.result.received.filter(r => r.text.startsWith('hello from native'))",
            Duration::from_secs(15),
            |v| v.as_array().is_some_and(|a| a.len() == 5),
        )
        .await
        .unwrap();
    for (i, r) in received.as_array().unwrap().iter().enumerate() {
        assert_eq!(r["from"], native_guest.user.as_str());
        assert_eq!(r["text"], format!("hello from native #{i}"));
    }
    let others = browser.eval("return window.result.others.size").await.unwrap();
    assert_eq!(others, 1, "the browser sees the native client in the room");
    browser.quit().await;
    server.stop().await;
}
