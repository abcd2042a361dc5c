//! Fitting a [`ViewCheck`]: the mean and a Ledoit–Wolf shrunk covariance of the
//! frontal films' features, its Cholesky factor, and the threshold.
//!
//! The linear algebra is one symmetric positive definite factorisation of a
//! 512 × 512 matrix at fit time; it is written out here (Cholesky and a
//! triangular inverse, ~40 lines, tested against the identity) rather than
//! pulling a linear-algebra crate into every cold build of the device binary.

use super::ViewCheck;

/// Why the statistics cannot be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("need at least 2 feature vectors, got {0}")]
    TooFew(usize),
    #[error("feature vector {index} has {got} values, the first has {expected}")]
    Ragged {
        index: usize,
        expected: usize,
        got: usize,
    },
    #[error("the covariance is not positive definite (pivot {0})")]
    NotPositiveDefinite(usize),
}

/// A fitted Gaussian: mean, whitening matrix and the shrinkage used.
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    /// `L⁻¹`, lower triangular, row-major.
    pub whiten: Vec<f64>,
    /// Ledoit–Wolf shrinkage towards a scaled identity, in `[0, 1]`.
    pub shrinkage: f64,
}

impl Gaussian {
    /// Fit on `rows` (each one feature vector).
    pub fn fit(rows: &[Vec<f32>]) -> Result<Gaussian, FitError> {
        let n = rows.len();
        if n < 2 {
            return Err(FitError::TooFew(n));
        }
        let d = rows[0].len();
        if let Some((index, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != d) {
            return Err(FitError::Ragged {
                index,
                expected: d,
                got: r.len(),
            });
        }
        let mean: Vec<f64> = (0..d)
            .map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n as f64)
            .collect();
        let centred: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&mean)
                    .map(|(x, m)| f64::from(*x) - m)
                    .collect()
            })
            .collect();
        let (cov, shrinkage) = ledoit_wolf(&centred, d);
        let l = cholesky(&cov, d)?;
        Ok(Gaussian {
            mean,
            whiten: invert_lower(&l, d),
            shrinkage,
        })
    }

    /// Squared Mahalanobis distance per feature (as [`ViewCheck::distance`]).
    pub fn distance(&self, x: &[f32]) -> f64 {
        let d = self.mean.len();
        let c: Vec<f64> = x
            .iter()
            .zip(&self.mean)
            .map(|(x, m)| f64::from(*x) - m)
            .collect();
        let sum: f64 = (0..d)
            .map(|i| {
                let z: f64 = (0..=i).map(|j| self.whiten[i * d + j] * c[j]).sum();
                z * z
            })
            .sum();
        sum / d as f64
    }

    /// The device's form, with a threshold and provenance.
    pub fn into_check(self, threshold: f32, provenance: serde_json::Value) -> ViewCheck {
        ViewCheck {
            feature: super::FEATURE.into(),
            mean: self.mean.iter().map(|&x| x as f32).collect(),
            whiten: self.whiten.iter().map(|&x| x as f32).collect(),
            threshold,
            provenance,
        }
    }
}

/// Sample covariance shrunk towards `μ I` with the Ledoit–Wolf (2004) weight;
/// returns the matrix (row-major) and the weight.
fn ledoit_wolf(centred: &[Vec<f64>], d: usize) -> (Vec<f64>, f64) {
    let n = centred.len() as f64;
    let mut s = vec![0f64; d * d];
    for x in centred {
        for i in 0..d {
            for j in 0..d {
                s[i * d + j] += x[i] * x[j];
            }
        }
    }
    s.iter_mut().for_each(|v| *v /= n);
    let mu = (0..d).map(|i| s[i * d + i]).sum::<f64>() / d as f64;
    let frob = |m: &[f64]| m.iter().map(|v| v * v).sum::<f64>();
    // δ² = ‖S − μI‖² / d
    let mut target_gap = s.clone();
    (0..d).for_each(|i| target_gap[i * d + i] -= mu);
    let delta2 = frob(&target_gap) / d as f64;
    // β̄² = (1/n²) Σ_k ‖x_k x_kᵀ − S‖² / d, with ‖x xᵀ − S‖² = ‖x‖⁴ − 2 xᵀSx + ‖S‖².
    let s_norm = frob(&s);
    let beta2: f64 = centred
        .iter()
        .map(|x| {
            let xx: f64 = x.iter().map(|v| v * v).sum();
            let xsx: f64 = (0..d)
                .map(|i| x[i] * (0..d).map(|j| s[i * d + j] * x[j]).sum::<f64>())
                .sum();
            xx * xx - 2.0 * xsx + s_norm
        })
        .sum::<f64>()
        / (n * n * d as f64);
    let shrinkage = if delta2 > 0.0 {
        (beta2.min(delta2) / delta2).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let mut out: Vec<f64> = s.iter().map(|v| v * (1.0 - shrinkage)).collect();
    (0..d).for_each(|i| out[i * d + i] += shrinkage * mu);
    (out, shrinkage)
}

/// Lower Cholesky factor `L` with `A = L Lᵀ`.
fn cholesky(a: &[f64], d: usize) -> Result<Vec<f64>, FitError> {
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let dot: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - dot;
                if v <= 0.0 || !v.is_finite() {
                    return Err(FitError::NotPositiveDefinite(i));
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - dot) / l[j * d + j];
            }
        }
    }
    Ok(l)
}

/// Inverse of a lower triangular matrix (forward substitution per column).
fn invert_lower(l: &[f64], d: usize) -> Vec<f64> {
    let mut inv = vec![0f64; d * d];
    for col in 0..d {
        inv[col * d + col] = 1.0 / l[col * d + col];
        for i in col + 1..d {
            let dot: f64 = (col..i).map(|k| l[i * d + k] * inv[k * d + col]).sum();
            inv[i * d + col] = -dot / l[i * d + i];
        }
    }
    inv
}

/// The value below which a `fraction` of `values` lie (linear interpolation
/// between order statistics).
pub fn quantile(values: &[f64], fraction: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = fraction.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sample(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let z: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
                // Correlated features: x_j = z_j + 0.8 z_{j-1}, scaled per column.
                (0..d)
                    .map(|j| (z[j] + if j > 0 { 0.8 * z[j - 1] } else { 0.0 }) * (1.0 + j as f32))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn whitening_inverts_the_cholesky_factor() {
        let d = 6;
        let rows = sample(200, d, 1);
        let centred: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.iter().map(|&x| f64::from(x)).collect())
            .collect();
        let (cov, _) = ledoit_wolf(&centred, d);
        let l = cholesky(&cov, d).unwrap();
        let w = invert_lower(&l, d);
        for i in 0..d {
            for j in 0..d {
                let p: f64 = (0..d).map(|k| w[i * d + k] * l[k * d + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((p - want).abs() < 1e-9, "W·L[{i}][{j}] = {p}");
            }
        }
    }

    #[test]
    fn typical_points_are_near_one_and_outliers_far() {
        let rows = sample(2000, 8, 2);
        let g = Gaussian::fit(&rows).unwrap();
        let held_out = sample(500, 8, 3);
        let typical: Vec<f64> = held_out.iter().map(|r| g.distance(r)).collect();
        let median = quantile(&typical, 0.5);
        assert!((0.6..1.4).contains(&median), "median distance {median}");
        // An input that breaks the correlation between neighbours is far away
        // even though each value is within the training range.
        let odd: Vec<f32> = (0..8)
            .map(|j| if j % 2 == 0 { 1.5 } else { -1.5 } * (1.0 + j as f32))
            .collect();
        assert!(
            g.distance(&odd) > quantile(&typical, 0.99),
            "{}",
            g.distance(&odd)
        );
        let check = g.clone().into_check(2.0, serde_json::Value::Null);
        assert!(
            (f64::from(check.distance(&odd)) - g.distance(&odd)).abs() < 1e-3 * g.distance(&odd)
        );
    }

    #[test]
    fn refuses_too_few_or_ragged_rows() {
        assert!(matches!(
            Gaussian::fit(&[vec![1.0]]),
            Err(FitError::TooFew(1))
        ));
        let rows = vec![vec![1.0, 2.0], vec![1.0]];
        assert!(matches!(
            Gaussian::fit(&rows),
            Err(FitError::Ragged { index: 1, .. })
        ));
    }

    #[test]
    fn quantile_interpolates() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
    }
}
