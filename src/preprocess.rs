//! Image preprocessing shared by the trainer and the device, so both see the same
//! pixels. The options travel in the bundle manifest.

use image::{imageops, ImageBuffer, Luma};
use serde::{Deserialize, Serialize};

/// A decoded greyscale radiograph, 16 bits per sample, white = dense (MONOCHROME2).
pub type Gray16 = ImageBuffer<Luma<u16>, Vec<u16>>;

/// How a preprocessed tensor is made from a [`Gray16`]. Steps apply in this order:
/// 1. scale samples to `[0, 1]` (divide by 65535);
/// 2. optional percentile windowing: clip to the `clip_percentiles` range and
///    stretch it to `[0, 1]` (undoes exposure differences between units);
/// 3. resize to `size × size` with a triangle (bilinear) filter, ignoring aspect;
/// 4. normalise: `(x − mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessOptions {
    pub size: usize,
    pub clip_percentiles: Option<(f32, f32)>,
    pub mean: f32,
    pub std: f32,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        PreprocessOptions {
            size: 224,
            clip_percentiles: Some((0.5, 99.5)),
            mean: 0.5,
            std: 0.25,
        }
    }
}

impl PreprocessOptions {
    /// Preprocess into a row-major `size × size` f32 buffer.
    pub fn apply(&self, image: &Gray16) -> Vec<f32> {
        let mut out = vec![0f32; self.size * self.size];
        self.apply_into(image, &mut out);
        out
    }

    /// Like [`apply`](Self::apply), writing into `out` (length `size²`).
    pub fn apply_into(&self, image: &Gray16, out: &mut [f32]) {
        assert_eq!(out.len(), self.size * self.size, "output buffer size");
        let (lo, hi) = match self.clip_percentiles {
            Some((p_lo, p_hi)) => percentiles(image, p_lo, p_hi),
            None => (0, u16::MAX),
        };
        let span = (hi.saturating_sub(lo)).max(1) as f32;
        let scaled: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_fn(image.width(), image.height(), |x, y| {
                let v = image.get_pixel(x, y).0[0];
                Luma([(v.clamp(lo, hi) - lo) as f32 / span])
            });
        let s = self.size as u32;
        let resized = if scaled.dimensions() == (s, s) {
            scaled
        } else {
            imageops::resize(&scaled, s, s, imageops::FilterType::Triangle)
        };
        for (o, p) in out.iter_mut().zip(resized.pixels()) {
            *o = (p.0[0] - self.mean) / self.std;
        }
    }
}

/// Sample values at the given percentiles (0–100), from a 16-bit histogram.
pub fn percentiles(image: &Gray16, p_lo: f32, p_hi: f32) -> (u16, u16) {
    let mut hist = vec![0u32; 65536];
    for p in image.pixels() {
        hist[p.0[0] as usize] += 1;
    }
    let total = image.pixels().len() as f64;
    let find = |p: f32| {
        let target = (p as f64 / 100.0 * total).clamp(0.0, total);
        let mut acc = 0f64;
        for (v, &n) in hist.iter().enumerate() {
            acc += n as f64;
            if acc >= target && n > 0 {
                return v as u16;
            }
        }
        u16::MAX
    };
    let lo = find(p_lo);
    let hi = find(p_hi).max(lo);
    (lo, hi)
}

/// Convert any decoded `image` into [`Gray16`] (8-bit samples are scaled by 257).
pub fn to_gray16(image: &image::DynamicImage) -> Gray16 {
    image.to_luma16()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_normalised_and_sized() {
        let img = Gray16::from_fn(300, 200, |x, _| Luma([(x * 200) as u16]));
        let opts = PreprocessOptions {
            size: 32,
            ..Default::default()
        };
        let t = opts.apply(&img);
        assert_eq!(t.len(), 32 * 32);
        let min = t.iter().cloned().fold(f32::INFINITY, f32::min);
        let max = t.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        // The triangle filter blends the outermost column with its neighbour.
        assert!((min - (0.0 - 0.5) / 0.25).abs() < 0.1, "{min}");
        assert!((max - (1.0 - 0.5) / 0.25).abs() < 0.1, "{max}");
        // Left-to-right ramp survives.
        assert!(t[0] < t[31]);
    }

    #[test]
    fn percentile_clip_removes_outliers() {
        let mut img = Gray16::from_pixel(100, 100, Luma([1000]));
        img.put_pixel(0, 0, Luma([65535]));
        for x in 0..100 {
            img.put_pixel(x, 50, Luma([3000]));
        }
        let (lo, hi) = percentiles(&img, 0.5, 99.5);
        assert_eq!((lo, hi), (1000, 3000));
    }
}
