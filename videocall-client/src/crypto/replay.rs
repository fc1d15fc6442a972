//! Which sequences a key has already opened: a sliding window behind the newest.

use crate::tunables::REPLAY_WINDOW;

const WORDS: usize = (REPLAY_WINDOW as usize).div_ceil(64);

/// Accepts each sequence once; refuses anything more than [`REPLAY_WINDOW`] behind the newest.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// One past the newest sequence accepted (0: none yet).
    top: u64,
    /// Bit `i` set: sequence `top - 1 - i` was accepted.
    seen: [u64; WORDS],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fresh,
    Replayed,
    TooOld,
}

impl ReplayWindow {
    /// Whether `sequence` would be accepted, without recording it.
    pub fn check(&self, sequence: u64) -> Verdict {
        if sequence >= self.top {
            return Verdict::Fresh;
        }
        let behind = self.top - 1 - sequence;
        if behind >= REPLAY_WINDOW {
            return Verdict::TooOld;
        }
        if self.bit(behind) { Verdict::Replayed } else { Verdict::Fresh }
    }

    /// Records `sequence`; call only after [`check`](Self::check) said `Fresh` and the frame
    /// authenticated, so forged frames cannot move the window.
    pub fn accept(&mut self, sequence: u64) {
        if sequence >= self.top {
            let shift = sequence + 1 - self.top;
            self.shift(shift);
            self.top = sequence + 1;
        }
        let behind = self.top - 1 - sequence;
        if behind < REPLAY_WINDOW {
            self.seen[(behind / 64) as usize] |= 1 << (behind % 64);
        }
    }

    fn bit(&self, behind: u64) -> bool {
        self.seen[(behind / 64) as usize] & (1 << (behind % 64)) != 0
    }

    /// Moves every recorded bit `by` places further behind.
    fn shift(&mut self, by: u64) {
        if by >= REPLAY_WINDOW {
            self.seen = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        for i in (0..WORDS).rev() {
            let from = i.checked_sub(words);
            let high = from.map_or(0, |j| self.seen[j]);
            let low = from.and_then(|j| j.checked_sub(1)).map_or(0, |j| self.seen[j]);
            self.seen[i] = if bits == 0 { high } else { (high << bits) | (low >> (64 - bits)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(w: &mut ReplayWindow, s: u64) -> Verdict {
        let v = w.check(s);
        if v == Verdict::Fresh {
            w.accept(s);
        }
        v
    }

    #[test]
    fn each_sequence_once_in_any_order_within_the_window() {
        let mut w = ReplayWindow::default();
        let order: Vec<u64> = (0..3000)
            .map(|i| {
                if i % 7 == 3 {
                    i - 2
                } else if i % 7 == 1 {
                    i + 2
                } else {
                    i
                }
            })
            .collect();
        for &s in &order {
            assert_eq!(take(&mut w, s), Verdict::Fresh, "{s}");
        }
        for &s in order.iter().rev().take(1000) {
            assert_eq!(take(&mut w, s), Verdict::Replayed, "{s}");
        }
    }

    #[test]
    fn far_behind_is_too_old_and_gaps_stay_open() {
        let mut w = ReplayWindow::default();
        assert_eq!(take(&mut w, 5000), Verdict::Fresh);
        assert_eq!(take(&mut w, 5000 - REPLAY_WINDOW), Verdict::TooOld);
        assert_eq!(take(&mut w, 5000 - REPLAY_WINDOW + 1), Verdict::Fresh);
        assert_eq!(take(&mut w, 4990), Verdict::Fresh);
        assert_eq!(take(&mut w, 4990), Verdict::Replayed);
        // A jump wider than the window forgets everything behind it.
        assert_eq!(take(&mut w, 5000 + 3 * REPLAY_WINDOW), Verdict::Fresh);
        assert_eq!(take(&mut w, 5000 + 3 * REPLAY_WINDOW - 1), Verdict::Fresh);
        assert_eq!(take(&mut w, 5000), Verdict::TooOld);
    }

    #[test]
    fn shifts_across_word_boundaries_keep_bits() {
        for step in [1, 63, 64, 65, 127, 128, 500] {
            let mut w = ReplayWindow::default();
            take(&mut w, 10);
            take(&mut w, 10 + step);
            assert_eq!(
                w.check(10),
                if step < REPLAY_WINDOW { Verdict::Replayed } else { Verdict::TooOld },
                "step {step}"
            );
            assert_eq!(w.check(11), if step == 1 { Verdict::Replayed } else { Verdict::Fresh }, "step {step}");
        }
    }
}
