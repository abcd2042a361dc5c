//! Image preprocessing shared by the trainer and the device, so both see the same
//! pixels. The options travel in the bundle manifest.

use image::{ImageBuffer, Luma};
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
    ///
    /// Steps 2–4 run in one pass over the film's rows and then one over the
    /// resized rows, single-channel; the result is bit-identical to scaling the
    /// film into an f32 image and resizing it with `image::imageops::resize`
    /// (`FilterType::Triangle`), which the trainer's bundles were made with
    /// (tested against it below), at a fraction of its time: that function
    /// works on four channels and checks every pixel access.
    pub fn apply_into(&self, image: &Gray16, out: &mut [f32]) {
        assert_eq!(out.len(), self.size * self.size, "output buffer size");
        let (lo, hi) = match self.clip_percentiles {
            Some((p_lo, p_hi)) => percentiles(image, p_lo, p_hi),
            None => (0, u16::MAX),
        };
        let span = (hi.saturating_sub(lo)).max(1) as f32;
        let scale = |v: u16| (v.clamp(lo, hi) - lo) as f32 / span;
        let (w, h) = (image.width() as usize, image.height() as usize);
        let s = self.size;
        let normalise = |v: f32| (v - self.mean) / self.std;
        if (w, h) == (s, s) {
            for (o, &v) in out.iter_mut().zip(image.as_raw()) {
                *o = normalise(scale(v));
            }
            return;
        }
        if w == 0 || h == 0 {
            out.fill(normalise(0.0));
            return;
        }
        let pixels = image.as_raw();
        // Rows first (into `w`-wide rows of f32), then columns, as `resize` does.
        let mut rows = vec![0f32; w * s];
        for (acc, (top, weights)) in rows.chunks_exact_mut(w).zip(triangle_taps(h, s)) {
            for (i, &weight) in weights.iter().enumerate() {
                let src = &pixels[(top + i) * w..(top + i + 1) * w];
                for (a, &v) in acc.iter_mut().zip(src) {
                    *a += scale(v) * weight;
                }
            }
        }
        let columns = triangle_taps(w, s);
        for (row, dst) in rows.chunks_exact(w).zip(out.chunks_exact_mut(s)) {
            for (o, (left, weights)) in dst.iter_mut().zip(&columns) {
                let mut t = 0f32;
                for (&v, &weight) in row[*left..].iter().zip(weights) {
                    t += v * weight;
                }
                *o = normalise(t.clamp(0.0, 1.0));
            }
        }
    }
}

/// For each of `out_len` output samples resampled from `in_len`: the first
/// input sample it reads and the normalised triangle-filter weights of the
/// samples from there, computed exactly as `image::imageops::resize` does
/// (same f32 operations in the same order).
fn triangle_taps(in_len: usize, out_len: usize) -> Vec<(usize, Vec<f32>)> {
    let ratio = in_len as f32 / out_len as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let support = sratio;
    (0..out_len)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, in_len as i64 - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, in_len as i64);
            let centre = centre - 0.5;
            let mut weights: Vec<f32> = (left..right)
                .map(|i| {
                    let x = ((i as f32 - centre) / sratio).abs();
                    if x < 1.0 {
                        1.0 - x
                    } else {
                        0.0
                    }
                })
                .collect();
            let sum: f32 = weights.iter().fold(0.0, |a, &w| a + w);
            weights.iter_mut().for_each(|w| *w /= sum);
            (left as usize, weights)
        })
        .collect()
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

    /// What `apply_into` computed before it was written single-channel: the
    /// scaled film as an f32 image, resized by the image crate.
    fn reference(opts: &PreprocessOptions, image: &Gray16) -> Vec<f32> {
        use image::imageops;
        let (lo, hi) = match opts.clip_percentiles {
            Some((a, b)) => percentiles(image, a, b),
            None => (0, u16::MAX),
        };
        let span = (hi.saturating_sub(lo)).max(1) as f32;
        let scaled: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_fn(image.width(), image.height(), |x, y| {
                let v = image.get_pixel(x, y).0[0];
                Luma([(v.clamp(lo, hi) - lo) as f32 / span])
            });
        let s = opts.size as u32;
        let resized = if scaled.dimensions() == (s, s) {
            scaled
        } else {
            imageops::resize(&scaled, s, s, imageops::FilterType::Triangle)
        };
        resized
            .pixels()
            .map(|p| (p.0[0] - opts.mean) / opts.std)
            .collect()
    }

    #[test]
    fn bit_identical_to_the_image_crates_resize() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (w, h, size) in [
            (1024, 1024, 128),
            (997, 1203, 128),
            (300, 200, 224),
            (64, 64, 128),
            (128, 77, 128),
            (128, 128, 128),
            (5, 3, 4),
        ] {
            let img = Gray16::from_fn(w, h, |_, _| Luma([(next() % 4096) as u16 * 16]));
            for clip in [Some((0.5, 99.5)), None] {
                let opts = PreprocessOptions {
                    size,
                    clip_percentiles: clip,
                    ..Default::default()
                };
                let ours = opts.apply(&img);
                let theirs = reference(&opts, &img);
                let same = ours
                    .iter()
                    .zip(&theirs)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{w}x{h} -> {size}, clip {clip:?}");
            }
        }
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
