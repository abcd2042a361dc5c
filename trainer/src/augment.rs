//! Training-time augmentation on preprocessed batches (never at validation or on
//! the device). No horizontal flip: laterality matters in chest radiographs.

use rand::Rng;
use tch::{Kind, Tensor};

/// Augmentation strengths; `Default` is mild, as a portable unit's films vary
/// mostly in exposure and positioning.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    pub max_rotate_deg: f64,
    pub scale: (f64, f64),
    pub max_translate: f64,
    pub brightness: f64,
    pub contrast: (f64, f64),
    pub gamma: (f64, f64),
    pub noise_std: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            max_rotate_deg: 7.0,
            scale: (0.92, 1.08),
            max_translate: 0.05,
            brightness: 0.1,
            contrast: (0.85, 1.15),
            gamma: (0.8, 1.25),
            noise_std: 0.02,
        }
    }
}

impl Augment {
    /// Augment `[B, 1, S, S]` images normalised with `(x − mean) / std`.
    pub fn apply(&self, x: &Tensor, mean: f64, std: f64, rng: &mut impl Rng) -> Tensor {
        let (b, _, h, w) = x.size4().expect("4-d batch");
        let mut theta = Vec::with_capacity(b as usize * 6);
        let mut affine = Vec::with_capacity(b as usize * 3);
        for _ in 0..b {
            let a = rng
                .gen_range(-self.max_rotate_deg..=self.max_rotate_deg)
                .to_radians();
            let s = rng.gen_range(self.scale.0..=self.scale.1);
            let tx = rng.gen_range(-self.max_translate..=self.max_translate) * 2.0;
            let ty = rng.gen_range(-self.max_translate..=self.max_translate) * 2.0;
            let (sin, cos) = a.sin_cos();
            theta.extend_from_slice(&[
                (cos / s) as f32,
                (-sin / s) as f32,
                tx as f32,
                (sin / s) as f32,
                (cos / s) as f32,
                ty as f32,
            ]);
            affine.push(rng.gen_range(self.contrast.0..=self.contrast.1) as f32);
            affine.push(rng.gen_range(-self.brightness..=self.brightness) as f32);
            affine.push(rng.gen_range(self.gamma.0..=self.gamma.1) as f32);
        }
        let device = x.device();
        let theta = Tensor::from_slice(&theta).view([b, 2, 3]).to_device(device);
        let grid = Tensor::affine_grid_generator(&theta, [b, 1, h, w], false);
        // Bilinear, border padding: the film edge is repeated rather than black bars.
        let warped = x.grid_sampler(&grid, 0, 1, false);
        let p = Tensor::from_slice(&affine)
            .view([b, 3, 1, 1])
            .to_device(device);
        let unit = (warped * std + mean).clamp(0.0, 1.0);
        let gamma = unit.pow(&p.narrow(1, 2, 1));
        let adjusted = (gamma - 0.5) * p.narrow(1, 0, 1) + 0.5 + p.narrow(1, 1, 1);
        let noisy = adjusted + Tensor::randn([b, 1, h, w], (Kind::Float, device)) * self.noise_std;
        (noisy.clamp(0.0, 1.0) - mean) / std
    }
}
