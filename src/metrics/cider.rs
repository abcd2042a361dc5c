//! CIDEr-D as pycocoevalcap's `Cider` (`cider/cider_scorer.py`, the coco-caption
//! code), one reference per candidate.
//!
//! Per n-gram order n = 1..4, texts become TF-IDF vectors: raw n-gram count times
//! `ln(N) − ln(max(1, df))`, where N is the number of candidate/reference pairs and
//! df the number of *references* containing the n-gram (so the IDF depends on the
//! evaluated corpus, as in pycocoevalcap). The similarity per order is
//! `Σ min(h, r)·r / (‖h‖·‖r‖)` (the "-D" clipping), times the Gaussian length penalty
//! `exp(−δ²/(2σ²))`, σ = 6. A pair's score is the mean over the four orders × 10; the
//! corpus score is the mean over pairs.
//!
//! Copied quirk: pycocoevalcap's "length" is the number of *bigrams* (its
//! `counts2vec` adds term frequencies when the 0-based order index is 1), not of
//! words. For texts of at least one word the difference δ is the same as with word
//! counts; it differs only when one side is empty. We keep it for exact parity.

use std::collections::{HashMap, HashSet};

/// Highest n-gram order.
pub const N: usize = 4;
/// Standard deviation of the length penalty.
pub const SIGMA: f64 = 6.0;

type Gram<'a, 'b> = &'b [&'a str];

struct Vector<'a, 'b> {
    weights: [HashMap<Gram<'a, 'b>, f64>; N],
    norms: [f64; N],
    length: f64,
}

fn counts<'a, 'b>(tokens: &'b [&'a str]) -> HashMap<Gram<'a, 'b>, usize> {
    let mut out = HashMap::new();
    for n in 1..=N {
        if tokens.len() >= n {
            for w in tokens.windows(n) {
                *out.entry(w).or_insert(0) += 1;
            }
        }
    }
    out
}

/// pycocoevalcap's `counts2vec`.
fn counts_to_vector<'a, 'b>(
    cnts: &HashMap<Gram<'a, 'b>, usize>,
    doc_freq: &HashMap<Gram<'a, 'b>, f64>,
    ref_len: f64,
) -> Vector<'a, 'b> {
    let mut v = Vector {
        weights: Default::default(),
        norms: [0.0; N],
        length: 0.0,
    };
    for (&g, &tf) in cnts {
        let df = doc_freq.get(g).copied().unwrap_or(0.0).max(1.0).ln();
        let n = g.len() - 1;
        let w = tf as f64 * (ref_len - df);
        v.weights[n].insert(g, w);
        v.norms[n] += w * w;
        if n == 1 {
            v.length += tf as f64;
        }
    }
    for norm in &mut v.norms {
        *norm = norm.sqrt();
    }
    v
}

/// Per-pair CIDEr-D scores (already ×10).
pub fn cider_d_pairs<S: AsRef<str>>(candidates: &[Vec<S>], references: &[Vec<S>]) -> Vec<f64> {
    let cands: Vec<Vec<&str>> = candidates
        .iter()
        .map(|t| t.iter().map(AsRef::as_ref).collect())
        .collect();
    let refs: Vec<Vec<&str>> = references
        .iter()
        .map(|t| t.iter().map(AsRef::as_ref).collect())
        .collect();
    let pairs = cands.len().min(refs.len());
    let cand_counts: Vec<_> = cands[..pairs].iter().map(|t| counts(t)).collect();
    let ref_counts: Vec<_> = refs[..pairs].iter().map(|t| counts(t)).collect();

    let mut doc_freq: HashMap<Gram, f64> = HashMap::new();
    for rc in &ref_counts {
        let unique: HashSet<_> = rc.keys().copied().collect();
        for g in unique {
            *doc_freq.entry(g).or_insert(0.0) += 1.0;
        }
    }
    let ref_len = (pairs as f64).ln();

    let to_vec = |cnts| counts_to_vector(cnts, &doc_freq, ref_len);

    cand_counts
        .iter()
        .zip(&ref_counts)
        .map(|(cc, rc)| {
            let h = to_vec(cc);
            let r = to_vec(rc);
            let delta = h.length - r.length;
            let penalty = std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
            let mut total = 0.0;
            for n in 0..N {
                let mut val: f64 = h.weights[n]
                    .iter()
                    .map(|(g, &hw)| {
                        let rw = r.weights[n].get(g).copied().unwrap_or(0.0);
                        hw.min(rw) * rw
                    })
                    .sum();
                if h.norms[n] != 0.0 && r.norms[n] != 0.0 {
                    val /= h.norms[n] * r.norms[n];
                }
                total += val * penalty;
            }
            total / N as f64 * 10.0
        })
        .collect()
}

/// Corpus CIDEr-D: the mean of [`cider_d_pairs`].
pub fn cider_d<S: AsRef<str>>(candidates: &[Vec<S>], references: &[Vec<S>]) -> f64 {
    let scores = cider_d_pairs(candidates, references);
    if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn identical_pairs_score_ten_when_every_ngram_is_informative() {
        // Disjoint vocabularies: every n-gram has df = 1 < N, so every weight is > 0;
        // at least four words, or the missing 4-gram order scores 0 (7.5 in total).
        let texts = vec![
            toks("heart size is normal"),
            toks("no pleural effusion seen"),
            toks("lungs are clear bilaterally"),
        ];
        let scores = cider_d_pairs(&texts, &texts);
        for s in scores {
            assert!((s - 10.0).abs() < 1e-12, "{s}");
        }
    }

    #[test]
    fn ngrams_in_every_reference_carry_no_weight() {
        let refs = vec![toks("no effusion"), toks("no pneumothorax")];
        let cands = vec![toks("no change"), toks("no change")];
        assert_eq!(cider_d(&cands, &refs), 0.0);
    }

    #[test]
    fn length_penalty_counts_bigrams() {
        let refs = vec![toks("a b c d e f g h i j k l m n"), toks("z")];
        let short = cider_d_pairs(&[toks("a b c"), toks("z")], &refs)[0];
        let long = cider_d_pairs(&[toks("a b c d e f g h i j"), toks("z")], &refs)[0];
        assert!(short < long && short > 0.0, "{short} {long}");
    }
}
