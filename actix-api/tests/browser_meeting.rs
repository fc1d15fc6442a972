//! A meeting in the real web client (headless Chromium, fake camera and microphone): the host
//! creates it from the home page, a guest opening the link waits in the waiting room, the host
//! admits them from the host panel, they see each other, and the host removes them.

mod common;

use std::time::Duration;

use common::web_client::{Participant, click, start_with_client, type_into, wait};
use serde_json::Value;
use testkit::Browser;

/// Has decoded some of the other's video.
fn decoding(peer: &Value) -> bool {
    peer["frames_decoded"].as_u64().unwrap_or(0) >= 10
}

const CONNECTED: &str =
    "const c = document.querySelector('#connection'); return !!c && c.dataset.state === 'connected'";
const JOIN_READY: &str = "const b = document.querySelector('#join-button'); return !!b && !b.disabled";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_admits_from_the_waiting_room_then_removes() {
    let server = start_with_client().await;
    let http = server.http.clone();

    // The host: a name, "New meeting" (waiting room on by default), then into the call.
    let host = Participant { browser: Browser::launch().await.unwrap(), name: "the host".into() };
    host.browser.goto(&format!("{http}/")).await.unwrap();
    type_into(&host.browser, "#display-name", "Hannah Host").await;
    click(&host.browser, "#create-meeting").await;
    wait(&host.browser, "return location.pathname.startsWith('/meeting/')", 20).await;
    let path = host.browser.eval("return location.pathname").await.unwrap();
    let link = format!("{http}{}", path.as_str().unwrap());
    wait(&host.browser, JOIN_READY, 30).await;
    click(&host.browser, "#join-button").await;
    wait(&host.browser, CONNECTED, 20).await;
    wait(&host.browser, "return !!document.querySelector('#host-panel')", 10).await;

    // The guest opens the link, gives a name, and waits.
    let guest = Participant { browser: Browser::launch().await.unwrap(), name: "the guest".into() };
    guest.browser.goto(&link).await.unwrap();
    wait(&guest.browser, JOIN_READY, 30).await;
    type_into(&guest.browser, "#lobby-name", "Gus Guest").await;
    click(&guest.browser, "#join-button").await;
    let waiting = guest
        .browser
        .wait_for("return !!document.querySelector('#waiting-room')", Duration::from_secs(10), |v| {
            v == &Value::Bool(true)
        })
        .await;
    if waiting.is_err() {
        let text = guest
            .browser
            .eval("return document.body.innerText + ' | name=' + (document.querySelector('#lobby-name') || {}).value")
            .await
            .unwrap();
        panic!("the guest is not in the waiting room: {text}");
    }
    assert!(
        guest.browser.eval("return !document.querySelector('#connection')").await.unwrap() == Value::Bool(true),
        "a waiting guest is not in the call"
    );

    // The host sees them waiting and admits them; the guest's page lets itself in.
    wait(&host.browser, "const li = document.querySelector('#host-panel .waiting li'); return !!li && li.innerText.includes('Gus Guest')", 10).await;
    click(&host.browser, "#host-panel .waiting li .admit").await;
    wait(&guest.browser, CONNECTED, 20).await;
    host.wait_for_peers(1, Duration::from_secs(30), decoding).await;
    guest.wait_for_peers(1, Duration::from_secs(30), decoding).await;
    // The guest's people list marks the host (by the user id the relay stamps), the host's
    // marks the host's own line, and nobody else is marked.
    let host_marks = "return [...document.querySelectorAll('.participants li')]
        .filter(li => li.querySelector('.badge.host')).map(li => li.querySelector('.who').firstChild.textContent.trim())";
    let marked = guest.browser.eval(host_marks).await.unwrap();
    assert_eq!(marked, serde_json::json!(["Hannah Host"]), "the guest's list");
    let marked = host.browser.eval(host_marks).await.unwrap();
    assert_eq!(marked, serde_json::json!(["Hannah Host (you)"]), "the host's list");

    // Removed: the guest's call ends with the reason, and the host's room is empty again.
    wait(&host.browser, "return !!document.querySelector('#host-panel .admitted li .remove')", 10).await;
    click(&host.browser, "#host-panel .admitted li .remove").await;
    wait(&guest.browser, "return document.body.innerText.toLowerCase().includes('removed you')", 20).await;
    let started = std::time::Instant::now();
    while host.stats().await["peers"].as_array().is_some_and(|p| !p.is_empty()) {
        assert!(started.elapsed() < Duration::from_secs(15), "the removed guest is still in the host's room");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Rejoining does not get them back in.
    guest.browser.goto(&link).await.unwrap();
    wait(&guest.browser, JOIN_READY, 30).await;
    click(&guest.browser, "#join-button").await;
    wait(
        &guest.browser,
        "const e = document.querySelector('.lobby .error'); return !!e && e.innerText.includes('removed')",
        10,
    )
    .await;

    host.quit().await;
    guest.quit().await;
    server.stop().await;
}
