//! Drawing off the page's thread: one worker (`/draw-worker.js`) owns every remote tile's
//! canvas (handed over with `transferControlToOffscreen`) and draws the decoded frames the page
//! transfers to it. Measured with software compositing, drawing was half of the page's main
//! thread with five incoming streams (docs/benchmarks.md); decoding itself runs in the
//! browser's media threads already.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::prelude::*;
use web_sys::{HtmlCanvasElement, MessageEvent, VideoFrame, Worker};

use crate::services::js;

pub struct Drawer {
    worker: Worker,
    /// Frames drawn per canvas id, as the worker last said.
    drawn: Rc<RefCell<HashMap<String, u64>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Drawer {
    pub fn start() -> Result<Rc<Self>, String> {
        let worker = Worker::new("/draw-worker.js").map_err(|e| js::describe(&e))?;
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
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Ok(Rc::new(Self { worker, drawn, _on_message: on_message }))
    }

    /// Frames the worker drew into canvas `id`.
    pub fn drawn(&self, id: &str) -> u64 {
        self.drawn.borrow().get(id).copied().unwrap_or(0)
    }

    /// Hands the tile's canvas to the worker: from now on only the worker draws into it.
    fn adopt(&self, id: &str, canvas: &HtmlCanvasElement) -> Result<(), JsValue> {
        let offscreen = canvas.transfer_control_to_offscreen()?;
        let message = js::object();
        js::set(&message, "id", id);
        js::set(&message, "canvas", &offscreen);
        self.worker.post_message_with_transfer(&message, &Array::of1(&offscreen))
    }

    fn forget(&self, id: &str) {
        let message = js::object();
        js::set(&message, "forget", id);
        let _ = self.worker.post_message(&message);
        self.drawn.borrow_mut().remove(id);
    }
}

/// One tile: the canvas with element id `id`, adopted by the worker once (and again if the page
/// re-creates it).
pub struct Tile {
    id: String,
    drawer: Rc<Drawer>,
    canvas: Option<HtmlCanvasElement>,
}

impl Tile {
    pub fn new(id: String, drawer: Rc<Drawer>) -> Self {
        Self { id, drawer, canvas: None }
    }

    /// Transfers `frame` to the worker to draw (and close); closes it here when there is no
    /// canvas to draw it in yet.
    pub fn draw(&mut self, frame: VideoFrame) {
        if self.canvas.as_ref().is_none_or(|c| !c.is_connected()) {
            self.canvas = find(&self.id).filter(|c| self.drawer.adopt(&self.id, c).is_ok());
        }
        if self.canvas.is_none() {
            return frame.close();
        }
        let message = js::object();
        js::set(&message, "id", &self.id);
        js::set(&message, "frame", &frame);
        if self.drawer.worker.post_message_with_transfer(&message, &Array::of1(&frame)).is_err() {
            frame.close();
        }
    }
}

impl Drop for Tile {
    fn drop(&mut self) {
        self.drawer.forget(&self.id);
    }
}

fn find(id: &str) -> Option<HtmlCanvasElement> {
    web_sys::window()?.document()?.get_element_by_id(id)?.dyn_into::<HtmlCanvasElement>().ok()
}
