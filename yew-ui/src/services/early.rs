//! What `index.html` started before the WebAssembly loaded (`window.videocallEarly`): the
//! identity key generation and, on a room page, the default camera and microphone. Each is taken
//! once; whoever finds it gone does the work itself.

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::js;

/// Awaits and takes the early promise `name`; `None` if there was none or it failed.
pub async fn take(name: &str) -> Option<JsValue> {
    let window: JsValue = js::window().ok()?.into();
    let early = js::get(&window, "videocallEarly");
    if early.is_undefined() || early.is_null() {
        return None;
    }
    let promise = js::get(&early, name).dyn_into::<Promise>().ok()?;
    js::set(&early, name, JsValue::NULL);
    JsFuture::from(promise).await.ok()
}
