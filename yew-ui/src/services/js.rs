//! Small helpers over the browser's JavaScript objects.

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The page's or the worker's `performance` (both have one, each with its own `timeOrigin`).
fn performance() -> Option<web_sys::Performance> {
    let performance = get(&js_sys::global(), "performance");
    (!performance.is_undefined()).then(|| performance.unchecked_into())
}

/// `performance.now()`: milliseconds on this thread's monotonic clock (the page and the call's
/// worker each have their own origin: compare `wall_ms` across them).
pub fn now_ms() -> f64 {
    performance().map_or(0.0, |p| p.now())
}

/// `performance.mark(name)`: the join timeline, visible in DevTools and to the benchmark (a
/// worker's marks are only in the worker's timeline: the call's worker asks the page).
pub fn mark(name: &str) {
    if let Some(p) = performance() {
        let _ = p.mark(name);
    }
}

/// Milliseconds since the epoch with sub-millisecond precision (`timeOrigin + now()`): one
/// clock for every page and worker on this machine, so glass-to-glass latency can be measured
/// across browsers.
pub fn wall_ms() -> f64 {
    performance().map_or(0.0, |p| p.time_origin() + p.now())
}

/// `setTimeout(callback, ms)` on the page or in a worker.
fn set_timeout(callback: &JsValue, ms: i32) {
    if let Ok(set_timeout) = get(&js_sys::global(), "setTimeout").dyn_into::<js_sys::Function>() {
        let _ = set_timeout.call2(&JsValue::NULL, callback, &ms.into());
    }
}

/// `fetch(request)` on the page or in a worker.
pub fn fetch(request: &web_sys::Request) -> Result<Promise, JsValue> {
    let fetch: js_sys::Function = get(&js_sys::global(), "fetch").dyn_into()?;
    fetch.call1(&JsValue::NULL, request)?.dyn_into()
}

/// `crypto.subtle` on the page or in a worker.
pub fn subtle() -> Result<web_sys::SubtleCrypto, JsValue> {
    let crypto: web_sys::Crypto = get(&js_sys::global(), "crypto").dyn_into()?;
    Ok(crypto.subtle())
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
    let promise = Promise::new(&mut |resolve, _| set_timeout(&resolve, ms));
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
        set_timeout(&fire, ms);
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
