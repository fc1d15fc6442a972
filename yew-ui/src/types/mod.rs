//! Plain data and reducers: no DOM, no I/O, tested natively.

pub mod names;
pub mod room;
pub mod stats;
