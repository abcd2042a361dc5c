//! Area under the ROC curve of a score against binary labels.

/// AUROC by the rank-sum (Mann–Whitney) formula, ties getting half credit;
/// `None` when the labels hold one class only.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

/// A figure with its bootstrap 95 % interval (2.5th and 97.5th percentiles).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// AUROC of each column of `scores` (one row per film) against `labels`, and
/// their mean over the columns that have both classes, each with a bootstrap 95 %
/// interval. Films are resampled with replacement (`resamples` times, seeded),
/// the same films for every column, so the mean's interval is joint.
pub fn auroc_intervals(
    scores: &[Vec<f32>],
    labels: &[Vec<bool>],
    resamples: usize,
    seed: u64,
) -> (Vec<Option<Interval>>, Option<Interval>) {
    use rand::{Rng, SeedableRng};
    let columns = scores.first().map_or(0, Vec::len);
    let n = scores.len();
    let column = |c: usize, idx: &[usize]| -> Option<f64> {
        let s: Vec<f32> = idx.iter().map(|&i| scores[i][c]).collect();
        let l: Vec<bool> = idx.iter().map(|&i| labels[i][c]).collect();
        auroc(&s, &l)
    };
    let all: Vec<usize> = (0..n).collect();
    let point: Vec<Option<f64>> = (0..columns).map(|c| column(c, &all)).collect();
    let valid: Vec<usize> = (0..columns).filter(|&c| point[c].is_some()).collect();
    let mean_of = |v: &[Option<f64>]| -> Option<f64> {
        let xs: Vec<f64> = valid.iter().filter_map(|&c| v[c]).collect();
        (xs.len() == valid.len() && !xs.is_empty())
            .then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); columns];
    let mut means = Vec::new();
    for _ in 0..resamples {
        let idx: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
        let v: Vec<Option<f64>> = (0..columns).map(|c| column(c, &idx)).collect();
        for (c, x) in v.iter().enumerate() {
            if let Some(x) = x {
                per[c].push(*x);
            }
        }
        if let Some(m) = mean_of(&v) {
            means.push(m);
        }
    }
    let interval = |value: f64, mut xs: Vec<f64>| -> Interval {
        xs.sort_by(f64::total_cmp);
        let q = |p: f64| {
            xs.get(((xs.len() as f64 - 1.0) * p).round() as usize)
                .copied()
        };
        Interval {
            value,
            lo: q(0.025).unwrap_or(value),
            hi: q(0.975).unwrap_or(value),
        }
    };
    let each = point
        .iter()
        .zip(per)
        .map(|(p, xs)| p.map(|v| interval(v, xs)))
        .collect();
    let mean = mean_of(&point).map(|m| interval(m, means));
    (each, mean)
}

#[cfg(test)]
mod tests {
    use super::{auroc, auroc_intervals};

    #[test]
    fn intervals_contain_the_point_and_narrow_with_more_films() {
        let make = |n: usize| -> (Vec<Vec<f32>>, Vec<Vec<bool>>) {
            let s = (0..n)
                .map(|i| vec![(i % 97) as f32, (i % 13) as f32])
                .collect();
            let l = (0..n)
                .map(|i| vec![(i % 97) > 40 + (i % 11) * 3, i % 3 == 0])
                .collect();
            (s, l)
        };
        let (s, l) = make(200);
        let (each, mean) = auroc_intervals(&s, &l, 300, 1);
        let m = mean.unwrap();
        assert!(m.lo <= m.value && m.value <= m.hi, "{m:?}");
        let first = each[0].unwrap();
        assert!(first.value > 0.8 && first.lo < first.value && first.hi > first.value);
        let (s, l) = make(2000);
        let big = auroc_intervals(&s, &l, 300, 1).1.unwrap();
        assert!(big.hi - big.lo < (m.hi - m.lo) * 0.6, "{big:?} vs {m:?}");
    }

    #[test]
    fn matches_hand_computed_values() {
        assert_eq!(
            auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auroc(&[0.1, 0.2], &[false, true]), Some(1.0));
        assert_eq!(auroc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.5, 0.7], &[true, true]), None);
    }
}
