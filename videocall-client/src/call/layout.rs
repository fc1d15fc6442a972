//! What a receiver shows, and so what it asks its relay for: the grid of people paginated, or a
//! speaker view (one large tile, the others as thumbnails), a pinned person, and the active
//! speaker found from the audio we decrypt. A [`Stage`] turns the room's sessions and the sizes
//! the page measured into a [`Layout`] (who is on screen, where) and a [`View`] (which layer of
//! whom): a thumbnail gets the small layer, the large tile the large one, someone off the page
//! nothing. The page draws the layout; the engine sends the view.

use super::VideoStream;
use super::simulcast::{LOWER_LAYERS, View, Want};
use videocall_types::LARGEST_LAYER;

/// Other people per grid page: with ourselves, a 4x4 grid. More tiles than that on a laptop's
/// screen are too small to tell anyone apart, and each one costs a decoder.
pub const GRID_PAGE: usize = 15;
/// Thumbnails per page beside the large tile in the speaker view (a strip of them).
pub const STRIP_PAGE: usize = 6;
/// A layer is sharp enough for a tile up to this many times its width: a slight upscale is
/// invisible, while the next layer up costs three times the bits.
const UPSCALE: f64 = 1.25;

/// The smallest layer that fills a tile `width` device pixels wide: the layer widths are the
/// ones senders encode ([`LOWER_LAYERS`], the camera's own size on top). A sender with fewer
/// layers sends its largest in their place.
pub fn want_for_width(width: u32) -> Want {
    let layer = LOWER_LAYERS.iter().position(|l| f64::from(width) <= f64::from(l.width) * UPSCALE);
    Want::UpTo(layer.map_or(LARGEST_LAYER, |l| l as u32))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Everyone in equal tiles, a page at a time.
    #[default]
    Grid,
    /// The speaker (or the pinned person) large, the others as a strip of thumbnails.
    Speaker,
}

/// Where everyone is on screen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// The person in the large tile (pinned, or the speaker in the speaker view).
    pub main: Option<u64>,
    /// The tiles of this page, in order.
    pub tiles: Vec<u64>,
    /// This page (from 0) of `pages`.
    pub page: usize,
    pub pages: usize,
}

impl Layout {
    /// Whether `session` is on screen.
    pub fn shows(&self, session: u64) -> bool {
        self.main == Some(session) || self.tiles.contains(&session)
    }
}

/// The receiver's choices (mode, pin, page) and the active speaker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stage {
    mode: Mode,
    pinned: Option<u64>,
    page: usize,
    speaker: Option<u64>,
}

impl Stage {
    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn pinned(&self) -> Option<u64> {
        self.pinned
    }

    pub fn speaker(&self) -> Option<u64> {
        self.speaker
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.page = 0;
    }

    /// Pins `session` in the large tile (again: unpins).
    pub fn toggle_pin(&mut self, session: u64) {
        self.pinned = if self.pinned == Some(session) { None } else { Some(session) };
    }

    /// Shows page `page` (from 0; past the last page, the last).
    pub fn set_page(&mut self, page: usize) {
        self.page = page;
    }

    /// Who speaks now, from the levels of the audio we decoded (`speaking`: those above the
    /// speaking threshold, loudest first). The speaker stays until they stop and someone else
    /// speaks: a pause for breath does not move the large tile, and silence keeps the last one.
    pub fn heard(&mut self, speaking: &[u64]) {
        if self.speaker.is_some_and(|s| speaking.contains(&s)) {
            return;
        }
        if let Some(first) = speaking.first() {
            self.speaker = Some(*first);
        }
    }

    /// Someone left: they are neither pinned nor the speaker any more.
    pub fn forget(&mut self, session: u64) {
        if self.pinned == Some(session) {
            self.pinned = None;
        }
        if self.speaker == Some(session) {
            self.speaker = None;
        }
    }

    /// The layout of `sessions` (everyone else in the room, in the page's order).
    pub fn layout(&self, sessions: &[u64]) -> Layout {
        let present = |s: Option<u64>| s.filter(|s| sessions.contains(s));
        let main = match self.mode {
            Mode::Grid => present(self.pinned),
            Mode::Speaker => present(self.pinned).or(present(self.speaker)).or(sessions.first().copied()),
        };
        let rest: Vec<u64> = sessions.iter().copied().filter(|s| Some(*s) != main).collect();
        let per_page = if main.is_some() { STRIP_PAGE } else { GRID_PAGE };
        let pages = rest.len().div_ceil(per_page).max(1);
        let page = self.page.min(pages - 1);
        let tiles = rest.into_iter().skip(page * per_page).take(per_page).collect();
        Layout { main, tiles, page, pages }
    }

    /// What to ask the relay for: the large tile's layer for the main person, the tiles'
    /// for those on the page, nothing for anyone else (people who join get nothing until the
    /// page shows them, which is at once). Screens shared are shown large.
    pub fn view(layout: &Layout, tile_width: u32, main_width: u32) -> View {
        let tile = want_for_width(tile_width);
        let mut wants: Vec<(u64, VideoStream, Want)> =
            layout.tiles.iter().map(|s| (*s, VideoStream::Camera, tile)).collect();
        if let Some(main) = layout.main {
            wants.push((main, VideoStream::Camera, want_for_width(main_width)));
        }
        View { wants, camera_default: Want::Off, screen_default: Want::LARGEST }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_gets_the_smallest_layer_that_fills_it() {
        assert_eq!(want_for_width(180), Want::UpTo(0));
        assert_eq!(want_for_width(400), Want::UpTo(0), "a slight upscale");
        assert_eq!(want_for_width(500), Want::UpTo(1));
        assert_eq!(want_for_width(1200), Want::LARGEST);
    }

    #[test]
    fn the_grid_pages_and_the_view_asks_for_the_page_only() {
        let sessions: Vec<u64> = (1..=24).collect();
        let mut stage = Stage::default();
        let first = stage.layout(&sessions);
        assert_eq!((first.tiles.len(), first.pages, first.main), (GRID_PAGE, 2, None));
        let view = Stage::view(&first, 300, 0);
        assert_eq!(view.wants.len(), GRID_PAGE);
        assert!(view.wants.iter().all(|(_, _, w)| *w == Want::UpTo(0)));
        assert_eq!(view.camera_default, Want::Off, "the second page's people cost nothing");
        stage.set_page(5);
        let second = stage.layout(&sessions);
        assert_eq!(
            (second.page, second.tiles.first(), second.tiles.len()),
            (1, Some(&16), 9),
            "past the end: the last"
        );
        stage.set_page(second.page - 1);
        assert_eq!(stage.layout(&sessions).page, 0);
    }

    #[test]
    fn pinning_makes_one_large_and_the_rest_a_strip() {
        let sessions = [4, 5, 6, 7, 8];
        let mut stage = Stage::default();
        stage.toggle_pin(6);
        let layout = stage.layout(&sessions);
        assert_eq!(layout.main, Some(6));
        assert_eq!(layout.tiles, vec![4, 5, 7, 8]);
        let view = Stage::view(&layout, 200, 700);
        assert!(view.wants.contains(&(6, VideoStream::Camera, Want::UpTo(1))));
        assert!(view.wants.contains(&(4, VideoStream::Camera, Want::UpTo(0))));
        stage.toggle_pin(6);
        assert_eq!(stage.layout(&sessions).main, None);
        stage.toggle_pin(9);
        assert_eq!(stage.layout(&sessions).main, None, "someone not here is not shown");
    }

    #[test]
    fn the_speaker_view_follows_who_speaks_with_a_pin_first() {
        let sessions = [1, 2, 3];
        let mut stage = Stage::default();
        stage.set_mode(Mode::Speaker);
        assert_eq!(stage.layout(&sessions).main, Some(1), "before anyone speaks: the first");
        stage.heard(&[2]);
        assert_eq!(stage.layout(&sessions).main, Some(2));
        stage.heard(&[3, 2]);
        assert_eq!(stage.speaker(), Some(2), "the speaker keeps the tile while still speaking");
        stage.heard(&[]);
        assert_eq!(stage.speaker(), Some(2), "silence keeps the last speaker");
        stage.heard(&[3]);
        assert_eq!(stage.layout(&sessions).main, Some(3));
        stage.toggle_pin(1);
        assert_eq!(stage.layout(&sessions).main, Some(1), "a pin wins over the speaker");
        stage.forget(1);
        assert_eq!(stage.layout(&sessions).main, Some(3));
    }
}
