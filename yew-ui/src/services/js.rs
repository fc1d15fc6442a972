//! Small helpers over the browser's JavaScript objects.

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// `performance.now()`: milliseconds on the page's monotonic clock.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// `performance.mark(name)`: the join timeline, visible in DevTools and to the benchmark.
pub fn mark(name: &str) {
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        let _ = p.mark(name);
    }
}

/// Milliseconds since the epoch with sub-millisecond precision (`timeOrigin + now()`): one
/// clock for every page on this machine, so glass-to-glass latency can be measured across
/// browsers.
pub fn wall_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.time_origin() + p.now())
}

pub fn set(target: &JsValue, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a plain object cannot fail.
    let _ = Reflect::set(target, &key.into(), &value.into());
}

pub fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

pub fn object() -> Object {
    Object::new()
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Awaits `promise`, rejecting with "timed out" after `ms`.
pub async fn with_timeout(promise: Promise, ms: i32, what: &str) -> Result<JsValue, JsValue> {
    let message = format!("{what} timed out after {ms} ms");
    let timeout = Promise::new(&mut |_, reject| {
        let error = JsValue::from_str(&message);
        let fire = Closure::once_into_js(move || {
            let _ = reject.call1(&JsValue::NULL, &error);
        });
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(fire.unchecked_ref(), ms);
        }
    });
    JsFuture::from(Promise::race(&js_sys::Array::of2(&promise, &timeout))).await
}

/// A JavaScript error as readable text.
pub fn describe(error: &JsValue) -> String {
    if let Some(s) = error.as_string() {
        return s;
    }
    let message = get(error, "message");
    match message.as_string() {
        Some(m) if !m.is_empty() => m,
        _ => format!("{error:?}"),
    }
}

/// Swallows a promise's rejection (fire-and-forget writes) so it is not reported as unhandled.
pub fn ignore_rejection(promise: &Promise, sink: &Closure<dyn FnMut(JsValue)>) {
    let _ = promise.catch(sink);
}

pub fn window() -> Result<web_sys::Window, JsValue> {
    web_sys::window().ok_or_else(|| JsValue::from_str("no window"))
}

/// The query parameter `name` of the page's URL.
/// `encodeURIComponent`: a value safe in a path segment or query.
pub fn encode_uri_component(value: &str) -> String {
    js_sys::encode_uri_component(value).into()
}

pub fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}
