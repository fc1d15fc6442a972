//! Size limits shared by clients and relays. Each says why it is what it is.

/// Largest `PacketWrapper` a client may send, in bytes.
///
/// A 1080p VP8/H.264 keyframe is typically 50–200 KB; screen share of dense text at high
/// resolution can reach a few hundred KB. 512 KiB leaves room for those while keeping a packet,
/// after the relay stamps the header, well under NATS's default `max_payload` of 1 MiB.
/// Clients split anything larger.
pub const MAX_PACKET_BYTES: usize = 512 * 1024;

/// Room ids: 1 to 64 characters. Long enough for readable random names
/// ("brave-otter-sings-7421") and UUIDs, short enough to keep NATS subjects small.
pub const MAX_ROOM_ID_LEN: usize = 64;

/// User ids: 1 to 128 characters; an e-mail address must fit (RFC 5321 paths are at most 256,
/// but real addresses are far shorter, and the id travels in every packet header).
pub const MAX_USER_ID_LEN: usize = 128;

/// Display names: 1 to 64 characters (Unicode scalar values), enough for a full name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
