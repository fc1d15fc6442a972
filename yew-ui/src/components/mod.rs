//! Reusable widgets. They render what they are given and report intent through callbacks.

mod chat;
mod controls;
mod diagnostics;
mod host_panel;
mod level_meter;
mod participants;
mod status;
mod tile;

pub use chat::ChatPanel;
pub use controls::Controls;
pub use diagnostics::Diagnostics;
pub use host_panel::HostPanel;
pub use level_meter::LevelMeter;
pub use participants::ParticipantList;
pub use status::ConnectionStatus;
pub use tile::{PeerTile, ScreenTile, SelfTile};
