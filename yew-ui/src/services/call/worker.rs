//! The call's worker: `/call-worker.js` loads this same WebAssembly in a dedicated worker, and
//! `main` comes here instead of starting the app. The page's first message starts the call's
//! task (`driver.rs`); the rest are handed to it, with the browser objects they carry.

use std::rc::Rc;

use futures_channel::mpsc::UnboundedSender;
use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, MessagePort, ReadableStream};

use super::driver::{self, Msg};
use super::wire::{self, ToWorker};
use crate::services::identity;
use crate::services::js;
use crate::services::media::draw::Frames;

/// A browser object beside the message, if it is one of type `T`.
fn part<T: JsCast>(data: &JsValue, key: &str) -> Option<T> {
    js::get(data, key).dyn_into().ok()
}

/// Runs the worker side: listens to the page (messages that came while the WebAssembly loaded
/// first, in order: `call-worker.js` kept them).
pub fn run() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let to_page = scope.clone();
    let page: driver::ToPageFn = Rc::new(move |message| {
        let _ = to_page.post_message(&wire::envelope(&message, &[]));
    });
    let mut call: Option<UnboundedSender<Msg>> = None;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let message = match wire::open::<ToWorker>(&data) {
            Ok(message) => message,
            Err(e) => return web_sys::console::error_1(&format!("from the page: {e}").into()),
        };
        let msg = match message {
            ToWorker::Start(start) => {
                let identity = match identity::from_js(&js::get(&data, "identity")) {
                    Ok(identity) => identity,
                    Err(e) => return web_sys::console::error_1(&format!("no identity: {}", js::describe(&e)).into()),
                };
                let Some(draw) = part::<MessagePort>(&data, "draw") else { return };
                call = Some(driver::start(*start, identity, Frames::new(draw), page.clone()));
                return;
            }
            ToWorker::Playback => match part::<MessagePort>(&data, "port") {
                Some(port) => Msg::Playback(port),
                None => return,
            },
            ToWorker::Attach { width, height } => Msg::Attach {
                width,
                height,
                video: part::<ReadableStream>(&data, "video"),
                audio: part::<ReadableStream>(&data, "audio"),
            },
            ToWorker::ScreenOpened => match part::<ReadableStream>(&data, "video") {
                Some(frames) => Msg::ScreenOpened(frames),
                None => return,
            },
            ToWorker::Call(command) => Msg::Page(command),
        };
        if let Some(call) = &call {
            let _ = call.unbounded_send(msg);
        }
    });
    let handler: &Function = on_message.as_ref().unchecked_ref();
    for event in Array::from(&js::get(&scope, "videocallQueued")).iter() {
        let _ = handler.call1(&JsValue::NULL, &event);
    }
    scope.set_onmessage(Some(handler));
    // The worker lives as long as the call; the page ends it.
    on_message.forget();
}
