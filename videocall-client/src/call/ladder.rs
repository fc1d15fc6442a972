//! The video bitrate ladder: step down quickly when peers report loss or our send queue grows,
//! step up slowly when everything has been clean for a while.

/// What the camera's encoder is set to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    pub width: u32,
    pub height: u32,
    /// Bits per second.
    pub bitrate: u32,
    pub fps: f64,
}

const fn rung(width: u32, height: u32, bitrate: u32, fps: f64) -> Rung {
    Rung { width, height, bitrate, fps }
}

/// Best first.
pub const RUNGS: &[Rung] = &[
    rung(1280, 720, 1_500_000, 30.0),
    rung(960, 540, 900_000, 30.0),
    rung(640, 480, 600_000, 30.0),
    rung(640, 360, 350_000, 24.0),
    rung(320, 240, 150_000, 15.0),
];

/// Reported loss above this (per thousand) steps down: 3 % is where frozen video starts.
const LOSS_STEP_DOWN_PERMILLE: u32 = 30;
/// Send queue above this many bytes steps down: half a second at 600 kb/s.
const QUEUE_STEP_DOWN_BYTES: f64 = 40_000.0;
/// Send queue above this many bytes holds video: no frame is encoded until the queue drains
/// below half of it. What waits is then at most about a second at 500 kb/s, so the frames that
/// do go out are fresh, while the ladder steps down to what the link takes (the queue is past
/// [`QUEUE_STEP_DOWN_BYTES`] meanwhile). Audio is never held.
pub const QUEUE_HOLD_VIDEO_BYTES: f64 = 64_000.0;
/// Clean seconds before stepping up: a slow probe keeps oscillation away.
const CLEAN_SECONDS_TO_STEP_UP: u32 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    rung: usize,
    /// The best rung the camera allows.
    top: usize,
    clean_seconds: u32,
}

impl Ladder {
    /// Starts at the rung closest to (not above) the camera's size.
    pub fn for_camera(width: u32, height: u32) -> Self {
        let top = RUNGS.iter().position(|r| r.width <= width && r.height <= height).unwrap_or(RUNGS.len() - 1);
        Self { rung: top, top, clean_seconds: 0 }
    }

    pub fn rung(&self) -> Rung {
        RUNGS[self.rung]
    }

    /// Once a second: the worst loss any peer reported and our send queue. Returns whether the
    /// rung changed (the encoder must be reconfigured).
    pub fn tick(&mut self, worst_loss_permille: u32, queued_bytes: f64) -> bool {
        if worst_loss_permille > LOSS_STEP_DOWN_PERMILLE || queued_bytes > QUEUE_STEP_DOWN_BYTES {
            self.clean_seconds = 0;
            if self.rung + 1 < RUNGS.len() {
                self.rung += 1;
                return true;
            }
            return false;
        }
        self.clean_seconds += 1;
        if self.clean_seconds >= CLEAN_SECONDS_TO_STEP_UP && self.rung > self.top {
            self.clean_seconds = 0;
            self.rung -= 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_down_on_loss_and_back_up_slowly() {
        let mut l = Ladder::for_camera(640, 480);
        assert_eq!(l.rung().bitrate, 600_000);
        assert!(l.tick(50, 0.0));
        assert_eq!(l.rung().bitrate, 350_000);
        for _ in 0..9 {
            assert!(!l.tick(0, 0.0));
        }
        assert!(l.tick(0, 0.0));
        assert_eq!(l.rung().bitrate, 600_000);
        // Never above what the camera gives.
        for _ in 0..50 {
            l.tick(0, 0.0);
        }
        assert_eq!(l.rung().width, 640);
    }

    #[test]
    fn a_growing_queue_steps_down_to_the_floor() {
        let mut l = Ladder::for_camera(1280, 720);
        for _ in 0..10 {
            l.tick(0, 100_000.0);
        }
        assert_eq!(l.rung(), *RUNGS.last().unwrap());
    }
}
