//! A participant's latest picture as a JPEG: H.264 decoded (OpenH264) from the last keyframe
//! onward, converted to RGB and compressed. What `bot snapshot` writes and the recorder serves.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource as _;
use thiserror::Error;

/// JPEG quality: thumbnails of camera walls, where 80 is indistinguishable and a third smaller.
pub const JPEG_QUALITY: u8 = 80;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PictureError {
    #[error("no frames to decode")]
    NoFrames,
    #[error("decoding H.264: {0}")]
    Decode(String),
    #[error("the decoder gave no picture for {0} frame(s)")]
    NoPicture(usize),
    #[error("{0}x{1} does not fit a JPEG")]
    Size(usize, usize),
    #[error("encoding the JPEG: {0}")]
    Jpeg(String),
}

/// A decoded picture, 8-bit RGB rows.
#[derive(Debug, Clone)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Picture {
    /// The (r, g, b) at `(x, y)`.
    #[cfg(test)]
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        let at = (y * self.width + x) * 3;
        (x < self.width).then(|| self.rgb.get(at..at + 3)?.try_into().ok())?
    }

    pub fn jpeg(&self, quality: u8) -> Result<Vec<u8>, PictureError> {
        let (w, h) = (
            u16::try_from(self.width).map_err(|_| PictureError::Size(self.width, self.height))?,
            u16::try_from(self.height).map_err(|_| PictureError::Size(self.width, self.height))?,
        );
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, quality)
            .encode(&self.rgb, w, h, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| PictureError::Jpeg(e.to_string()))?;
        Ok(out)
    }
}

/// The picture after decoding `frames` (Annex B access units, the first a keyframe) in order.
pub fn decode_h264<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Result<Picture, PictureError> {
    let mut decoder = Decoder::new().map_err(|e| PictureError::Decode(e.to_string()))?;
    let mut latest = None;
    let mut count = 0;
    for frame in frames {
        count += 1;
        match decoder.decode(frame) {
            Ok(Some(yuv)) => {
                let (width, height) = yuv.dimensions();
                let mut rgb = vec![0; width * height * 3];
                yuv.write_rgb8(&mut rgb);
                latest = Some(Picture { width, height, rgb });
            }
            Ok(None) => {}
            // A frame the decoder refuses after a good picture: keep the good one.
            Err(e) if latest.is_none() => return Err(PictureError::Decode(e.to_string())),
            Err(_) => break,
        }
    }
    if count == 0 {
        return Err(PictureError::NoFrames);
    }
    latest.ok_or(PictureError::NoPicture(count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::encoded_test_pattern;

    #[test]
    fn a_keyframe_decodes_to_the_pattern_and_a_jpeg() {
        let frames = encoded_test_pattern(640, 360, 5, 30);
        let picture = decode_h264(frames.iter().map(|(f, _)| f.as_slice())).expect("decodes");
        assert_eq!((picture.width, picture.height), (640, 360));
        // The pattern's first bar is white, its last black (the colours themselves are checked
        // end to end in actix-api/tests/recording.rs).
        let row = 300;
        assert!(picture.pixel(70, row).unwrap().iter().all(|c| *c > 200), "{:?}", picture.pixel(70, row));
        assert!(picture.pixel(620, row).unwrap().iter().all(|c| *c < 40), "{:?}", picture.pixel(620, row));
        let jpeg = picture.jpeg(JPEG_QUALITY).unwrap();
        assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "a JPEG starts with SOI");
        let back = zune_jpeg::JpegDecoder::new(&jpeg[..]).decode().expect("the JPEG decodes");
        assert_eq!(back.len(), 640 * 360 * 3);
    }

    #[test]
    fn nothing_to_decode_is_an_error() {
        assert!(matches!(decode_h264(std::iter::empty()), Err(PictureError::NoFrames)));
        assert!(decode_h264([&[0u8, 0, 0, 1, 0x65, 1, 2, 3][..]]).is_err());
    }
}
