//! WebTransport: one long-lived unidirectional stream out (the relay reads length-prefixed
//! packets in order), the relay's streams in, each a sequence of length-prefixed packets.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Uint8Array;
use videocall_types::framing::{self, FrameDecoder};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    ReadableStream, ReadableStreamDefaultReader, WebTransport, WebTransportHash, WebTransportOptions, WritableStream,
    WritableStreamDefaultWriter,
};

use super::{Incoming, OnIncoming};
use crate::services::js;

/// How long the QUIC handshake may take before we fall back to WebSocket: a blocked UDP port
/// otherwise costs the user the whole QUIC idle timeout.
const READY_TIMEOUT_MS: i32 = 4_000;
/// Largest packet we accept from the relay (the relay's own limit is 512 KiB).
const MAX_PACKET: usize = 1 << 20;

pub struct WtLink {
    transport: WebTransport,
    writer: WritableStreamDefaultWriter,
    /// Set when we close on purpose, so the closed promise is not reported as a loss.
    closing: Rc<Cell<bool>>,
    /// Bytes written whose write has not completed: what waits for the QUIC stream to take it.
    /// The writer's `desiredSize` counts chunks, not bytes, and cannot say this.
    queued: Rc<Cell<f64>>,
}

impl WtLink {
    pub async fn open(url: &str, hashes: &[Vec<u8>], on_incoming: OnIncoming) -> Result<Self, String> {
        let options = WebTransportOptions::new();
        if !hashes.is_empty() {
            let list: Vec<WebTransportHash> = hashes
                .iter()
                .map(|h| {
                    let hash = WebTransportHash::new();
                    hash.set_algorithm("sha-256");
                    hash.set_value_u8_array(&Uint8Array::from(h.as_slice()));
                    hash
                })
                .collect();
            options.set_server_certificate_hashes(&list);
        }
        let transport = WebTransport::new_with_options(url, &options).map_err(|e| js::describe(&e))?;
        // Observe `closed` from the start so a failed handshake is not an unhandled rejection.
        let closed = transport.closed();
        if let Err(e) = js::with_timeout(transport.ready().unchecked_into(), READY_TIMEOUT_MS, "WebTransport").await {
            transport.close();
            let _ = JsFuture::from(closed.unchecked_into::<js_sys::Promise>()).await;
            return Err(js::describe(&e));
        }
        let stream: WritableStream = JsFuture::from(transport.create_unidirectional_stream())
            .await
            .map_err(|e| js::describe(&e))?
            .unchecked_into();
        let writer = stream.get_writer().map_err(|e| js::describe(&e))?;
        let closing = Rc::new(Cell::new(false));

        spawn_local(read_incoming(transport.incoming_unidirectional_streams(), on_incoming.clone()));
        let closing_seen = closing.clone();
        spawn_local(async move {
            let (code, reason) = match JsFuture::from(closed.unchecked_into::<js_sys::Promise>()).await {
                Ok(info) => (
                    js::get(&info, "closeCode").as_f64().unwrap_or(0.0) as u32,
                    js::get(&info, "reason").as_string().unwrap_or_default(),
                ),
                Err(e) => (0, js::describe(&e)),
            };
            if !closing_seen.get() {
                on_incoming(Incoming::Closed { code, reason });
            }
        });
        Ok(Self { transport, writer, closing, queued: Rc::default() })
    }

    pub fn send(&self, bytes: &[u8]) {
        let framed = framing::encode(bytes);
        let size = framed.len() as f64;
        let chunk = Uint8Array::from(framed.as_slice());
        let written = JsFuture::from(self.writer.write_with_chunk(&chunk));
        self.queued.set(self.queued.get() + size);
        let queued = self.queued.clone();
        // A failed write fails the session, which the closed promise reports.
        spawn_local(async move {
            let _ = written.await;
            queued.set(queued.get() - size);
        });
    }

    /// Bytes waiting to go out: a slow uplink shows here, and steps the ladder down.
    pub fn queued_bytes(&self) -> f64 {
        self.queued.get()
    }
}

impl Drop for WtLink {
    fn drop(&mut self) {
        self.closing.set(true);
        self.transport.close();
    }
}

/// Reads the relay's streams as they open, each in its own task.
async fn read_incoming(streams: ReadableStream, on_incoming: OnIncoming) {
    let reader: ReadableStreamDefaultReader = streams.get_reader().unchecked_into();
    loop {
        let Ok(result) = JsFuture::from(reader.read()).await else { return };
        if js::get(&result, "done").as_bool().unwrap_or(true) {
            return;
        }
        let stream: ReadableStream = js::get(&result, "value").unchecked_into();
        spawn_local(read_stream(stream, on_incoming.clone()));
    }
}

/// One stream's length-prefixed packets.
async fn read_stream(stream: ReadableStream, on_incoming: OnIncoming) {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut decoder = FrameDecoder::new(MAX_PACKET);
    loop {
        let Ok(result) = JsFuture::from(reader.read()).await else { return };
        if js::get(&result, "done").as_bool().unwrap_or(true) {
            return;
        }
        let chunk: Uint8Array = js::get(&result, "value").unchecked_into();
        decoder.push(&chunk.to_vec());
        loop {
            match decoder.next_packet() {
                Ok(Some(bytes)) => on_incoming(Incoming::Bytes(bytes)),
                Ok(None) => break,
                Err(_) => {
                    let _ = JsFuture::from(reader.cancel()).await;
                    return;
                }
            }
        }
    }
}
