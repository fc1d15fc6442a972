//! Headless Chromium driven over the Chrome DevTools Protocol: a fresh profile per browser, the
//! fake camera and microphone, and the browser killed (by pid) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

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
    chromium: Chromium,
    /// The browser's DevTools connection, the last command id, and the page's session.
    devtools: tokio::sync::Mutex<(WebSocketStream<TcpStream>, u64)>,
    page_session: String,
}

/// How to start a browser beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// Run Chromium on this host (a network namespace of the test's) rather than this one.
    pub host: Option<crate::Host>,
    /// More command-line switches (host resolver rules, say).
    pub args: Vec<String>,
    /// CA certificates (DER) the browser trusts besides the system's, as a person who installed
    /// them would: they go into the NSS database of the browser's own home directory.
    pub trusted_roots: Vec<Vec<u8>>,
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and connects to its first page.
    pub async fn launch() -> Result<Self> {
        Self::launch_with(LaunchOptions::default()).await
    }

    /// The same, with `options`.
    pub async fn launch_with(options: LaunchOptions) -> Result<Self> {
        // A profile nobody used before: a stale DevToolsActivePort would point at a dead port.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let profile = std::env::temp_dir().join(format!("chromium-profile-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile)?;
        let mut command = match &options.host {
            Some(host) => host.command(CHROMIUM),
            None => Command::new(CHROMIUM),
        };
        if !options.trusted_roots.is_empty() {
            // Chromium reads the user's trust settings from ~/.pki/nssdb.
            let home = profile.join("home");
            trust_roots(&home.join(".pki/nssdb"), &options.trusted_roots)?;
            command.env("HOME", &home);
        }
        let process = command
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
            .args(&options.args)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Chromium (apt-get install chromium)")?;
        let chromium = Chromium { process, profile };
        let (port, path) = devtools_endpoint(&chromium.profile).await?;
        let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = match &options.host {
            Some(host) => {
                let host = host.clone();
                let stream = tokio::task::spawn_blocking(move || host.connect(to)).await??;
                stream.set_nonblocking(true)?;
                TcpStream::from_std(stream)?
            }
            None => TcpStream::connect(to).await.context("connecting to DevTools")?,
        };
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}{path}"), stream)
            .await
            .context("connecting to the browser")?;
        let mut browser = Self { chromium, devtools: tokio::sync::Mutex::new((ws, 0)), page_session: String::new() };
        let targets = browser.send(None, "Target.getTargets", json!({})).await?;
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .context("no page target")?
            .to_owned();
        let attached = browser.send(None, "Target.attachToTarget", json!({"targetId": page, "flatten": true})).await?;
        browser.page_session = attached["sessionId"].as_str().context("no page session")?.to_owned();
        Ok(browser)
    }

    /// Sends one DevTools command (to the page's session, or the browser's) and waits for its
    /// answer (events in between are skipped).
    async fn send(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let mut devtools = self.devtools.lock().await;
        devtools.1 += 1;
        let id = devtools.1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        devtools.0.send(Message::Text(message.to_string().into())).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let message =
                tokio::time::timeout_at(deadline.into(), devtools.0.next()).await.context("DevTools timed out")?;
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

    /// A command to the page.
    async fn command(&self, method: &str, params: Value) -> Result<Value> {
        self.send(Some(&self.page_session), method, params).await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.command("Page.navigate", json!({"url": url})).await.map(drop)
    }

    /// Chrome's own counters of the page's main thread (DevTools `Performance.getMetrics`):
    /// `TaskDuration` (seconds busy with any task), `ScriptDuration` (running script),
    /// `LayoutDuration`, `Timestamp` (seconds on the same clock), and more.
    pub async fn performance_metrics(&self) -> Result<std::collections::BTreeMap<String, f64>> {
        self.command("Performance.enable", json!({})).await?;
        let answer = self.command("Performance.getMetrics", json!({})).await?;
        let metrics = answer["metrics"].as_array().context("no metrics")?;
        Ok(metrics.iter().filter_map(|m| Some((m["name"].as_str()?.to_owned(), m["value"].as_f64()?))).collect())
    }

    /// CPU seconds the browser has used so far: its own process and every one it started and
    /// still runs (renderers with their workers, the GPU and audio processes), from `/proc`.
    pub fn cpu_seconds(&self) -> f64 {
        process_tree_cpu_seconds(self.chromium.process.id())
    }

    /// Samples the page's main thread for `span` with V8's CPU profiler (DevTools `Profiler`)
    /// and returns the functions it was found in most, as (name, share of samples), largest
    /// first. Names of wasm functions are as the module's name section gives them.
    pub async fn cpu_profile(&self, span: Duration) -> Result<Vec<(String, f64)>> {
        self.command("Profiler.enable", json!({})).await?;
        self.command("Profiler.setSamplingInterval", json!({"interval": 200})).await?;
        self.command("Profiler.start", json!({})).await?;
        tokio::time::sleep(span).await;
        let answer = self.command("Profiler.stop", json!({})).await?;
        let nodes = answer["profile"]["nodes"].as_array().context("no profile")?;
        let mut hits: std::collections::BTreeMap<String, u64> = Default::default();
        let mut total = 0;
        for node in nodes {
            let n = node["hitCount"].as_u64().unwrap_or(0);
            let frame = &node["callFrame"];
            let name = match frame["functionName"].as_str() {
                Some("") | None => format!("(anonymous) {}", frame["url"].as_str().unwrap_or("")),
                Some(f) => f.to_owned(),
            };
            *hits.entry(name).or_default() += n;
            total += n;
        }
        let mut shares: Vec<(String, f64)> =
            hits.into_iter().map(|(name, n)| (name, n as f64 / total.max(1) as f64)).collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(shares)
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
        let _ = self.send(None, "Browser.close", json!({})).await;
    }
}

/// A new NSS database at `db` in which `roots` are trusted to issue server certificates
/// (`certutil`, Debian's libnss3-tools).
fn trust_roots(db: &std::path::Path, roots: &[Vec<u8>]) -> Result<()> {
    let certutil = crate::find_program("certutil").context("certutil is missing (apt-get install libnss3-tools)")?;
    std::fs::create_dir_all(db)?;
    let database = format!("sql:{}", db.display());
    let run = |args: &[&str]| -> Result<()> {
        let output = Command::new(&certutil).args(args).output().context("running certutil")?;
        anyhow::ensure!(output.status.success(), "certutil {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
    };
    run(&["-N", "--empty-password", "-d", &database])?;
    for (n, root) in roots.iter().enumerate() {
        let file = db.join(format!("root-{n}.der"));
        std::fs::write(&file, root)?;
        let name = format!("test root {n}");
        run(&["-A", "-t", "C,,", "-n", &name, "-i", &file.to_string_lossy(), "-d", &database])?;
    }
    Ok(())
}

/// Chromium writes the port it picked and the browser's DevTools path to `DevToolsActivePort`
/// in the profile.
async fn devtools_endpoint(profile: &std::path::Path) -> Result<(u16, String)> {
    let file = profile.join("DevToolsActivePort");
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(Ok(port)), Some(path)) = (lines.next().map(str::parse), lines.next()) {
                return Ok((port, path.to_owned()));
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("Chromium did not open its DevTools port");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// User and system CPU seconds of `root` and its descendants, as `/proc` has them now.
fn process_tree_cpu_seconds(root: u32) -> f64 {
    let processes: Vec<(u32, crate::ProcStat)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, crate::proc_stat(pid)?))
        })
        .collect();
    let mut tree = vec![root];
    let mut seconds = 0.0;
    while let Some(pid) = tree.pop() {
        for (child, stat) in &processes {
            if *child == pid {
                seconds += stat.cpu_seconds;
            }
            if stat.parent == pid {
                tree.push(*child);
            }
        }
    }
    seconds
}
