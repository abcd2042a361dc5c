//! Is one system's text really better than another's on the same films?
//!
//! Corpus metrics on a couple of hundred films with one findings-matched
//! reference each move a lot with the films drawn. [`paired_differences`]
//! resamples the films with replacement and scores both systems on the same
//! resample, so each difference (A − B) comes with a bootstrap 95 % interval: an
//! interval that holds 0 is no evidence either way.

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{evaluate, Interval, MetricsError, Scores};

/// A − B for each headline metric, with its interval.
#[derive(Debug, Clone, Serialize)]
pub struct Differences {
    pub resamples: usize,
    pub bleu_1: Interval,
    pub bleu_4: Interval,
    pub rouge_l: Interval,
    pub cider_d: Interval,
}

fn headline(s: &Scores) -> [f64; 4] {
    [s.bleu[0], s.bleu[3], s.rouge_l, s.cider_d]
}

/// Differences of `a` minus `b` (candidates for the same films, in the order of
/// `references`), resampled `resamples` times from `seed`.
pub fn paired_differences(
    a: &[String],
    b: &[String],
    references: &[String],
    resamples: usize,
    seed: u64,
) -> Result<Differences, MetricsError> {
    let diff = |idx: &[usize]| -> Result<[f64; 4], MetricsError> {
        let pick = |v: &[String]| idx.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
        let refs = pick(references);
        let (sa, sb) = (evaluate(&pick(a), &refs)?, evaluate(&pick(b), &refs)?);
        let (ha, hb) = (headline(&sa), headline(&sb));
        Ok([0, 1, 2, 3].map(|k| ha[k] - hb[k]))
    };
    let n = references.len();
    let point = diff(&(0..n).collect::<Vec<_>>())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut draws: [Vec<f64>; 4] = Default::default();
    for _ in 0..resamples {
        let idx: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
        for (k, d) in diff(&idx)?.into_iter().enumerate() {
            draws[k].push(d);
        }
    }
    let interval = |k: usize| {
        let mut xs = draws[k].clone();
        xs.sort_by(f64::total_cmp);
        let q = |p: f64| {
            xs.get(((xs.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(point[k])
        };
        Interval {
            value: point[k],
            lo: q(0.025),
            hi: q(0.975),
        }
    };
    Ok(Differences {
        resamples,
        bleu_1: interval(0),
        bleu_4: interval(1),
        rouge_l: interval(2),
        cider_d: interval(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_of_the_references_beats_a_constant_and_equal_systems_tie() {
        let refs: Vec<String> = (0..40)
            .map(|i| match i % 4 {
                0 => "no acute cardiopulmonary abnormality".to_string(),
                1 => "cardiomegaly with small pleural effusions".to_string(),
                2 => "right lower lobe pneumonia".to_string(),
                _ => "no active disease".to_string(),
            })
            .collect();
        let constant = vec!["no acute disease".to_string(); refs.len()];
        let d = paired_differences(&refs, &constant, &refs, 200, 1).unwrap();
        assert!(d.bleu_1.lo > 0.0 && d.cider_d.lo > 0.0, "{d:?}");
        assert!(d.bleu_1.lo <= d.bleu_1.value && d.bleu_1.value <= d.bleu_1.hi);
        let same = paired_differences(&constant, &constant, &refs, 50, 1).unwrap();
        assert_eq!((same.rouge_l.lo, same.rouge_l.hi), (0.0, 0.0));
    }
}
