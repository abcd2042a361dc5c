//! The radiograph thumbnail with the attention heat map blended over it.
//!
//! Computed once when the screen is built, so redrawing (page flips) costs only
//! a copy. Integer and plain f32 arithmetic only (no `powf`/`exp`), so x86 and
//! aarch64 produce the same pixels and the golden screens hold on both.

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::RgbColor;

use crate::preprocess::Gray16;
use crate::report::Heatmap;

/// Heat below this fraction of the map's range is not drawn, so the anatomy
/// stays readable everywhere the model did not look.
const HEAT_FLOOR: f32 = 0.45;
/// Opacity of the hottest spot.
const HEAT_MAX_ALPHA: f32 = 0.6;

/// A square, letter-boxed, contrast-stretched thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    side: u32,
    pixels: Vec<Rgb565>,
}

impl Thumbnail {
    /// Downsamples `image` by area averaging into a `side`×`side` square (aspect
    /// kept, black bars), stretches contrast between its 1st and 99th
    /// percentiles, and blends `heatmap` (if any) over it.
    pub fn new(image: &Gray16, heatmap: Option<&Heatmap>, side: u32) -> Self {
        let side = side.max(1);
        let (w, h) = image.dimensions();
        let mut grey = vec![0u16; (side * side) as usize];
        let mut inside = vec![false; grey.len()];
        if w > 0 && h > 0 {
            // Fit the longer edge; the shorter one is centred.
            let (tw, th) = if w >= h {
                (side, ((h as u64 * side as u64) / w as u64).max(1) as u32)
            } else {
                (((w as u64 * side as u64) / h as u64).max(1) as u32, side)
            };
            let (ox, oy) = ((side - tw) / 2, (side - th) / 2);
            for ty in 0..th {
                let y0 = (ty as u64 * h as u64 / th as u64) as u32;
                let y1 = (((ty + 1) as u64 * h as u64 / th as u64) as u32).max(y0 + 1);
                for tx in 0..tw {
                    let x0 = (tx as u64 * w as u64 / tw as u64) as u32;
                    let x1 = (((tx + 1) as u64 * w as u64 / tw as u64) as u32).max(x0 + 1);
                    let mut sum = 0u64;
                    for y in y0..y1.min(h) {
                        for x in x0..x1.min(w) {
                            sum += image.get_pixel(x, y).0[0] as u64;
                        }
                    }
                    let n = ((y1.min(h) - y0) as u64 * (x1.min(w) - x0) as u64).max(1);
                    let i = ((oy + ty) * side + ox + tx) as usize;
                    grey[i] = (sum / n) as u16;
                    inside[i] = true;
                }
            }
        }
        let (lo, hi) = percentile_window(&grey, &inside);
        let heat = heatmap.and_then(|m| HeatSampler::new(m, side));
        let mut pixels = Vec::with_capacity(grey.len());
        for (i, (&g, &ins)) in grey.iter().zip(&inside).enumerate() {
            if !ins {
                pixels.push(Rgb565::BLACK);
                continue;
            }
            let v = if hi > lo {
                ((g.clamp(lo, hi) - lo) as u32 * 255 / (hi - lo) as u32) as f32
            } else {
                128.0
            };
            let (mut r, mut gr, mut b) = (v, v, v);
            if let Some(heat) = &heat {
                let t = heat.at(i as u32 % side, i as u32 / side);
                if t > HEAT_FLOOR {
                    let s = (t - HEAT_FLOOR) / (1.0 - HEAT_FLOOR);
                    let a = HEAT_MAX_ALPHA * s;
                    // Yellow at the floor, red at the peak.
                    let (hr, hg, hb) = (255.0, 230.0 * (1.0 - s), 0.0);
                    r = r * (1.0 - a) + hr * a;
                    gr = gr * (1.0 - a) + hg * a;
                    b = b * (1.0 - a) + hb * a;
                }
            }
            pixels.push(Rgb565::new(
                (r as u32 >> 3) as u8,
                (gr as u32 >> 2) as u8,
                (b as u32 >> 3) as u8,
            ));
        }
        Thumbnail { side, pixels }
    }

    pub fn side(&self) -> u32 {
        self.side
    }

    /// Row-major pixels.
    pub fn pixels(&self) -> &[Rgb565] {
        &self.pixels
    }
}

/// 1st and 99th percentile of the pixels inside the picture.
fn percentile_window(grey: &[u16], inside: &[bool]) -> (u16, u16) {
    let mut v: Vec<u16> = grey
        .iter()
        .zip(inside)
        .filter_map(|(&g, &i)| i.then_some(g))
        .collect();
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |p: usize| v[(v.len() - 1) * p / 100];
    (at(1), at(99))
}

/// Bilinear samples of a heat map normalised to `[0, 1]` over its own range.
struct HeatSampler<'a> {
    map: &'a Heatmap,
    lo: f32,
    span: f32,
    scale: f32,
}

impl<'a> HeatSampler<'a> {
    fn new(map: &'a Heatmap, side: u32) -> Option<Self> {
        if map.side == 0 || map.values.len() != map.side * map.side {
            return None;
        }
        let finite = map.values.iter().copied().filter(|v| v.is_finite());
        let lo = finite.clone().fold(f32::INFINITY, f32::min);
        let hi = finite.fold(f32::NEG_INFINITY, f32::max);
        (hi > lo).then(|| HeatSampler {
            map,
            lo,
            span: hi - lo,
            scale: map.side as f32 / side as f32,
        })
    }

    fn at(&self, x: u32, y: u32) -> f32 {
        let n = self.map.side;
        let fx = ((x as f32 + 0.5) * self.scale - 0.5).clamp(0.0, (n - 1) as f32);
        let fy = ((y as f32 + 0.5) * self.scale - 0.5).clamp(0.0, (n - 1) as f32);
        let (x0, y0) = (fx as usize, fy as usize);
        let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
        let (dx, dy) = (fx - x0 as f32, fy - y0 as f32);
        let v = |x: usize, y: usize| {
            let v = self.map.values[y * n + x];
            if v.is_finite() {
                (v - self.lo) / self.span
            } else {
                0.0
            }
        };
        let top = v(x0, y0) * (1.0 - dx) + v(x1, y0) * dx;
        let bottom = v(x0, y1) * (1.0 - dx) + v(x1, y1) * dx;
        top * (1.0 - dy) + bottom * dy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn letterboxes_and_stretches() {
        // Wide image: black bars above and below, full contrast inside.
        let img = Gray16::from_fn(200, 100, |x, _| Luma([(x * 300) as u16]));
        let t = Thumbnail::new(&img, None, 20);
        assert_eq!(t.pixels().len(), 400);
        assert_eq!(t.pixels()[0], Rgb565::BLACK, "top bar");
        let mid = &t.pixels()[10 * 20..11 * 20];
        assert!(
            mid[0].r() < 4 && mid[19].r() > 28,
            "{:?}",
            (mid[0], mid[19])
        );
    }

    #[test]
    fn heat_tints_only_the_hot_spot() {
        let img = Gray16::from_pixel(64, 64, Luma([30000]));
        let mut values = vec![0.0; 16];
        values[5] = 1.0; // row 1, column 1 of 4×4
        let map = Heatmap { side: 4, values };
        let t = Thumbnail::new(&img, Some(&map), 16);
        let hot = t.pixels()[(6 * 16 + 6) as usize];
        let cold = t.pixels()[(14 * 16 + 14) as usize];
        assert!(hot.r() > hot.b() + 4, "hot spot is tinted red: {hot:?}");
        assert_eq!(
            cold.r() as u32 * 2,
            cold.g() as u32 & !1,
            "cold area stays grey: {cold:?}"
        );
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let empty = Gray16::new(0, 0);
        let bad = Heatmap {
            side: 3,
            values: vec![f32::NAN; 2],
        };
        let t = Thumbnail::new(&empty, Some(&bad), 8);
        assert!(t.pixels().iter().all(|&p| p == Rgb565::BLACK));
    }
}
