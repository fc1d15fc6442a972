//! An element's width in device pixels, measured after each render and when the window
//! resizes: what a tile needs to know to ask for a layer that fills it.

use wasm_bindgen::prelude::*;
use web_sys::Element;
use yew::prelude::*;

/// The width of the element behind `node`, in device pixels (0 until it is on the page).
#[hook]
pub fn use_width(node: NodeRef) -> u32 {
    let width = use_state_eq(|| 0u32);
    let resized = use_state(|| 0u32);
    {
        let resized = resized.clone();
        use_effect_with((), move |_| {
            let listener = Closure::<dyn FnMut()>::new(move || resized.set(resized.wrapping_add(1)));
            let window = web_sys::window();
            if let Some(w) = &window {
                let _ = w.add_event_listener_with_callback("resize", listener.as_ref().unchecked_ref());
            }
            move || {
                if let Some(w) = &window {
                    let _ = w.remove_event_listener_with_callback("resize", listener.as_ref().unchecked_ref());
                }
            }
        });
    }
    {
        let width = width.clone();
        // After every render: the layout may have moved; `use_state_eq` ignores no change.
        use_effect(move || {
            let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
            if let Some(element) = node.cast::<Element>() {
                width.set((f64::from(element.client_width()) * ratio).round() as u32);
            }
        });
    }
    *width
}
