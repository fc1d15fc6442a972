//! The real web client (yew-ui, built by `cargo xtask web` into WEB_ROOT) in headless Chromium,
//! driven through its own UI.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use testkit::Browser;

use super::webtransport::{WebTransportServer, start_with_webtransport};
use super::*;

/// The built client: WEB_ROOT (set by `cargo xtask test`), else the default build directory.
pub fn web_root() -> PathBuf {
    if let Some(root) = std::env::var_os("WEB_ROOT") {
        return PathBuf::from(root);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("web")
}

/// One call at a time: several browsers encoding and decoding 720p video already fill two
/// cores, and a starved call measures the machine, not the client.
static ONE_CALL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct ClientServer {
    pub server: WebTransportServer,
    pub http: String,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl ClientServer {
    pub async fn stop(self) {
        self.server.server.stop().await;
    }

    /// Stops the server and starts a new one on the same HTTP and UDP ports (with a new
    /// development certificate): to clients, a network drop.
    pub async fn restart(self) -> Self {
        let Self { server, _turn, .. } = self;
        let (http_addr, wt_addr) = (server.server.addr(), server.server.webtransport_addr());
        server.server.stop().await;
        let mut config = Config::for_tests();
        config.listen = http_addr;
        config.webtransport_listen = wt_addr;
        config.web_root = Some(web_root());
        let running = start(config).await;
        let http = http_url(&running);
        let (base, hash) = super::webtransport::webtransport_info(&http).await;
        Self { server: WebTransportServer { server: running, http: http.clone(), base, hash }, http, _turn }
    }
}

/// actix-api serving the web client, with WebTransport in-process (once it is this test's turn).
pub async fn start_with_client() -> ClientServer {
    start_with_client_and(|_| {}).await
}

/// The same, with the test configuration changed by `adjust` first (a NATS bus, say).
pub async fn start_with_client_and(adjust: impl FnOnce(&mut Config)) -> ClientServer {
    let turn = ONE_CALL_AT_A_TIME.lock().await;
    let mut config = Config::for_tests();
    let root = web_root();
    assert!(root.join("yew_ui_bg.wasm").is_file(), "no web client in {}: run `cargo xtask web` first", root.display());
    config.web_root = Some(root);
    adjust(&mut config);
    let server = start_with_webtransport(config).await;
    let http = server.http.clone();
    ClientServer { server, http, _turn: turn }
}

/// The same, with browsers told to reach WebTransport through a UDP link in front of it (5 ms
/// each way, no loss until the test limits it): whoever takes WebTransport crosses the link.
pub async fn start_with_client_behind_link() -> (ClientServer, testkit::LossyLink) {
    let webtransport = std::net::SocketAddr::from(([127, 0, 0, 1], testkit::free_udp_port()));
    let config = testkit::LinkConfig { one_way_delay: std::time::Duration::from_millis(5), loss: 0.0, seed: 21 };
    let link = testkit::LossyLink::start(webtransport, config).unwrap();
    let url = format!("https://127.0.0.1:{}/", link.addr().port());
    let server = start_with_client_and(|c| {
        c.webtransport_listen = Some(webtransport);
        c.webtransport_url = Some(url);
    })
    .await;
    (server, link)
}

/// A participant: its own browser and profile.
pub struct Participant {
    pub browser: Browser,
    pub name: String,
}

impl Participant {
    /// Opens the home page, types a name and the room, goes through the lobby with
    /// `transport` ("auto", "webtransport" or "websocket") and waits until connected.
    pub async fn join(http: &str, room: &str, name: &str, transport: &str) -> Self {
        Self::join_with(testkit::LaunchOptions::default(), http, room, name, transport).await
    }

    /// The same, in a browser started with `options` (on another host, trusting a certificate).
    pub async fn join_with(
        options: testkit::LaunchOptions,
        http: &str,
        room: &str,
        name: &str,
        transport: &str,
    ) -> Self {
        let browser = Browser::launch_with(options).await.unwrap();
        browser.goto(&format!("{http}/")).await.unwrap();
        wait(&browser, "return !!document.querySelector('#display-name')", 20).await;
        browser
            .eval(&format!(
                "document.querySelector('#display-name').value = {name:?};
                 document.querySelector('#room-name').value = {room:?};
                 document.querySelector('#join-room').click(); return true"
            ))
            .await
            .unwrap();
        // The lobby: ready once the camera is open and the identity key generated.
        wait(&browser, "const b = document.querySelector('#join-button'); return !!b && !b.disabled", 20).await;
        browser
            .eval(&format!(
                "const s = document.querySelector('#transport'); s.value = {transport:?};
                 s.dispatchEvent(new Event('change', {{bubbles: true}}));
                 return true"
            ))
            .await
            .unwrap();
        browser.eval("document.querySelector('#join-button').click(); return true").await.unwrap();
        wait(
            &browser,
            "const c = document.querySelector('#connection'); return !!c && c.dataset.state === 'connected'",
            20,
        )
        .await;
        Self { browser, name: name.to_owned() }
    }

    /// `window.videocallStats()`.
    pub async fn stats(&self) -> Value {
        let text = self.browser.eval("return window.videocallStats ? window.videocallStats() : '{}'").await.unwrap();
        serde_json::from_str(text.as_str().unwrap_or("{}")).unwrap_or(Value::Null)
    }

    /// Waits until every other participant's figures satisfy `done`; returns the last stats.
    pub async fn wait_for_peers(&self, peers: usize, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let started = std::time::Instant::now();
        loop {
            let stats = self.stats().await;
            let list = stats["peers"].as_array().cloned().unwrap_or_default();
            if list.len() == peers && list.iter().all(&done) {
                return stats;
            }
            assert!(started.elapsed() < limit, "{}: peers never got there within {limit:?}: {stats:#}", self.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Leaves, after checking that nothing the page did broke its Content-Security-Policy.
    pub async fn quit(self) {
        let violations = self.browser.eval("return window.videocallCspViolations").await.unwrap();
        assert_eq!(violations, serde_json::json!([]), "{}: the page broke its policy", self.name);
        self.browser.quit().await;
    }
}

/// Waits for `script` to return true; failing, says what the page showed.
pub async fn wait(browser: &Browser, script: &str, seconds: u64) {
    if let Err(e) = browser.wait_for(script, Duration::from_secs(seconds), |v| v == &Value::Bool(true)).await {
        let shown = browser.eval("return location.pathname + ': ' + document.body.innerText.slice(0, 800)").await;
        panic!("{e:#}\nthe page: {}", shown.map(|v| v.to_string()).unwrap_or_else(|e| format!("unreadable: {e:#}")));
    }
}

/// Clicks the element `selector` names.
pub async fn click(browser: &Browser, selector: &str) {
    wait(
        browser,
        &format!("const e = document.querySelector({selector:?}); if (!e) return false; e.click(); return true"),
        10,
    )
    .await;
}

/// Types `text` into the input `selector` names, as typing does: the value, then an `input`
/// event.
pub async fn type_into(browser: &Browser, selector: &str, text: &str) {
    wait(
        browser,
        &format!(
            "const e = document.querySelector({selector:?}); if (!e) return false; e.value = {text:?};
             e.dispatchEvent(new Event('input', {{bubbles: true}})); return true"
        ),
        10,
    )
    .await;
}
