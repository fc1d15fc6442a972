//! What the page and the call's worker say to each other. Each message is one JavaScript object:
//! `m`, the message as JSON, and beside it the browser objects it hands over (ports, frame
//! streams, keys), transferred rather than copied where they can be.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use videocall_client::call::{Update, View};
use wasm_bindgen::JsValue;

use crate::services::js;
use crate::services::transport::Preference;
use crate::types::stats::PeerStats;

/// Everything the worker needs to run the call (with `identity` and `draw` beside it: the
/// identity's keys, the port to the drawing worker).
#[derive(Debug, Serialize, Deserialize)]
pub struct Start {
    pub room: String,
    pub meeting: Option<String>,
    pub display_name: String,
    pub preference: Preference,
    pub audio_on: bool,
    pub video_on: bool,
    /// `?codec=` in the page's link.
    pub codec: Option<String>,
    /// `ws://host` or `wss://host`: the page's own server.
    pub websocket_origin: String,
    /// The page's `performance.timeOrigin`: the worker reports times on the page's clock.
    pub page_origin_ms: f64,
    /// When the user pressed join, on the page's clock.
    pub joined_at_ms: f64,
}

/// The page to the worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    Start(Box<Start>),
    /// Playback is ready (`port` beside: to the mixing worklet).
    Playback,
    /// Our camera and microphone are open (`video` and `audio` beside: their frames), the
    /// camera at this size.
    Attach {
        width: u32,
        height: u32,
    },
    /// A screen is shared (`video` beside: its frames).
    ScreenOpened,
    /// What the user asks of the call: nothing beside it.
    Call(CallCommand),
}

/// The page's commands for the call's task that carry no browser objects.
#[derive(Debug, Serialize, Deserialize)]
pub enum CallCommand {
    SetAudio(bool),
    SetVideo(bool),
    /// The share ended (the user's button or the browser's own "Stop sharing").
    ScreenEnded,
    Chat(String),
    AcceptKeyChange(u64),
    Leave,
    /// `window.videocallStats()`: answer with `ToPage::StatsJson` and this id.
    Stats(u32),
    /// What the page shows now: the layers to ask our relay for.
    SetView(View),
}

/// The worker to the page.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToPage {
    Update(Update),
    /// Once a second: each peer's statistics and whether they speak.
    Stats(Vec<(u64, PeerStats, bool)>),
    /// Our camera track on or off (the user's button or the host).
    Camera {
        on: bool,
    },
    /// The ladder's rung: ask the camera for this size and rate.
    Constraints {
        width: u32,
        height: u32,
        fps: f64,
    },
    /// Screen encoding could not start: stop the share.
    StopScreen,
    /// A step of the join timeline for `performance.mark` on the page.
    Mark(String),
    StatsJson {
        id: u32,
        json: String,
    },
    /// The call is over: capture stops, the worker ends.
    Ended,
}

/// The message object: `message` as JSON under `m`, `parts` beside it.
pub fn envelope<T: Serialize>(message: &T, parts: &[(&str, &JsValue)]) -> js_sys::Object {
    let object = js::object();
    // Serialising our own enums of strings and numbers cannot fail.
    js::set(&object, "m", serde_json::to_string(message).unwrap_or_default());
    for (key, value) in parts {
        js::set(&object, key, *value);
    }
    object
}

/// The message in `data`, or why not.
pub fn open<T: DeserializeOwned>(data: &JsValue) -> Result<T, String> {
    let text = js::get(data, "m").as_string().ok_or("no message")?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}
