//! The web client. `types/` is plain data (tested natively); everything else runs in the
//! browser: `app/` pages, `components/` widgets, `hooks/` intent methods over shared state,
//! `services/` all I/O (transport, media, crypto calls).

// Natively only `types/` is built (for its tests); the browser code uses the rest.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod types;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod hooks;
#[cfg(target_arch = "wasm32")]
mod services;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook_install();
    if web_sys::window().is_none() {
        // Loaded by `/call-worker.js`: the call's side, not the app.
        return services::call::worker::run();
    }
    services::js::mark("videocall:app-start");
    yew::Renderer::<app::App>::new().render();
}

/// Panics show in the console with their message rather than "unreachable".
#[cfg(target_arch = "wasm32")]
fn console_error_panic_hook_install() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
    }));
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("yew-ui runs in the browser: `cargo xtask run` builds it and serves it");
}
