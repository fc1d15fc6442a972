//! Raw frames and the conversions capture needs: whatever the device gives (YUYV, NV12, YU12,
//! MJPEG) to planar I420, what the encoders take.

use thiserror::Error;

/// A planar 4:2:0 frame: the Y plane, then U and V at half size each way. Width and height
/// are even.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConvertError {
    #[error("{width}x{height}: width and height must be even and nonzero")]
    OddSize { width: usize, height: usize },
    #[error("a {format} frame of {width}x{height} needs {needed} bytes, got {got}")]
    ShortBuffer { format: &'static str, width: usize, height: usize, needed: usize, got: usize },
    #[error("MJPEG: {0}")]
    Jpeg(String),
    #[error("scaling: {0}")]
    Scale(String),
    #[error("MJPEG: a {got_width}x{got_height} picture in a {width}x{height} stream")]
    JpegSize { width: usize, height: usize, got_width: usize, got_height: usize },
}

impl I420Frame {
    pub fn new(width: usize, height: usize) -> Result<Self, ConvertError> {
        check_size(width, height)?;
        Ok(Self { width, height, data: vec![0; width * height * 3 / 2] })
    }

    /// (Y, U, V) planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = self.width * self.height;
        let (y, chroma) = self.data.split_at(luma);
        let (u, v) = chroma.split_at(luma / 4);
        (y, u, v)
    }

    /// (Y, U, V) planes, to fill.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let (y, chroma) = self.data.split_at_mut(luma);
        let (u, v) = chroma.split_at_mut(luma / 4);
        (y, u, v)
    }
}

/// `frame` scaled to `width` x `height` (even sides), each plane filtered bilinearly: a
/// simulcast layer's picture from the camera's.
pub fn scale(frame: &I420Frame, width: usize, height: usize) -> Result<I420Frame, ConvertError> {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let mut out = I420Frame::new(width, height)?;
    if (width, height) == (frame.width, frame.height) {
        out.data.copy_from_slice(&frame.data);
        return Ok(out);
    }
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let mut resizer = Resizer::new();
    let (from, to) = (frame.planes(), out.planes_mut());
    let planes = [(from.0, to.0, 1), (from.1, to.1, 2), (from.2, to.2, 2)];
    for (src, dst, div) in planes {
        let (sw, sh, dw, dh) = (frame.width / div, frame.height / div, width / div, height / div);
        let src = ImageRef::new(sw as u32, sh as u32, src, PixelType::U8).map_err(scale_error)?;
        let mut dst = Image::from_slice_u8(dw as u32, dh as u32, dst, PixelType::U8).map_err(scale_error)?;
        resizer.resize(&src, &mut dst, &options).map_err(scale_error)?;
    }
    Ok(out)
}

fn scale_error(e: impl std::fmt::Display) -> ConvertError {
    ConvertError::Scale(e.to_string())
}

fn check_size(width: usize, height: usize) -> Result<(), ConvertError> {
    if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
        return Err(ConvertError::OddSize { width, height });
    }
    Ok(())
}

fn check_len(format: &'static str, width: usize, height: usize, needed: usize, got: usize) -> Result<(), ConvertError> {
    check_size(width, height)?;
    if got < needed {
        return Err(ConvertError::ShortBuffer { format, width, height, needed, got });
    }
    Ok(())
}

/// YU12 (I420 as V4L2 names it): already planar; copied.
pub fn yu12_to_i420(src: &[u8], width: usize, height: usize) -> Result<I420Frame, ConvertError> {
    let needed = width * height * 3 / 2;
    check_len("YU12", width, height, needed, src.len())?;
    Ok(I420Frame { width, height, data: src[..needed].to_vec() })
}

/// NV12: the Y plane, then U and V interleaved at half size.
pub fn nv12_to_i420(src: &[u8], width: usize, height: usize) -> Result<I420Frame, ConvertError> {
    let luma = width * height;
    check_len("NV12", width, height, luma * 3 / 2, src.len())?;
    let mut frame = I420Frame::new(width, height)?;
    let (y, u, v) = frame.planes_mut();
    y.copy_from_slice(&src[..luma]);
    for (i, pair) in src[luma..luma * 3 / 2].chunks_exact(2).enumerate() {
        u[i] = pair[0];
        v[i] = pair[1];
    }
    Ok(frame)
}

/// YUYV (4:2:2, packed Y0 U Y1 V): chroma averaged over each pair of rows.
pub fn yuyv_to_i420(src: &[u8], width: usize, height: usize) -> Result<I420Frame, ConvertError> {
    let stride = width * 2;
    check_len("YUYV", width, height, stride * height, src.len())?;
    let mut frame = I420Frame::new(width, height)?;
    let (y, u, v) = frame.planes_mut();
    for row in 0..height {
        let line = &src[row * stride..(row + 1) * stride];
        for (x, px) in line.chunks_exact(4).enumerate() {
            y[row * width + 2 * x] = px[0];
            y[row * width + 2 * x + 1] = px[2];
        }
    }
    for row in 0..height / 2 {
        let (top, bottom) = (&src[2 * row * stride..], &src[(2 * row + 1) * stride..]);
        for x in 0..width / 2 {
            let avg = |a: u8, b: u8| ((u16::from(a) + u16::from(b) + 1) / 2) as u8;
            u[row * width / 2 + x] = avg(top[4 * x + 1], bottom[4 * x + 1]);
            v[row * width / 2 + x] = avg(top[4 * x + 3], bottom[4 * x + 3]);
        }
    }
    Ok(frame)
}

/// Whether a JPEG defines its Huffman tables (a DHT segment before the scan).
fn has_huffman_tables(jpeg: &[u8]) -> bool {
    let scan = jpeg.windows(2).position(|w| w == [0xff, 0xda]).unwrap_or(jpeg.len());
    jpeg[..scan].windows(2).any(|w| w == [0xff, 0xc4])
}

/// MJPEG (what most USB cameras give at their larger sizes): each frame a JPEG, decoded to
/// full-resolution YCbCr and its chroma averaged over each 2x2 block. Many cameras leave out
/// the Huffman tables (the standard ones are implied); such frames are marked `AVI1` so the
/// decoder supplies them.
pub fn mjpeg_to_i420(src: &[u8], width: usize, height: usize) -> Result<I420Frame, ConvertError> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    check_size(width, height)?;
    let marked;
    let src = if has_huffman_tables(src) || src.len() < 2 {
        src
    } else {
        marked = [&src[..2], &[0xff, 0xe0, 0, 7, b'A', b'V', b'I', b'1', 0][..], &src[2..]].concat();
        &marked[..]
    };
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(src, options);
    let pixels = decoder.decode().map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
    let (got_width, got_height) = decoder.dimensions().ok_or_else(|| ConvertError::Jpeg("no picture".into()))?;
    if (got_width, got_height) != (width, height) || pixels.len() < width * height * 3 {
        return Err(ConvertError::JpegSize { width, height, got_width, got_height });
    }
    let mut frame = I420Frame::new(width, height)?;
    let (y, u, v) = frame.planes_mut();
    for (i, px) in pixels.chunks_exact(3).take(width * height).enumerate() {
        y[i] = px[0];
    }
    let at = |x: usize, y: usize, c: usize| u16::from(pixels[(y * width + x) * 3 + c]);
    for cy in 0..height / 2 {
        for cx in 0..width / 2 {
            let (x, y) = (2 * cx, 2 * cy);
            let avg = |c| ((at(x, y, c) + at(x + 1, y, c) + at(x, y + 1, c) + at(x + 1, y + 1, c) + 2) / 4) as u8;
            u[cy * width / 2 + cx] = avg(1);
            v[cy * width / 2 + cx] = avg(2);
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_halves_each_plane_and_keeps_flat_colour() {
        let mut frame = I420Frame::new(64, 36).unwrap();
        let (y, u, v) = frame.planes_mut();
        y.fill(90);
        u.fill(60);
        v.fill(200);
        let small = scale(&frame, 32, 18).unwrap();
        assert_eq!((small.width, small.height, small.data.len()), (32, 18, 32 * 18 * 3 / 2));
        let (y, u, v) = small.planes();
        assert!(y.iter().all(|&s| s == 90) && u.iter().all(|&s| s == 60) && v.iter().all(|&s| s == 200));
        assert_eq!(scale(&frame, 31, 18), Err(ConvertError::OddSize { width: 31, height: 18 }));
    }

    /// A 4x2 frame whose every sample is distinct, in I420.
    fn known() -> I420Frame {
        let y: Vec<u8> = (10..18).collect(); // 4x2
        let u = vec![100, 101]; // 2x1
        let v = vec![200, 201];
        I420Frame { width: 4, height: 2, data: [y, u, v].concat() }
    }

    #[test]
    fn nv12_deinterleaves_chroma() {
        let src = [(10..18).collect::<Vec<u8>>(), vec![100, 200, 101, 201]].concat();
        assert_eq!(nv12_to_i420(&src, 4, 2).unwrap(), known());
    }

    #[test]
    fn yuyv_packs_luma_and_averages_chroma_rows() {
        // Two rows with the same chroma: it comes through exact.
        let row = |y: [u8; 4]| vec![y[0], 100, y[1], 200, y[2], 101, y[3], 201];
        let src = [row([10, 11, 12, 13]), row([14, 15, 16, 17])].concat();
        assert_eq!(yuyv_to_i420(&src, 4, 2).unwrap(), known());
        // Chroma one higher on the second row: the average rounds up.
        let uneven = [row([10, 11, 12, 13]), vec![14, 101, 15, 201, 16, 102, 17, 202]].concat();
        let frame = yuyv_to_i420(&uneven, 4, 2).unwrap();
        assert_eq!(&frame.data[8..], &[101, 102, 201, 202]);
    }

    /// A 16x16 JPEG (quality 100, 4:4:4) of flat 8x8 blocks, each a known Y, Cb, Cr.
    fn blocks_jpeg() -> (Vec<u8>, Vec<[u8; 3]>) {
        let colours = vec![[200, 90, 160], [60, 170, 100], [128, 128, 128], [30, 200, 40]];
        let mut ycbcr = Vec::new();
        for y in 0..16 {
            for x in 0..16 {
                ycbcr.extend_from_slice(&colours[(y / 8) * 2 + x / 8]);
            }
        }
        let mut jpeg = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 100);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
        encoder.encode(&ycbcr, 16, 16, jpeg_encoder::ColorType::Ycbcr).unwrap();
        (jpeg, colours)
    }

    fn assert_blocks(frame: &I420Frame, colours: &[[u8; 3]]) {
        let close = |a: u8, b: u8| a.abs_diff(b) <= 2;
        for (i, c) in colours.iter().enumerate() {
            let (bx, by) = (i % 2, i / 2);
            let (x, y) = (bx * 8 + 3, by * 8 + 3);
            let luma = frame.data[y * 16 + x];
            let (u, v) = (frame.data[256 + (y / 2) * 8 + x / 2], frame.data[256 + 64 + (y / 2) * 8 + x / 2]);
            assert!(close(luma, c[0]) && close(u, c[1]) && close(v, c[2]), "block {i}: {luma} {u} {v} for {c:?}");
        }
    }

    #[test]
    fn mjpeg_decodes_to_i420() {
        let (jpeg, colours) = blocks_jpeg();
        assert_blocks(&mjpeg_to_i420(&jpeg, 16, 16).unwrap(), &colours);
        assert!(matches!(mjpeg_to_i420(&jpeg, 32, 16), Err(ConvertError::JpegSize { got_width: 16, .. })));
        assert!(matches!(mjpeg_to_i420(&jpeg[..40], 16, 16), Err(ConvertError::Jpeg(_))));
    }

    #[test]
    fn mjpeg_without_huffman_tables_uses_the_standard_ones() {
        // Cut every DHT segment out, as many cameras send it.
        let (jpeg, colours) = blocks_jpeg();
        let mut stripped = Vec::new();
        let mut i = 0;
        while i < jpeg.len() {
            if jpeg[i] == 0xff && jpeg.get(i + 1) == Some(&0xc4) {
                let len = usize::from(jpeg[i + 2]) << 8 | usize::from(jpeg[i + 3]);
                i += 2 + len;
                continue;
            }
            stripped.push(jpeg[i]);
            i += 1;
        }
        assert!(!has_huffman_tables(&stripped) && has_huffman_tables(&jpeg));
        assert_blocks(&mjpeg_to_i420(&stripped, 16, 16).unwrap(), &colours);
    }

    #[test]
    fn yu12_is_copied_and_bad_sizes_are_errors() {
        assert_eq!(yu12_to_i420(&known().data, 4, 2).unwrap(), known());
        assert_eq!(yuyv_to_i420(&[0; 8], 3, 2), Err(ConvertError::OddSize { width: 3, height: 2 }));
        assert!(matches!(nv12_to_i420(&[0; 5], 4, 2), Err(ConvertError::ShortBuffer { needed: 12, got: 5, .. })));
    }
}
