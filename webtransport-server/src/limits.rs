//! Tunables of the WebTransport adapter, each with its reason.

use std::time::Duration;

/// A client stream must be finished this long after it was opened, or the session is closed:
/// a packet is at most 512 KiB and a live client sends it in well under a second.
pub const STREAM_FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Client streams read at once. Packets are published in the order their streams were
/// accepted, so a stalled stream holds at most this many behind it.
pub const MAX_STREAMS_IN_FLIGHT: usize = 64;

/// Concurrent unidirectional streams a client may open (QUIC flow control enforces it).
pub const MAX_CONCURRENT_UNI_STREAMS: u32 = 128;

/// Bytes a client may have in flight on one connection: bounds a connection's buffer memory.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;

/// Datagrams a client may send per second (heartbeats need a few); the rest are dropped.
pub const DATAGRAMS_PER_SECOND: u32 = 50;
