//! Length distributions, used to choose the decoder's maximum length and reported by
//! `cxr-train data stats`.

use serde::{Deserialize, Serialize};

/// Summary of a list of lengths; percentiles by the nearest-rank method (the
/// smallest value with at least p% of the data at or below it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct LengthStats {
    pub count: usize,
    pub min: usize,
    pub max: usize,
    pub mean: f64,
    pub p50: usize,
    pub p90: usize,
    pub p95: usize,
    pub p99: usize,
}

impl LengthStats {
    /// All zeros for an empty input.
    pub fn of(lengths: impl IntoIterator<Item = usize>) -> Self {
        let mut v: Vec<usize> = lengths.into_iter().collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        let rank = |p: usize| v[(p * v.len()).div_ceil(100).max(1) - 1];
        Self {
            count: v.len(),
            min: v[0],
            max: v[v.len() - 1],
            mean: v.iter().sum::<usize>() as f64 / v.len() as f64,
            p50: rank(50),
            p90: rank(90),
            p95: rank(95),
            p99: rank(99),
        }
    }
}
