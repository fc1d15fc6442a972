//! A client's unidirectional stream as a stream of packets (framing in
//! `videocall_types::framing`): in order within the stream, ending at FIN.
//!
//! A stream may sit idle between packets for as long as the session lives (a long-lived
//! ordered stream does), but once a packet has begun it must be complete within
//! [`STREAM_FINISH_TIMEOUT`]. Memory per session is bounded twice: QUIC's connection window
//! bounds what waits in quinn, and a [`PendingBudget`] shared by the session's readers bounds
//! the bytes of packets begun and not yet complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::Instant;
use videocall_types::framing::{FrameDecoder, FrameError};
use wtransport::RecvStream;

use crate::limits::{PENDING_BYTES_PER_SESSION, READ_CHUNK_BYTES, STREAM_FINISH_TIMEOUT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFailure {
    /// A packet's announced length exceeds the limit.
    TooLarge,
    /// A packet was begun and not completed in time.
    NotFinished,
    /// The stream ended inside a packet.
    Truncated,
    /// The session's unfinished packets together exceed [`PENDING_BYTES_PER_SESSION`].
    TooMuchPending,
    /// Reset by the client or lost with the connection: the stream is dropped, nothing else.
    Broken,
}

impl StreamFailure {
    /// How the session is closed for this failure: close code, reason, metrics label. `None`:
    /// only the stream is dropped.
    pub(crate) fn close(self, max_packet_bytes: usize) -> Option<(u16, String, &'static str)> {
        Some(match self {
            Self::TooLarge => (1009, format!("packet exceeds the limit of {max_packet_bytes} bytes"), "oversized"),
            Self::NotFinished => (
                1008,
                format!("packet not completed within {} s", STREAM_FINISH_TIMEOUT.as_secs()),
                "stream_not_finished",
            ),
            Self::TooMuchPending => {
                (1008, format!("more than {PENDING_BYTES_PER_SESSION} bytes of unfinished packets"), "too_much_pending")
            }
            Self::Truncated => (1007, "stream ended inside a packet".into(), "malformed"),
            Self::Broken => return None,
        })
    }
}

/// Bytes of unfinished packets across one session's streams.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingBudget(Arc<AtomicUsize>);

impl PendingBudget {
    /// Counts `n` more bytes; false when that goes over the limit.
    fn add(&self, n: usize) -> bool {
        self.0.fetch_add(n, Ordering::Relaxed) + n <= PENDING_BYTES_PER_SESSION
    }

    fn release(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

struct Reader {
    stream: RecvStream,
    decoder: FrameDecoder,
    /// When the packet now buffered in part began.
    begun: Option<Instant>,
    /// Holds this reader's buffered bytes, `decoder.buffered()`.
    budget: PendingBudget,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.budget.release(self.decoder.buffered());
    }
}

impl Reader {
    async fn next(&mut self) -> Result<Option<Bytes>, StreamFailure> {
        loop {
            let held = self.decoder.buffered();
            match self.decoder.next_packet() {
                Ok(Some(packet)) => {
                    self.begun = None;
                    self.budget.release(held - self.decoder.buffered());
                    return Ok(Some(Bytes::from(packet)));
                }
                Ok(None) => {}
                Err(FrameError::TooLarge { .. }) => return Err(StreamFailure::TooLarge),
                Err(FrameError::Truncated) => return Err(StreamFailure::Truncated),
            }
            let read = self.stream.quic_stream_mut().read_chunk(READ_CHUNK_BYTES, true);
            let chunk = if self.decoder.mid_packet() {
                let begun = *self.begun.get_or_insert_with(Instant::now);
                tokio::time::timeout_at(begun + STREAM_FINISH_TIMEOUT, read)
                    .await
                    .map_err(|_| StreamFailure::NotFinished)?
            } else {
                read.await
            };
            match chunk {
                Ok(Some(chunk)) => {
                    self.decoder.push(&chunk.bytes);
                    if !self.budget.add(chunk.bytes.len()) {
                        return Err(StreamFailure::TooMuchPending);
                    }
                }
                Ok(None) => return self.decoder.finish().map(|()| None).map_err(|_| StreamFailure::Truncated),
                Err(_) => return Err(StreamFailure::Broken),
            }
        }
    }
}

/// The packets of one stream; a failure is the stream's last item.
pub(crate) fn packets(
    stream: RecvStream,
    max_packet_bytes: usize,
    budget: PendingBudget,
) -> BoxStream<'static, Result<Bytes, StreamFailure>> {
    let reader = Reader { stream, decoder: FrameDecoder::new(max_packet_bytes), begun: None, budget };
    futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next().await {
            Ok(Some(packet)) => Some((Ok(packet), Some(reader))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}
