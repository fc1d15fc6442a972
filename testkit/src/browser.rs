//! Headless Chromium driven over the Chrome DevTools Protocol: a fresh profile per browser, the
//! fake camera and microphone, and the browser killed (by pid) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// The Chromium process and its profile directory, removed when dropped.
struct Chromium {
    process: Child,
    profile: PathBuf,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

pub struct Browser {
    _chromium: Chromium,
    /// The page's DevTools connection and the last command id.
    page: tokio::sync::Mutex<(WebSocketStream<MaybeTlsStream<TcpStream>>, u64)>,
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and connects to its first page.
    pub async fn launch() -> Result<Self> {
        // A profile nobody used before: a stale DevToolsActivePort would point at a dead port.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let profile = std::env::temp_dir().join(format!("chromium-profile-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile)?;
        let process = Command::new(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                // Remote audio must play without a real click.
                "--autoplay-policy=no-user-gesture-required",
                // Screen sharing picks the whole (fake) screen without asking.
                "--auto-select-desktop-capture-source=Entire screen",
                "--window-size=1280,800",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Chromium (apt-get install chromium)")?;
        let chromium = Chromium { process, profile };
        let port = devtools_port(&chromium.profile).await?;
        let targets = page_targets(port).await?;
        let page_url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .context("no page target")?
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(page_url).await.context("connecting to the page")?;
        Ok(Self { _chromium: chromium, page: tokio::sync::Mutex::new((ws, 0)) })
    }

    /// Sends one DevTools command and waits for its answer (events in between are skipped).
    async fn command(&self, method: &str, params: Value) -> Result<Value> {
        let mut page = self.page.lock().await;
        page.1 += 1;
        let id = page.1;
        page.0.send(Message::Text(json!({"id": id, "method": method, "params": params}).to_string().into())).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let message =
                tokio::time::timeout_at(deadline.into(), page.0.next()).await.context("DevTools timed out")?;
            let Some(Ok(Message::Text(text))) = message else { continue };
            let value: Value = serde_json::from_str(&text)?;
            if value["id"] == id {
                if let Some(error) = value.get("error") {
                    bail!("{method}: {error}");
                }
                return Ok(value["result"].clone());
            }
        }
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.command("Page.navigate", json!({"url": url})).await.map(drop)
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn eval(&self, script: &str) -> Result<Value> {
        let expression = format!("(() => {{ {script} }})()");
        let result = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true, "userGesture": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("{script}: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Evaluates `script` until `done` accepts its value.
    pub async fn wait_for(&self, script: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let started = Instant::now();
        loop {
            let value = self.eval(script).await.unwrap_or(Value::Null);
            if done(&value) {
                return Ok(value);
            }
            if started.elapsed() > limit {
                bail!("{script} never satisfied the condition within {limit:?}; last value {value}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the page as it is now.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        use base64::Engine as _;
        let shot = self.command("Page.captureScreenshot", json!({"format": "png"})).await?;
        let data = shot["data"].as_str().context("no screenshot data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }

    /// Closes Chromium.
    pub async fn quit(self) {
        let _ = self.command("Browser.close", json!({})).await;
    }
}

/// The browser's targets, once its DevTools endpoint answers.
async fn page_targets(port: u16) -> Result<Value> {
    let started = Instant::now();
    loop {
        match reqwest::get(format!("http://127.0.0.1:{port}/json/list")).await {
            Ok(response) => return Ok(response.json().await?),
            Err(e) if started.elapsed() > Duration::from_secs(20) => return Err(e).context("DevTools endpoint"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Chromium writes the port it picked to `DevToolsActivePort` in the profile.
async fn devtools_port(profile: &std::path::Path) -> Result<u16> {
    let file = profile.join("DevToolsActivePort");
    let started = Instant::now();
    loop {
        if let Some(port) = std::fs::read_to_string(&file).ok().and_then(|s| s.lines().next()?.parse().ok()) {
            return Ok(port);
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("Chromium did not open its DevTools port");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
