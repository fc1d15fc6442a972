//! Drawing off the page's thread: one worker (`/draw-worker.js`) owns every remote tile's
//! canvas and draws the decoded frames transferred to it. Measured with software compositing,
//! drawing was half of the page's main thread with five incoming streams (docs/benchmarks.md).
//!
//! Two sides. The page adopts each tile's canvas (`adopt`: `transferControlToOffscreen`, from
//! the tile's hook) and opens a channel from the call's worker to the drawing worker
//! (`channel`). The call's worker holds the other end ([`Frames`]): its decoders transfer each
//! `VideoFrame` down it, and the drawing worker answers with frames drawn per tile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::prelude::*;
use web_sys::{HtmlCanvasElement, MessageChannel, MessageEvent, MessagePort, VideoFrame, Worker};

use crate::services::js;

thread_local! {
    /// The page's one drawing worker, started with the first tile or call.
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

fn with_worker<T>(f: impl FnOnce(&Worker) -> Result<T, JsValue>) -> Result<T, String> {
    WORKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Worker::new("/draw-worker.js").map_err(|e| js::describe(&e))?);
        }
        let worker = slot.as_ref().ok_or("no drawing worker")?;
        f(worker).map_err(|e| js::describe(&e))
    })
}

/// Hands the tile canvas `canvas` (element id `id`) to the drawing worker: from now on only the
/// worker draws into it. A canvas the page re-created for the same tile replaces the old one.
pub fn adopt(id: &str, canvas: &HtmlCanvasElement) -> Result<(), String> {
    with_worker(|worker| {
        let offscreen = canvas.transfer_control_to_offscreen()?;
        let message = js::object();
        js::set(&message, "id", id);
        js::set(&message, "canvas", &offscreen);
        worker.post_message_with_transfer(&message, &Array::of1(&offscreen))
    })
}

/// A new channel to the drawing worker for a call's worker: the port to hand it. The drawing
/// worker takes frames from the newest channel.
pub fn channel() -> Result<MessagePort, String> {
    with_worker(|worker| {
        let channel = MessageChannel::new()?;
        let message = js::object();
        js::set(&message, "port", channel.port1());
        worker.post_message_with_transfer(&message, &Array::of1(&channel.port1()))?;
        Ok(channel.port2())
    })
}

/// The call's worker's end: frames to draw, and what was drawn.
pub struct Frames {
    port: MessagePort,
    /// Frames drawn per canvas id, as the drawing worker last said.
    drawn: Rc<RefCell<HashMap<String, u64>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Frames {
    pub fn new(port: MessagePort) -> Rc<Self> {
        let drawn: Rc<RefCell<HashMap<String, u64>>> = Rc::default();
        let counts = drawn.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let report = event.data();
            let mut counts = counts.borrow_mut();
            for key in js_sys::Object::keys(report.unchecked_ref::<js_sys::Object>()).iter() {
                let Some(id) = key.as_string() else { continue };
                if let Some(n) = js::get(&report, &id).as_f64() {
                    counts.insert(id, n as u64);
                }
            }
        });
        port.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Rc::new(Self { port, drawn, _on_message: on_message })
    }

    /// Frames the worker drew into canvas `id`.
    pub fn drawn(&self, id: &str) -> u64 {
        self.drawn.borrow().get(id).copied().unwrap_or(0)
    }

    fn forget(&self, id: &str) {
        let message = js::object();
        js::set(&message, "forget", id);
        let _ = self.port.post_message(&message);
        self.drawn.borrow_mut().remove(id);
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.port.set_onmessage(None);
        self.port.close();
    }
}

/// One tile's frames: transferred to the drawing worker, which draws them if the page has
/// adopted the tile's canvas and closes them either way.
pub struct Tile {
    id: String,
    frames: Rc<Frames>,
}

impl Tile {
    pub fn new(id: String, frames: Rc<Frames>) -> Self {
        Self { id, frames }
    }

    pub fn draw(&mut self, frame: VideoFrame) {
        let message = js::object();
        js::set(&message, "id", &self.id);
        js::set(&message, "frame", &frame);
        if self.frames.port.post_message_with_transferable(&message, &Array::of1(&frame)).is_err() {
            frame.close();
        }
    }
}

impl Drop for Tile {
    fn drop(&mut self) {
        self.frames.forget(&self.id);
    }
}
