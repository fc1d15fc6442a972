//! One `PacketWrapper` per binary WebSocket message.

use js_sys::{ArrayBuffer, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::{Incoming, OnIncoming};
use crate::services::js;

/// How long opening may take before we call it failed.
const OPEN_TIMEOUT_MS: i32 = 8_000;

pub struct WsLink {
    ws: WebSocket,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl WsLink {
    pub async fn open(url: &str, on_incoming: OnIncoming) -> Result<Self, String> {
        let ws = WebSocket::new(url).map_err(|e| js::describe(&e))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let opened = Promise::new(&mut |resolve, reject| {
            ws.set_onopen(Some(&resolve));
            ws.set_onerror(Some(&reject));
        });
        let result = js::with_timeout(opened, OPEN_TIMEOUT_MS, "WebSocket").await;
        ws.set_onopen(None);
        ws.set_onerror(None);
        if let Err(e) = result {
            let _ = ws.close();
            return Err(format!("WebSocket to the relay failed: {}", js::describe(&e)));
        }
        let incoming = on_incoming.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() else { return };
            incoming(Incoming::Bytes(Uint8Array::new(&buffer).to_vec()));
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            on_incoming(Incoming::Closed { code: u32::from(event.code()), reason: event.reason() });
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self { ws, _on_message: on_message, _on_close: on_close })
    }

    pub fn send(&self, bytes: &[u8]) {
        // A send on a closing socket is dropped; the close handler reports the loss.
        let _ = self.ws.send_with_u8_array(bytes);
    }

    pub fn queued_bytes(&self) -> f64 {
        f64::from(self.ws.buffered_amount())
    }
}

impl Drop for WsLink {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}
