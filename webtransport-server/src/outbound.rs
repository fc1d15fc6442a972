//! Packets to a client, framed as in `videocall_types::framing`, on the streams the client asked
//! for with `?streams=` on the session URL:
//!
//! - `single` (default): one long-lived stream for everything: fully ordered, and a loss holds
//!   back all that follows until it is repaired.
//! - `per-sender`: one long-lived stream per sending session. Each sender's packets arrive in
//!   order; a loss holds back only that sender's later packets.
//! - `per-packet`: a stream per packet. A lost packet delays only itself, so packets may arrive
//!   out of order; clients put them back in order by sequence number.
//!
//! `single` is the default because it measured best under loss (`cargo xtask bench --scenario
//! loss`, docs/benchmarks.md): a stream per packet spends QUIC stream credit on every packet,
//! and when losses keep streams open the credit runs out and everything waits, which costs more
//! than the head-of-line blocking it avoids.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use videocall_relay::wire;
use videocall_types::framing::{self, StreamMode};
use wtransport::{Connection, SendStream};

/// A per-sender stream unused this long is finished (its sender has probably left).
const IDLE_STREAM: Duration = Duration::from_secs(30);

/// The connection is gone.
pub(crate) struct Gone;

pub(crate) struct Outbound {
    connection: Connection,
    mode: StreamMode,
    /// Long-lived streams by sending session (0 for `single`), with when each was last used.
    open: HashMap<u64, (SendStream, Instant)>,
    last_sweep: Instant,
}

impl Outbound {
    pub fn new(connection: Connection, mode: StreamMode) -> Self {
        Self { connection, mode, open: HashMap::new(), last_sweep: Instant::now() }
    }

    async fn open_stream(&self) -> Result<SendStream, Gone> {
        let opening = self.connection.open_uni().await.map_err(|_| Gone)?;
        opening.await.map_err(|_| Gone)
    }

    pub async fn send(&mut self, packet: Bytes) -> Result<(), Gone> {
        let mut chunks = [Bytes::copy_from_slice(&framing::prefix(packet.len())), packet];
        let key = match self.mode {
            StreamMode::PerPacket => {
                let mut stream = self.open_stream().await?;
                let quic = stream.quic_stream_mut();
                quic.write_all_chunks(&mut chunks).await.map_err(|_| Gone)?;
                // Finish without waiting for the peer's acknowledgement.
                let _ = quic.finish();
                return Ok(());
            }
            StreamMode::PerSender => wire::scan(&chunks[1]).map_or(0, |h| h.session_id),
            StreamMode::Single => 0,
        };
        let now = Instant::now();
        if !self.open.contains_key(&key) {
            let stream = self.open_stream().await?;
            self.open.insert(key, (stream, now));
        }
        let Some((stream, used)) = self.open.get_mut(&key) else { return Err(Gone) };
        *used = now;
        stream.quic_stream_mut().write_all_chunks(&mut chunks).await.map_err(|_| Gone)?;
        if now.duration_since(self.last_sweep) > IDLE_STREAM {
            self.last_sweep = now;
            self.open.retain(|_, (stream, used)| {
                let keep = now.duration_since(*used) < IDLE_STREAM;
                if !keep {
                    let _ = stream.quic_stream_mut().finish();
                }
                keep
            });
        }
        Ok(())
    }
}
