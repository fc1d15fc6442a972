//! A remote tile's canvas, handed to the drawing worker once it is on the page (and again if
//! the page re-creates it): from then on only the worker draws into it.

use web_sys::HtmlCanvasElement;
use yew::prelude::*;

use crate::services::media::draw;

/// The `NodeRef` for the canvas with element id `id`.
#[hook]
pub fn use_tile_canvas(id: String) -> NodeRef {
    let node = use_node_ref();
    let adopted = use_mut_ref(|| None::<HtmlCanvasElement>);
    {
        let node = node.clone();
        // After every render: a canvas can be adopted once, and a re-created one must be.
        use_effect(move || {
            let Some(canvas) = node.cast::<HtmlCanvasElement>() else { return };
            if adopted.borrow().as_ref() == Some(&canvas) {
                return;
            }
            match draw::adopt(&id, &canvas) {
                Ok(()) => *adopted.borrow_mut() = Some(canvas),
                Err(e) => web_sys::console::warn_1(&format!("tile {id}: {e}").into()),
            }
        });
    }
    node
}
