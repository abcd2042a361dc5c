//! Turning the findings head's scores into probabilities that mean what they say,
//! and choosing where a finding is flagged. Shared by the trainer (which picks the
//! thresholds its decoder is conditioned on) and the device's `calibrate` command
//! (which writes calibration and thresholds into the manifest and scores the test
//! films).
//!
//! Hand-written: a one-feature logistic fit (Platt) and pool-adjacent-violators
//! (isotonic) are a few dozen lines each, and no small, well-kept crate offers
//! them without a linear-algebra stack the device does not otherwise need.

use serde::{Deserialize, Serialize};

/// A monotone map from the head's sigmoid score to a calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// `p = σ(a · logit(s) + b)`.
    Platt { a: f32, b: f32 },
    /// Piecewise linear through `(x[i], y[i])` (increasing `x`, non-decreasing
    /// `y`), constant beyond the ends.
    Isotonic { x: Vec<f32>, y: Vec<f32> },
}

fn logit(s: f64) -> f64 {
    let s = s.clamp(1e-6, 1.0 - 1e-6);
    (s / (1.0 - s)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Calibration {
    /// The calibrated probability of sigmoid score `s`.
    pub fn apply(&self, s: f32) -> f32 {
        match self {
            Calibration::Platt { a, b } => {
                sigmoid(f64::from(*a) * logit(f64::from(s)) + f64::from(*b)) as f32
            }
            Calibration::Isotonic { x, y } => {
                let Some(last) = x.len().checked_sub(1) else {
                    return s;
                };
                if s <= x[0] {
                    return y[0];
                }
                if s >= x[last] {
                    return y[last];
                }
                let i = x.partition_point(|&v| v <= s).clamp(1, last);
                let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
                if x1 <= x0 {
                    return y1;
                }
                y0 + (y1 - y0) * (s - x0) / (x1 - x0)
            }
        }
    }

    /// Logistic regression of the labels on `logit(score)` (Newton's method),
    /// with Platt's smoothed targets so a perfectly separated set stays finite.
    pub fn fit_platt(scores: &[f32], labels: &[bool]) -> Calibration {
        let pos = labels.iter().filter(|&&l| l).count() as f64;
        let neg = labels.len() as f64 - pos;
        let (t_pos, t_neg) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
        let z: Vec<f64> = scores.iter().map(|&s| logit(f64::from(s))).collect();
        let t: Vec<f64> = labels
            .iter()
            .map(|&l| if l { t_pos } else { t_neg })
            .collect();
        let (mut a, mut b) = (1.0f64, 0.0f64);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (&zi, &ti) in z.iter().zip(&t) {
                let p = sigmoid(a * zi + b);
                let w = p * (1.0 - p);
                ga += (p - ti) * zi;
                gb += p - ti;
                haa += w * zi * zi;
                hab += w * zi;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-12 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            a -= da;
            b -= db;
            if da.abs() + db.abs() < 1e-10 {
                break;
            }
        }
        if a < 0.0 || !a.is_finite() || !b.is_finite() {
            // Scores that do not rank the labels: the base rate, flat.
            let rate = (pos + 1.0) / (pos + neg + 2.0);
            return Calibration::Platt {
                a: 0.0,
                b: logit(rate) as f32,
            };
        }
        Calibration::Platt {
            a: a as f32,
            b: b as f32,
        }
    }

    /// Pool-adjacent-violators on the scores sorted ascending.
    pub fn fit_isotonic(scores: &[f32], labels: &[bool]) -> Calibration {
        let mut pairs: Vec<(f32, f64)> = scores
            .iter()
            .zip(labels)
            .map(|(&s, &l)| (s, f64::from(u8::from(l))))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Blocks of (sum of labels, count, min score, max score).
        let mut blocks: Vec<(f64, f64, f32, f32)> = Vec::new();
        for (s, l) in pairs {
            blocks.push((l, 1.0, s, s));
            while blocks.len() > 1 {
                let n = blocks.len();
                let (b1, b2) = (blocks[n - 2], blocks[n - 1]);
                if b1.0 / b1.1 < b2.0 / b2.1 {
                    break;
                }
                blocks[n - 2] = (b1.0 + b2.0, b1.1 + b2.1, b1.2, b2.3);
                blocks.pop();
            }
        }
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (sum, count, lo, hi) in blocks {
            let p = (sum / count) as f32;
            x.push(lo);
            y.push(p);
            if hi > lo {
                x.push(hi);
                y.push(p);
            }
        }
        Calibration::Isotonic { x, y }
    }

    /// The smallest sigmoid score whose calibrated probability reaches `p` (for
    /// thresholds given as probabilities), by bisection; `None` if none does.
    pub fn inverse(&self, p: f32) -> Option<f32> {
        if self.apply(1.0) < p {
            return None;
        }
        let (mut lo, mut hi) = (0.0f32, 1.0f32);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            if self.apply(mid) >= p {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }
}

/// Mean negative log-likelihood of probabilities `p` for `labels`.
pub fn log_loss(p: &[f32], labels: &[bool]) -> f64 {
    let n = p.len().max(1) as f64;
    p.iter()
        .zip(labels)
        .map(|(&p, &l)| {
            let p = f64::from(p).clamp(1e-6, 1.0 - 1e-6);
            -if l { p.ln() } else { (1.0 - p).ln() }
        })
        .sum::<f64>()
        / n
}

/// Candidate calibrations and their cross-validated log loss.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationChoice {
    /// Log loss per method (`none`, `platt`, `isotonic`), out of fold.
    pub cv_log_loss: Vec<(String, f64)>,
    pub chosen: String,
    /// Fitted on all the given films (the identity, Platt a = 1, b = 0, when the
    /// raw score won: it is then already as calibrated as the data can tell).
    pub calibration: Calibration,
}

/// Choose among no calibration, Platt and isotonic by `folds`-fold
/// cross-validated log loss (films assigned to folds by index), then fit the
/// winner on everything.
pub fn choose(scores: &[f32], labels: &[bool], folds: usize) -> CalibrationChoice {
    let folds = folds.clamp(2, scores.len().max(2));
    type Fit = fn(&[f32], &[bool]) -> Calibration;
    let methods: [(&str, Option<Fit>); 3] = [
        ("none", None),
        ("platt", Some(Calibration::fit_platt)),
        ("isotonic", Some(Calibration::fit_isotonic)),
    ];
    let mut cv = Vec::new();
    for (name, fit) in methods {
        let mut out = vec![0f32; scores.len()];
        for k in 0..folds {
            let (mut ts, mut tl) = (Vec::new(), Vec::new());
            for (i, (&s, &l)) in scores.iter().zip(labels).enumerate() {
                if i % folds != k {
                    ts.push(s);
                    tl.push(l);
                }
            }
            let model = fit.map(|f| f(&ts, &tl));
            for (i, &s) in scores.iter().enumerate() {
                if i % folds == k {
                    out[i] = model.as_ref().map_or(s, |m| m.apply(s));
                }
            }
        }
        cv.push((name.to_string(), log_loss(&out, labels)));
    }
    let (best, fit) = cv
        .iter()
        .zip(methods)
        .min_by(|a, b| a.0 .1.total_cmp(&b.0 .1))
        .map(|(c, m)| (c.0.clone(), m.1))
        .expect("three methods");
    CalibrationChoice {
        cv_log_loss: cv,
        chosen: best,
        calibration: fit.map_or(Calibration::Platt { a: 1.0, b: 0.0 }, |f| f(scores, labels)),
    }
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Serialize)]
pub struct ReliabilityBin {
    pub lo: f32,
    pub hi: f32,
    pub films: usize,
    pub mean_probability: f64,
    pub observed_rate: f64,
}

/// Expected calibration error over `bins` equal-width bins, and the bins.
pub fn reliability(p: &[f32], labels: &[bool], bins: usize) -> (f64, Vec<ReliabilityBin>) {
    let mut out = Vec::new();
    let mut ece = 0.0;
    for b in 0..bins {
        let lo = b as f32 / bins as f32;
        let hi = (b + 1) as f32 / bins as f32;
        let inside: Vec<(f32, bool)> = p
            .iter()
            .zip(labels)
            .filter(|(&x, _)| x >= lo && (x < hi || (b + 1 == bins && x <= hi)))
            .map(|(&x, &l)| (x, l))
            .collect();
        if inside.is_empty() {
            continue;
        }
        let n = inside.len() as f64;
        let mean = inside.iter().map(|(x, _)| f64::from(*x)).sum::<f64>() / n;
        let rate = inside.iter().filter(|(_, l)| *l).count() as f64 / n;
        ece += n / p.len() as f64 * (mean - rate).abs();
        out.push(ReliabilityBin {
            lo,
            hi,
            films: inside.len(),
            mean_probability: mean,
            observed_rate: rate,
        });
    }
    (ece, out)
}

/// Where a finding is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatingPoint {
    /// The highest threshold keeping validation sensitivity at or above the
    /// target (a screening point: few missed findings, more flags).
    Sensitivity(f32),
    /// The lowest threshold keeping validation specificity at or above the
    /// target (few false flags on normal films, findings missed more often).
    Specificity(f32),
    /// Youden's J (sensitivity + specificity − 1) at its largest.
    Youden,
}

impl std::fmt::Display for OperatingPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperatingPoint::Sensitivity(s) => write!(f, "sensitivity ≥ {s:.2} on validation"),
            OperatingPoint::Specificity(s) => write!(f, "specificity ≥ {s:.2} on validation"),
            OperatingPoint::Youden => write!(f, "largest Youden's J on validation"),
        }
    }
}

/// The threshold on `scores` for `point`; `None` without positives and negatives.
pub fn choose_threshold(scores: &[f32], labels: &[bool], point: OperatingPoint) -> Option<f32> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut sorted: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best: Option<(f64, f32)> = None;
    for (i, &(s, l)) in sorted.iter().enumerate() {
        if l {
            tp += 1;
        } else {
            fp += 1;
        }
        // Only cut between distinct scores.
        if sorted.get(i + 1).is_some_and(|n| n.0 == s) {
            continue;
        }
        let sens = tp as f64 / pos as f64;
        let spec = 1.0 - fp as f64 / neg as f64;
        match point {
            OperatingPoint::Sensitivity(target) => {
                if sens >= f64::from(target) {
                    return Some(s);
                }
            }
            OperatingPoint::Specificity(target) => {
                // Scores fall as the cut moves down: keep the last cut that
                // still meets the target.
                if spec >= f64::from(target) {
                    best = Some((spec, s));
                } else {
                    break;
                }
            }
            OperatingPoint::Youden => {
                let j = sens + spec - 1.0;
                if best.is_none_or(|b| j > b.0) {
                    best = Some((j, s));
                }
            }
        }
    }
    best.map(|b| b.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn synthetic(n: usize) -> (Vec<f32>, Vec<bool>) {
        // Overconfident scores: the true probability is sqrt-compressed.
        let mut s = Vec::new();
        let mut l = Vec::new();
        for i in 0..n {
            let x = (i as f32 + 0.5) / n as f32;
            s.push(x);
            let p = 0.5 + (x - 0.5) * 0.4;
            l.push(((i * 7919) % 1000) as f32 / 1000.0 < p);
        }
        (s, l)
    }

    #[test]
    fn calibration_lowers_the_loss_of_overconfident_scores() {
        let (s, l) = synthetic(2000);
        let raw = log_loss(&s, &l);
        let c = choose(&s, &l, 5);
        let fitted = c.calibration.clone();
        let cal: Vec<f32> = s.iter().map(|&x| fitted.apply(x)).collect();
        assert!(log_loss(&cal, &l) < raw - 0.02, "{c:?}");
        let (ece_raw, _) = reliability(&s, &l, 10);
        let (ece_cal, bins) = reliability(&cal, &l, 10);
        assert!(ece_cal < ece_raw / 2.0, "{ece_raw} → {ece_cal}");
        assert_eq!(bins.iter().map(|b| b.films).sum::<usize>(), 2000);
    }

    #[test]
    fn thresholds_meet_their_operating_point() {
        let (s, l) = synthetic(500);
        let t = choose_threshold(&s, &l, OperatingPoint::Sensitivity(0.8)).unwrap();
        let pos = l.iter().filter(|&&x| x).count() as f64;
        let caught = s.iter().zip(&l).filter(|(&x, &y)| y && x >= t).count() as f64;
        assert!(caught / pos >= 0.8);
        // One step higher would miss the target.
        let above = s
            .iter()
            .copied()
            .filter(|&x| x > t)
            .fold(f32::MAX, f32::min);
        let caught = s.iter().zip(&l).filter(|(&x, &y)| y && x >= above).count() as f64;
        assert!(caught / pos < 0.8);
        assert!(choose_threshold(&s, &l, OperatingPoint::Youden).is_some());
        let t = choose_threshold(&s, &l, OperatingPoint::Specificity(0.9)).unwrap();
        let neg = l.iter().filter(|&&x| !x).count() as f64;
        let cleared = s.iter().zip(&l).filter(|(&x, &y)| !y && x < t).count() as f64;
        assert!(cleared / neg >= 0.9);
        let below = s
            .iter()
            .copied()
            .filter(|&x| x < t)
            .fold(f32::MIN, f32::max);
        let cleared = s.iter().zip(&l).filter(|(&x, &y)| !y && x < below).count() as f64;
        assert!(cleared / neg < 0.9, "the next lower cut misses the target");
        assert_eq!(
            choose_threshold(&s, &vec![false; s.len()], OperatingPoint::Youden),
            None
        );
    }

    proptest! {
        #[test]
        fn calibrations_are_monotone_and_invertible(
            data in proptest::collection::vec((0f32..1.0, any::<bool>()), 5..200),
        ) {
            let (s, l): (Vec<f32>, Vec<bool>) = data.into_iter().unzip();
            for c in [Calibration::fit_platt(&s, &l), Calibration::fit_isotonic(&s, &l)] {
                let mut last = -1.0f32;
                for i in 0..=100 {
                    let p = c.apply(i as f32 / 100.0);
                    prop_assert!((0.0..=1.0).contains(&p));
                    prop_assert!(p >= last - 1e-6);
                    last = p;
                }
                if let Some(t) = c.inverse(0.5) {
                    prop_assert!(c.apply(t) >= 0.5 - 1e-4);
                }
            }
        }
    }
}
