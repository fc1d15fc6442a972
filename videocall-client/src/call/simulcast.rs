//! Simulcast: the camera in up to [`MAX_LAYERS`] sizes, each sealed and sent on its own, and
//! what a receiver asks the relay for.
//!
//! A sender encodes only the layers some receiver takes: the relays combine their receivers'
//! wishes into a [`LayerDemand`] (which layers, which need a keyframe), and [`SendLayers`]
//! turns it into which encoders run. A receiver tells its relay what it shows ([`View`], sent
//! as a `Subscription`): a thumbnail gets the small layer, a speaker the large one, someone
//! off screen nothing.

use videocall_types::{LARGEST_LAYER, LayerDemand, LayerWant, MAX_LAYERS, MediaStream, Subscription};

use super::VideoStream;
use super::ladder::Rung;
use crate::Millis;

/// One simulcast layer below the camera's own size: its size and bitrate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSpec {
    pub width: u32,
    pub height: u32,
    /// Bits per second.
    pub bitrate: u32,
    pub fps: f64,
}

/// The layers under the camera's top one, smallest first. 320x180 at 150 kb/s is a grid
/// thumbnail (a 25-person grid shows tiles about that size, and 23 of them cost 3.5 Mb/s);
/// 640x360 at 500 kb/s is a tile in a small grid or a laptop's pinned view. The top layer is
/// the camera's own size at the ladder's bitrate (1280x720 at 1.5 Mb/s at best).
pub const LOWER_LAYERS: [LayerSpec; 2] = [
    LayerSpec { width: 320, height: 180, bitrate: 150_000, fps: 15.0 },
    LayerSpec { width: 640, height: 360, bitrate: 500_000, fps: 30.0 },
];

impl From<Rung> for LayerSpec {
    /// The top layer at a ladder rung.
    fn from(rung: Rung) -> Self {
        Self { width: rung.width, height: rung.height, bitrate: rung.bitrate, fps: rung.fps }
    }
}

impl LayerSpec {
    /// The size this layer encodes a `width` x `height` camera frame at: its own width with
    /// the camera's aspect ratio, even sides (4:2:0 wants them), never larger than the frame.
    pub fn size_for(&self, width: u32, height: u32) -> (u32, u32) {
        if width == 0 || self.width >= width {
            return (width, height);
        }
        let even = |v: u32| (v / 2 * 2).max(2);
        let scaled = u64::from(height) * u64::from(self.width) / u64::from(width);
        (even(self.width), even(scaled as u32))
    }
}

/// A layer at `fps` takes a frame when this share of its frame interval has passed since its
/// last one: a 15 fps layer of a 30 fps camera takes every other frame even when capture jitters.
const FRAME_INTERVAL_SLACK: f64 = 0.9;

/// Whether a layer at `fps` that last took a frame at `last_us` takes the one at
/// `timestamp_us` (microseconds); the first frame, and one from before the last (a restarted
/// clock), always.
pub fn frame_due(fps: f64, last_us: Option<f64>, timestamp_us: f64) -> bool {
    let interval_us = 1e6 / fps.max(1.0) * FRAME_INTERVAL_SLACK;
    last_us.is_none_or(|last| timestamp_us < last || timestamp_us - last >= interval_us)
}

/// The lower layers a camera sending `width` x `height` at the top gets: those narrower than
/// it, smallest first. A 720p camera sends three layers, a 640x480 one two, a 320x240 one one.
pub fn lower_layers(width: u32) -> Vec<LayerSpec> {
    LOWER_LAYERS.iter().copied().filter(|l| l.width < width).take(MAX_LAYERS as usize - 1).collect()
}

/// A sender answers keyframe demands for one layer at most this often: a hostile relay (or
/// many relays at once) cannot make it send keyframes back to back. Relays ask at most once a
/// second per layer; 250 ms lets a second relay's request through soon after the first's.
pub const DEMANDED_KEYFRAME_INTERVAL_MS: Millis = 250;

/// What one of our video streams sends: which layers run, per the relays' demand.
#[derive(Debug, Clone, PartialEq)]
pub struct SendLayers {
    count: u32,
    /// Bit n: layer n is encoded and sent.
    active: u32,
    last_keyframe: [Option<Millis>; MAX_LAYERS as usize],
}

impl SendLayers {
    /// `count` layers (1 to [`MAX_LAYERS`]); until a relay says otherwise only the top one
    /// runs, which is what a call without simulcast sends.
    pub fn new(count: u32) -> Self {
        let count = count.clamp(1, MAX_LAYERS);
        Self { count, active: 1 << (count - 1), last_keyframe: [None; MAX_LAYERS as usize] }
    }

    /// A new relay session knows nothing of what we sent before: back to the top layer alone.
    /// Returns whether the active layers changed.
    pub fn reset(&mut self) -> bool {
        let fresh = Self::new(self.count);
        std::mem::replace(self, fresh).active != self.active
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn active(&self) -> u32 {
        self.active
    }

    pub fn is_active(&self, layer: u32) -> bool {
        self.active & (1 << layer) != 0
    }

    /// Applies a relay's demand for this stream: returns whether the active layers changed,
    /// and the layers to make a keyframe on now. A demand for a layer above ours is for our
    /// top one (a receiver asked for more than we have). A demand for no layer at all leaves
    /// the stream as it is: a relay that has not seen our video yet (a receiver on another
    /// relay, or a relay we just reconnected to) could never ask for it again.
    pub fn demand(&mut self, now: Millis, layers: u32, keyframes: u32) -> (bool, Vec<u32>) {
        let (layers, keyframes) = (self.fold(layers), self.fold(keyframes));
        let layers = if layers == 0 { self.active } else { layers };
        let changed = layers != self.active;
        self.active = layers;
        let mut due = Vec::new();
        for layer in 0..self.count {
            if keyframes & (1 << layer) == 0 || !self.is_active(layer) {
                continue;
            }
            let last = &mut self.last_keyframe[layer as usize];
            if last.is_some_and(|t| now < t + DEMANDED_KEYFRAME_INTERVAL_MS) {
                continue;
            }
            *last = Some(now);
            due.push(layer);
        }
        (changed, due)
    }

    /// The stream now has `count` layers: the ladder moved the top layer to a size a lower
    /// layer had (that one goes: it would encode the same size twice), or back above it (it
    /// returns, paused until a relay asks for it). Lower layers that stay keep their state;
    /// the top stays the top and runs if it or a layer merged into it ran.
    pub fn resize(&mut self, count: u32) {
        let count = count.clamp(1, MAX_LAYERS);
        let kept = count.min(self.count) - 1;
        let lower = self.active & ((1 << kept) - 1);
        let top = u32::from(self.active >> kept != 0) << (count - 1);
        self.count = count;
        self.active = lower | top;
        for last in &mut self.last_keyframe[kept as usize..] {
            *last = None;
        }
    }

    fn fold(&self, mask: u32) -> u32 {
        let top = self.count - 1;
        let own = mask & ((1 << self.count) - 1);
        if mask >> self.count != 0 { own | (1 << top) } else { own }
    }
}

/// The demand for `stream` in a relay's packet: (layers, keyframes). A stream the demand does
/// not name is wanted by nobody.
pub fn demand_for(demand: &LayerDemand, stream: VideoStream) -> (u32, u32) {
    let kind = stream_kind(stream);
    demand
        .streams
        .iter()
        .filter(|s| s.stream.enum_value() == Ok(kind))
        .fold((0, 0), |(l, k), s| (l | s.layers, k | s.keyframes))
}

pub fn stream_kind(stream: VideoStream) -> MediaStream {
    match stream {
        VideoStream::Camera => MediaStream::STREAM_CAMERA,
        VideoStream::Screen => MediaStream::STREAM_SCREEN,
    }
}

/// How much of one sender's stream a receiver wants.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Nothing (not on screen).
    Off,
    /// Up to this layer (0 the smallest); the sender's largest if it has fewer.
    UpTo(u32),
}

impl Want {
    pub const LARGEST: Want = Want::UpTo(LARGEST_LAYER);
    pub const SMALLEST: Want = Want::UpTo(0);
}

/// What a receiver shows, for its relay: per sender and stream, and for everyone else.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub wants: Vec<(u64, VideoStream, Want)>,
    pub camera_default: Want,
    pub screen_default: Want,
}

impl Default for View {
    /// Everything at its largest: what a client that never subscribes gets.
    fn default() -> Self {
        Self { wants: Vec::new(), camera_default: Want::LARGEST, screen_default: Want::LARGEST }
    }
}

impl View {
    pub fn to_subscription(&self) -> Subscription {
        let want = |session: u64, stream: VideoStream, want: Want| {
            let mut w = LayerWant::new();
            w.session = session;
            w.stream = stream_kind(stream).into();
            match want {
                Want::Off => w.off = true,
                Want::UpTo(layer) => w.max_layer = layer.min(MAX_LAYERS - 1),
            }
            w
        };
        let mut subscription = Subscription::new();
        subscription.wants = self.wants.iter().map(|(session, stream, w)| want(*session, *stream, *w)).collect();
        subscription.defaults =
            vec![want(0, VideoStream::Camera, self.camera_default), want(0, VideoStream::Screen, self.screen_default)];
        subscription
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_keeps_the_cameras_aspect_and_never_grows() {
        let thumb = LOWER_LAYERS[0];
        assert_eq!(thumb.size_for(1280, 720), (320, 180));
        assert_eq!(thumb.size_for(640, 480), (320, 240));
        assert_eq!(thumb.size_for(320, 240), (320, 240), "as large as the frame: the frame");
        assert_eq!(thumb.size_for(1366, 768), (320, 178), "even sides");
    }

    #[test]
    fn a_slower_layer_takes_every_other_frame() {
        let mut last = None;
        let mut taken = 0;
        for t in (0..8).map(|i| f64::from(i) * 33_333.0) {
            if frame_due(15.0, last, t) {
                last = Some(t);
                taken += 1;
            }
        }
        assert_eq!(taken, 4);
        assert!(frame_due(30.0, Some(33_333.0), 66_666.0));
        assert!(frame_due(15.0, Some(900_000.0), 0.0), "a restarted clock");
    }

    #[test]
    fn cameras_get_the_layers_that_fit_under_them() {
        assert_eq!(lower_layers(1280).len(), 2);
        assert_eq!(lower_layers(640), vec![LOWER_LAYERS[0]]);
        assert!(lower_layers(320).is_empty());
    }

    #[test]
    fn demand_runs_the_wanted_layers_and_throttles_keyframes() {
        let mut send = SendLayers::new(3);
        assert_eq!(send.active(), 0b100, "before any demand: the top layer, as without simulcast");
        assert_eq!(send.demand(0, 0b001, 0b001), (true, vec![0]));
        assert_eq!(send.active(), 0b001);
        assert_eq!(send.demand(100, 0b001, 0b001), (false, vec![]), "throttled");
        assert_eq!(send.demand(300, 0b011, 0b011), (true, vec![0, 1]));
        assert_eq!(send.demand(300, 0, 0), (false, vec![]), "no layer at all: nothing stops");
        assert_eq!(send.active(), 0b011);
        assert_eq!(send.demand(400, 0b001, 0b110), (true, vec![]), "no keyframe on a paused layer");
    }

    #[test]
    fn a_resized_stream_keeps_its_lower_layers_and_its_top() {
        let mut send = SendLayers::new(3);
        send.demand(0, 0b011, 0);
        send.resize(2);
        assert_eq!((send.count(), send.active()), (2, 0b11), "the middle merged into the top, which runs for it");
        send.resize(1);
        assert_eq!(send.active(), 0b1);
        send.resize(3);
        assert_eq!((send.count(), send.active()), (3, 0b100), "the returning layers wait for a demand");

        let mut thumbnails = SendLayers::new(3);
        thumbnails.demand(0, 0b001, 0);
        thumbnails.resize(2);
        assert_eq!(thumbnails.active(), 0b01, "nobody took the layers that merged");
        thumbnails.resize(3);
        assert_eq!(thumbnails.active(), 0b001);
    }

    #[test]
    fn demand_beyond_our_layers_is_for_our_top_one() {
        let mut one = SendLayers::new(1);
        assert_eq!(one.demand(0, 0b100, 0b100), (false, vec![0]));
        let mut two = SendLayers::new(2);
        assert_eq!(two.demand(0, 0b101, 0), (true, vec![]));
        assert_eq!(two.active(), 0b11);
    }

    #[test]
    fn a_view_names_every_stream_kind() {
        let view = View {
            wants: vec![(7, VideoStream::Camera, Want::Off), (8, VideoStream::Camera, Want::UpTo(9))],
            camera_default: Want::SMALLEST,
            screen_default: Want::LARGEST,
        };
        let s = view.to_subscription();
        assert!(s.wants[0].off);
        assert_eq!((s.wants[1].session, s.wants[1].max_layer), (8, MAX_LAYERS - 1));
        assert_eq!(s.defaults.len(), 2);
        assert_eq!(s.defaults[0].stream.enum_value(), Ok(MediaStream::STREAM_CAMERA));
    }
}
