//! The routing header of a media packet: what a forwarder may read of a frame, and nothing more.
//! The sender sets it in the `PacketWrapper` and binds it into the sealed frame's associated
//! data ([`Route::to_bytes`]), so a relay can choose what to forward but cannot relabel it.

use protobuf::EnumOrUnknown;

use crate::protos::videocall::{MediaStream, PacketWrapper};

/// Simulcast layers a video stream has at most, 0 the smallest: three sizes (for example
/// 320x180, 640x360 and 1280x720) cover a thumbnail, a tile and a speaker; a fourth would add
/// an encoder to every sender for a size between two that already look alike.
pub const MAX_LAYERS: u32 = 3;

/// The largest layer a receiver can ask for: what one that never subscribes (a recorder, a
/// snapshot) gets of every sender; a sender with fewer layers reads it as its own largest.
pub const LARGEST_LAYER: u32 = MAX_LAYERS - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Route {
    pub stream: EnumOrUnknown<MediaStream>,
    pub layer: u32,
    /// How many layers the sender has for this stream; 0 reads as 1 ([`Route::layer_count`]).
    pub layers: u32,
    pub keyframe: bool,
    pub frame: u64,
}

impl Route {
    /// A video frame's route.
    pub fn video(stream: MediaStream, layer: u32, layers: u32, keyframe: bool, frame: u64) -> Self {
        Self { stream: stream.into(), layer, layers, keyframe, frame }
    }

    /// An audio packet's route.
    pub fn audio(frame: u64) -> Self {
        Self { stream: MediaStream::STREAM_AUDIO.into(), layer: 0, layers: 1, keyframe: false, frame }
    }

    /// The route of a packet as it arrived (a relay may have changed it: it is checked when
    /// the frame opens).
    pub fn of(packet: &PacketWrapper) -> Self {
        Self {
            stream: packet.stream,
            layer: packet.layer,
            layers: packet.layers,
            keyframe: packet.keyframe,
            frame: packet.frame,
        }
    }

    pub fn apply(&self, packet: &mut PacketWrapper) {
        packet.stream = self.stream;
        packet.layer = self.layer;
        packet.layers = self.layers;
        packet.keyframe = self.keyframe;
        packet.frame = self.frame;
    }

    pub fn layer_count(&self) -> u32 {
        self.layers.clamp(1, MAX_LAYERS)
    }

    /// What the sealed frame binds: every field as sent, unknown stream values included.
    pub fn to_bytes(&self) -> [u8; 21] {
        let mut out = [0; 21];
        out[..4].copy_from_slice(&self.stream.value().to_be_bytes());
        out[4..8].copy_from_slice(&self.layer.to_be_bytes());
        out[8..12].copy_from_slice(&self.layers.to_be_bytes());
        out[12] = u8::from(self.keyframe);
        out[13..].copy_from_slice(&self.frame.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_bound_bytes() {
        let route = Route::video(MediaStream::STREAM_CAMERA, 1, 3, true, 42);
        let mut packet = PacketWrapper::new();
        route.apply(&mut packet);
        assert_eq!(Route::of(&packet), route);
        let changed = [
            Route { stream: MediaStream::STREAM_SCREEN.into(), ..route },
            Route { stream: EnumOrUnknown::from_i32(9), ..route },
            Route { layer: 0, ..route },
            Route { layers: 2, ..route },
            Route { keyframe: false, ..route },
            Route { frame: 43, ..route },
        ];
        for other in changed {
            assert_ne!(other.to_bytes(), route.to_bytes(), "{other:?}");
        }
    }
}
