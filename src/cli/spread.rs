//! Repeated measurements summarised as a median with its spread, so that a
//! reader of a benchmark can tell a real difference from a busy machine: two
//! figures whose interquartile ranges overlap are not shown to differ.

use serde::Serialize;

/// Median, quartiles and extremes of one set of measurements (quantiles by
/// linear interpolation between ranks, as numpy's default; all zero for an
/// empty set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(mut v: Vec<f64>) -> Spread {
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Spread::default();
        }
        let quantile = |q: f64| {
            let pos = q * (n - 1) as f64;
            let (lo, frac) = (pos.floor() as usize, pos.fract());
            let hi = (lo + 1).min(n - 1);
            v[lo] + (v[hi] - v[lo]) * frac
        };
        Spread {
            median: quantile(0.5),
            p25: quantile(0.25),
            p75: quantile(0.75),
            min: v[0],
            max: v[n - 1],
            n,
        }
    }

    /// The spread of one figure `f` over `items` (e.g. one stage's time over
    /// a benchmark's samples).
    pub fn over<T>(items: &[T], f: impl Fn(&T) -> f64) -> Spread {
        Spread::of(items.iter().map(f).collect())
    }

    /// `median (p25–p75)` with `decimals` decimals.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.p25,
            self.p75,
            d = decimals
        )
    }
}

/// Ratio of two medians with the range of the ratios of the quartiles that
/// bound it: `a.p25 / b.p75` to `a.p75 / b.p25`. A range that contains 1.0
/// means the two are not shown to differ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Ratio {
    /// `None` when `b` has no positive measurements.
    pub fn of(a: &Spread, b: &Spread) -> Option<Ratio> {
        (b.median > 0.0 && b.p25 > 0.0 && a.n > 0).then(|| Ratio {
            median: a.median / b.median,
            low: a.p25 / b.p75,
            high: a.p75 / b.p25,
        })
    }

    pub fn show(&self) -> String {
        format!("{:.2}× ({:.2}–{:.2})", self.median, self.low, self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_of_known_sets() {
        let s = Spread::of((1..=9).map(f64::from).collect());
        assert_eq!(
            (s.median, s.p25, s.p75, s.min, s.max, s.n),
            (5.0, 3.0, 7.0, 1.0, 9.0, 9)
        );
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.p25, s.p75), (2.5, 1.75, 3.25));
        assert_eq!(s.show(2), "2.50 (1.75–3.25)");
        assert_eq!(Spread::of(vec![]), Spread::default());
        assert_eq!(Spread::of(vec![f64::NAN, 2.0]).n, 1);
    }

    #[test]
    fn ratio_bounds_come_from_opposite_quartiles() {
        let a = Spread::of(vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        let b = Spread::of(vec![10.0, 8.0, 6.0, 4.0, 2.0]);
        let r = Ratio::of(&a, &b).unwrap();
        assert_eq!((r.median, r.low, r.high), (0.5, 0.25, 1.0));
        assert_eq!(r.show(), "0.50× (0.25–1.00)");
        assert!(Ratio::of(&a, &Spread::default()).is_none());
    }
}
