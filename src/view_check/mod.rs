//! Is this a frontal chest film? Judged from the pixels, not the headers: a PNG of
//! a knee, a lateral film whose DICOM names no view, a CT slice or a photograph
//! carries nothing in its header that says so.
//!
//! The check is a one-class model of the encoder's features on frontal chest
//! films ([`features`]: the feature grid averaged over its four quadrants, so
//! the layout of a frontal film counts, square-rooted to tame the ReLU
//! activations' skew), with their mean and a shrunk covariance (Ledoit–Wolf)
//! fitted on the training films ([`fit`]). A film's distance is its squared
//! Mahalanobis distance divided by the feature count (≈ 1 for a typical
//! training film); a film farther than the threshold, chosen on validation
//! films, is refused with [`Refusal::UnlikeFrontalChest`]. It needs no images
//! of what must be refused to fit, so it also refuses kinds nobody thought of.
//! It costs one 512 × 512 triangular matrix–vector product (131 k
//! multiply-adds) after the encoder, which runs anyway.
//!
//! Chosen by measurement (`cxr-edge view-check`, on the model's validation
//! films and half of the not-frontal films): pooled features alone separated
//! lateral films poorly (37 % refused at the same frontal refusal rate); the
//! quadrant features refused 96 % of validation not-frontal films.
//!
//! The statistics live in the bundle (`view_check.safetensors`, hashed in the
//! manifest), because they belong to the encoder they were fitted on: the mean
//! and whitening matrix as f32 tensors (1 MB, read without parsing), the
//! feature name, threshold and provenance in its metadata.

pub mod fit;

use std::path::Path;

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use crate::bundle::BundleError;
use crate::input::Refusal;
use crate::runtime::EncoderOutput;

/// The file name in a bundle.
pub const FILE: &str = "view_check.safetensors";

/// The name of the features [`features`] computes, recorded in the file.
pub const FEATURE: &str = "grid_quadrants_sqrt";

/// The check's features of one encoded film: the `[N, C]` grid (`N = side²`
/// cells, row-major) averaged over its top-left, top-right, bottom-left and
/// bottom-right quadrants (`4 × C` values, an odd middle row or column going
/// to the bottom or right), each value square-rooted (keeping its sign).
pub fn features(encoded: &EncoderOutput, side: usize) -> Vec<f32> {
    let cells = side * side;
    if cells == 0 || !encoded.grid.len().is_multiple_of(cells) {
        return Vec::new();
    }
    let c = encoded.grid.len() / cells;
    let mut sums = vec![0f32; 4 * c];
    let mut counts = [0usize; 4];
    for (n, cell) in encoded.grid.chunks_exact(c).enumerate() {
        let (y, x) = (n / side, n % side);
        let q = usize::from(y >= side / 2) * 2 + usize::from(x >= side / 2);
        counts[q] += 1;
        for (s, v) in sums[q * c..(q + 1) * c].iter_mut().zip(cell) {
            *s += v;
        }
    }
    for (q, chunk) in sums.chunks_exact_mut(c).enumerate() {
        let k = counts[q].max(1) as f32;
        // Signed root: the same as the root for ReLU features, and keeps the
        // sign of a linear projection's (MobileNetV2's last block).
        chunk.iter_mut().for_each(|s| {
            let m = *s / k;
            *s = m.signum() * m.abs().sqrt();
        });
    }
    sums
}

/// Feature statistics of frontal chest films and the refusal threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewCheck {
    /// Which features the statistics describe ([`FEATURE`]).
    pub feature: String,
    /// Mean feature vector of the fitting films.
    pub mean: Vec<f32>,
    /// Whitening matrix `W = L⁻¹` where `Σ = L Lᵀ` (lower triangular, row-major
    /// `dim × dim`).
    pub whiten: Vec<f32>,
    /// Films farther than this are refused.
    pub threshold: f32,
    /// How it was fitted and how the threshold was chosen (free JSON).
    pub provenance: serde_json::Value,
}

impl ViewCheck {
    /// Read and check a view check file.
    pub fn load(path: &Path) -> Result<ViewCheck, BundleError> {
        let bytes = std::fs::read(path).map_err(|source| BundleError::Io {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| BundleError::Invalid {
            path: path.to_owned(),
            message,
        };
        let check = Self::from_bytes(&bytes)
            .map_err(|e| invalid(format!("not a valid view check: {e}")))?;
        check.validate().map_err(invalid)?;
        Ok(check)
    }

    fn from_bytes(bytes: &[u8]) -> Result<ViewCheck, String> {
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let text = |key: &str| {
            meta.get(key)
                .cloned()
                .ok_or_else(|| format!("no `{key}` in the metadata"))
        };
        let threshold: f32 = text("threshold")?
            .parse()
            .map_err(|e| format!("threshold: {e}"))?;
        let provenance =
            serde_json::from_str(&text("provenance")?).map_err(|e| format!("provenance: {e}"))?;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let f32s = |name: &str| -> Result<Vec<f32>, String> {
            let view = tensors.tensor(name).map_err(|e| format!("{name}: {e}"))?;
            if view.dtype() != Dtype::F32 {
                return Err(format!("{name} is {:?}, expected F32", view.dtype()));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        Ok(ViewCheck {
            feature: text("feature")?,
            mean: f32s("mean")?,
            whiten: f32s("whiten")?,
            threshold,
            provenance,
        })
    }

    /// The file's bytes (safetensors).
    pub fn to_bytes(&self) -> Vec<u8> {
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (mean, whiten) = (le(&self.mean), le(&self.whiten));
        let d = self.mean.len();
        let view = |data, shape| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape, data)
                .expect("shape matches the data")
        };
        let tensors = [
            ("mean", view(&mean[..], vec![d])),
            // Flat: `validate` checks it is d × d when it is read.
            ("whiten", view(&whiten[..], vec![self.whiten.len()])),
        ];
        let meta = HashMap::from([
            ("feature".to_string(), self.feature.clone()),
            ("threshold".to_string(), self.threshold.to_string()),
            ("provenance".to_string(), self.provenance.to_string()),
        ]);
        safetensors::serialize(tensors, &Some(meta)).expect("serialising to memory")
    }

    fn validate(&self) -> Result<(), String> {
        let d = self.mean.len();
        if self.feature != FEATURE {
            return Err(format!(
                "unknown feature {:?} (this build computes {FEATURE})",
                self.feature
            ));
        }
        if d == 0 || self.whiten.len() != d * d {
            return Err(format!(
                "{} mean values and {} whitening values do not make a square matrix",
                d,
                self.whiten.len()
            ));
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !finite(&self.mean) || !finite(&self.whiten) || !self.threshold.is_finite() {
            return Err("non-finite value".into());
        }
        if self.threshold <= 0.0 {
            return Err(format!("threshold {} is not positive", self.threshold));
        }
        Ok(())
    }

    /// The feature count.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Squared Mahalanobis distance of `features` from the fitting films, per
    /// feature. `features` must have [`dim`](Self::dim) values.
    pub fn distance(&self, features: &[f32]) -> f32 {
        let d = self.dim();
        assert_eq!(features.len(), d, "view check feature size");
        let centred: Vec<f32> = features
            .iter()
            .zip(&self.mean)
            .map(|(x, m)| x - m)
            .collect();
        let mut sum = 0f64;
        for (i, row) in self.whiten.chunks_exact(d).enumerate() {
            let z: f32 = row[..=i]
                .iter()
                .zip(&centred[..=i])
                .map(|(w, c)| w * c)
                .sum();
            sum += f64::from(z) * f64::from(z);
        }
        (sum / d as f64) as f32
    }

    /// The distance when it is within the threshold, else the refusal.
    pub fn judge(&self, features: &[f32]) -> Result<f32, Refusal> {
        let distance = self.distance(features);
        if distance.is_finite() && distance <= self.threshold {
            Ok(distance)
        } else {
            Err(Refusal::UnlikeFrontalChest {
                distance,
                threshold: self.threshold,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_average_each_quadrant_and_take_the_root() {
        // A 4 × 4 grid of 2 channels: channel 0 holds the quadrant's number
        // squared, channel 1 the cell index (one cell negative).
        let side = 4;
        let mut grid = Vec::new();
        for n in 0..side * side {
            let (y, x) = (n / side, n % side);
            let q = (y >= 2) as usize * 2 + (x >= 2) as usize;
            grid.extend([(q * q) as f32, if n == 0 { -4.0 } else { n as f32 }]);
        }
        let encoded = EncoderOutput {
            grid,
            ..EncoderOutput::default()
        };
        let f = features(&encoded, side);
        assert_eq!(f.len(), 8);
        for q in 0..4 {
            assert!((f[q * 2] - q as f32).abs() < 1e-6, "{f:?}");
        }
        // Top-left cells 0, 1, 4, 5 → (0 + 1 + 4 + 5) / 4 with cell 0 at -4: (−4+1+4+5)/4 = 1.5.
        assert!((f[1] - 1.5f32.sqrt()).abs() < 1e-6, "{f:?}");
        // A negative mean keeps its sign.
        let negative = EncoderOutput {
            grid: vec![-4.0, 9.0, 0.0, -1.0],
            ..EncoderOutput::default()
        };
        assert_eq!(features(&negative, 2), vec![-2.0, 3.0, 0.0, -1.0]);
        // A grid that is not side² cells gives no features (and the reporter an error).
        let odd = EncoderOutput {
            grid: vec![0.0; 15],
            ..EncoderOutput::default()
        };
        assert!(features(&odd, side).is_empty());
    }

    #[test]
    fn load_names_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let check = ViewCheck {
            feature: FEATURE.into(),
            mean: vec![0.0; 2],
            whiten: vec![1.0, 0.0, 0.0, 1.0],
            threshold: 2.0,
            provenance: serde_json::Value::Null,
        };
        std::fs::write(&path, check.to_bytes()).unwrap();
        let loaded = ViewCheck::load(&path).unwrap();
        assert_eq!(loaded, check);
        assert_eq!(loaded.judge(&[1.0, 1.0]), Ok(1.0));
        assert!(loaded.judge(&[3.0, 0.0]).is_err());
        for (bad, want) in [
            (
                ViewCheck {
                    whiten: vec![1.0; 3],
                    ..check.clone()
                },
                "square",
            ),
            (
                ViewCheck {
                    threshold: 0.0,
                    ..check.clone()
                },
                "not positive",
            ),
            (
                ViewCheck {
                    feature: "pooled".into(),
                    ..check.clone()
                },
                "unknown feature",
            ),
            (
                ViewCheck {
                    mean: vec![f32::NAN, 0.0],
                    ..check.clone()
                },
                "non-finite",
            ),
        ] {
            std::fs::write(&path, bad.to_bytes()).unwrap();
            let e = ViewCheck::load(&path).unwrap_err().to_string();
            assert!(e.contains(FILE) && e.contains(want), "{e}");
        }
        std::fs::write(&path, b"{\"not\": \"safetensors\"}").unwrap();
        let e = ViewCheck::load(&path).unwrap_err().to_string();
        assert!(e.contains("not a valid view check"), "{e}");
    }
}
