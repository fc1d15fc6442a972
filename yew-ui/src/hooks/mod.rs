//! Hooks that own state and expose intent methods; components call these, never services.

mod use_admission;
mod use_host_panel;
mod use_identity;
mod use_local_media;
mod use_room;
mod use_tile_canvas;
mod use_width;

pub use use_admission::{Admission, JoinChoice, use_admission};
pub use use_host_panel::use_host_panel;
pub use use_identity::{IdentitySlot, use_identity};
pub use use_local_media::{LocalMedia, use_local_media};
pub use use_room::{RoomHandle, use_room};
pub use use_tile_canvas::use_tile_canvas;
pub use use_width::use_width;
