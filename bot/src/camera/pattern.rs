//! A synthetic camera for machines with none: colour bars, a bar sweeping across, and the frame
//! number in large digits, so a viewer can see the picture is live and count dropped frames.

use super::frame::I420Frame;

/// 3x5 digit glyphs, a row per 3 bits.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// (Y, U, V) of the bars: white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
];

pub struct TestPattern {
    width: usize,
    height: usize,
    frame: u64,
    /// Sensor-like noise added to the luma, ± this much: a real camera's picture is never
    /// clean, and noise is what costs an encoder.
    noise: u8,
    seed: u32,
}

impl TestPattern {
    /// `width` and `height` are rounded down to even numbers.
    pub fn new(width: usize, height: usize) -> Self {
        Self { width: (width & !1).max(16), height: (height & !1).max(16), frame: 0, noise: 0, seed: 1 }
    }

    pub fn with_noise(mut self, amplitude: u8) -> Self {
        self.noise = amplitude;
        self
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    pub fn next_frame(&mut self) -> I420Frame {
        let (w, h) = (self.width, self.height);
        let mut out = I420Frame { width: w, height: h, data: vec![0; w * h * 3 / 2] };
        let (y, u, v) = out.planes_mut();
        for row in 0..h {
            for col in 0..w {
                y[row * w + col] = BARS[col * BARS.len() / w].0;
            }
        }
        for row in 0..h / 2 {
            for col in 0..w / 2 {
                let (_, cu, cv) = BARS[col * 2 * BARS.len() / w];
                u[row * w / 2 + col] = cu;
                v[row * w / 2 + col] = cv;
            }
        }
        // A dark bar sweeping across in four seconds at 30 fps.
        let bar = w / 16;
        let x0 = (self.frame as usize * w / 120) % w;
        for row in 0..h {
            for col in x0..(x0 + bar).min(w) {
                y[row * w + col] = 16;
            }
        }
        if self.noise > 0 {
            let span = u32::from(self.noise) * 2 + 1;
            for sample in y.iter_mut() {
                // xorshift: cheap, and plenty random for an encoder.
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 17;
                self.seed ^= self.seed << 5;
                let delta = (self.seed % span) as i16 - i16::from(self.noise);
                *sample = (i16::from(*sample) + delta).clamp(16, 235) as u8;
            }
        }
        self.draw_number(y, self.frame);
        self.frame += 1;
        out
    }

    /// The frame number in white-on-black digits, top left.
    fn draw_number(&self, y: &mut [u8], n: u64) {
        let scale = (self.height / 40).max(2);
        let text = n.to_string();
        let (box_w, box_h) = ((text.len() * 4 + 1) * scale, 7 * scale);
        for row in 0..box_h.min(self.height) {
            for col in 0..box_w.min(self.width) {
                y[row * self.width + col] = 16;
            }
        }
        for (i, ch) in text.bytes().enumerate() {
            let glyph = DIGITS[usize::from(ch - b'0')];
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..3 {
                    if bits & (4 >> gx) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) = ((1 + i * 4 + gx) * scale + dx, (1 + gy) * scale + dy);
                            if px < self.width && py < self.height {
                                y[py * self.width + px] = 235;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_change_and_have_the_right_size() {
        let mut p = TestPattern::new(641, 480);
        let a = p.next_frame();
        assert_eq!((a.width, a.height), (640, 480));
        let b = p.next_frame();
        assert_eq!(a.data.len(), 640 * 480 * 3 / 2);
        assert_ne!(a.data, b.data, "the picture moves");
    }
}
