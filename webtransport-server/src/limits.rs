//! Tunables of the WebTransport adapter, each with its reason.

use std::time::Duration;

/// A packet begun on a client stream must be complete this long after, or the session is
/// closed: a packet is at most 512 KiB and a live client sends it in well under a second.
pub const STREAM_FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Client streams read at once (more wait in QUIC, within its concurrent stream limit). An
/// ordered client uses one; one stream per packet rarely has more than a few unfinished.
pub const MAX_STREAMS_READ: usize = 16;

/// Bytes of packets begun and not yet complete, across a session's streams, before the
/// session is closed: four of the largest packets at once, which no honest client reaches.
pub const PENDING_BYTES_PER_SESSION: usize = 4 * videocall_types::limits::MAX_PACKET_BYTES;

/// Most bytes taken from a stream per read.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Concurrent unidirectional streams a client may open (QUIC flow control enforces it).
pub const MAX_CONCURRENT_UNI_STREAMS: u32 = 128;

/// Bytes a client may have in flight on one connection: bounds what waits in quinn. 2 MiB a
/// round trip is 160 Mbit/s at 100 ms, far above what one client sends.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 2 * 1024 * 1024;

/// Datagrams a client may send per second (heartbeats need a few); the rest are dropped.
pub const DATAGRAMS_PER_SECOND: u32 = 50;

/// Bytes quinn holds of what the relay wrote to one client, sent or not yet acknowledged. What
/// a slow receiver cannot take must wait in its relay queue, where the relay sees it (its
/// layers step down) and drops by priority: quinn's default (10 MB) would hold a minute of
/// video at a slow receiver's rate where the relay cannot see it, and 1 MiB still kept a
/// receiver throttled to 500 kbit/s on its large layer for over 30 s (`browser_bot.rs`).
/// 256 KiB a round trip is 10 Mbit/s at 200 ms, more than a receiver's share of a 25-person
/// room with simulcast (2.5–6.4 Mb/s, docs/benchmarks.md).
pub const CONNECTION_SEND_WINDOW: u64 = 256 * 1024;
