//! Tunables of the WebTransport adapter, each with its reason.

use std::time::Duration;

/// A packet begun on a client stream must be complete this long after, or the session is
/// closed: a packet is at most 512 KiB and a live client sends it in well under a second.
pub const STREAM_FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Client streams read at once (more wait in QUIC, within its concurrent stream limit).
pub const MAX_STREAMS_READ: usize = 64;

/// Most bytes taken from a stream per read.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Concurrent unidirectional streams a client may open (QUIC flow control enforces it).
pub const MAX_CONCURRENT_UNI_STREAMS: u32 = 128;

/// Bytes a client may have in flight on one connection: bounds a connection's buffer memory.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;

/// Datagrams a client may send per second (heartbeats need a few); the rest are dropped.
pub const DATAGRAMS_PER_SECOND: u32 = 50;
