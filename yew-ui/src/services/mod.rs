//! All I/O: the server's HTTP API, identity keys through WebCrypto, the transports, media
//! capture, encoding, decoding and playback, and the call that ties them to the client core.

pub mod api;
pub mod call;
pub mod early;
pub mod identity;
pub mod js;
pub mod media;
pub mod prefs;
pub mod transport;
