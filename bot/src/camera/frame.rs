//! Raw frames and the conversions capture needs: whatever the device gives (YUYV, NV12, YU12)
//! to planar I420, what the encoders take.

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
}

impl I420Frame {
    pub fn new(width: usize, height: usize) -> Result<Self, ConvertError> {
        check_size(width, height)?;
        Ok(Self { width, height, data: vec![0; width * height * 3 / 2] })
    }

    /// (Y, U, V) planes.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let (y, chroma) = self.data.split_at_mut(luma);
        let (u, v) = chroma.split_at_mut(luma / 4);
        (y, u, v)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn yu12_is_copied_and_bad_sizes_are_errors() {
        assert_eq!(yu12_to_i420(&known().data, 4, 2).unwrap(), known());
        assert_eq!(yuyv_to_i420(&[0; 8], 3, 2), Err(ConvertError::OddSize { width: 3, height: 2 }));
        assert!(matches!(nv12_to_i420(&[0; 5], 4, 2), Err(ConvertError::ShortBuffer { needed: 12, got: 5, .. })));
    }
}
