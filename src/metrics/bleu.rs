//! Corpus BLEU exactly as NLTK's `nltk.translate.bleu_score.corpus_bleu` with
//! weights `(1/n, …, 1/n)`, no smoothing and one reference per hypothesis.
//!
//! The details that decide the last digits, all copied from NLTK:
//! - modified precision: each hypothesis n-gram count is clipped by its count in the
//!   reference; per sentence the denominator is `max(1, number of hypothesis n-grams)`;
//!   NLTK keeps these as unreduced `Fraction`s and adds numerators and denominators
//!   over the corpus, so the corpus precision is `Σ clipped / Σ max(1, count)`;
//! - brevity penalty on corpus lengths with the closest reference length
//!   (`1` if the hypotheses are longer, else `exp(1 - r/c)`);
//! - if no unigram matches at all, NLTK returns exactly `0`;
//! - otherwise an order with zero matches is replaced by the smallest positive
//!   normal float (NLTK's `SmoothingFunction().method0`, which also warns "The
//!   hypothesis contains 0 counts of n-gram overlaps"), so that BLEU is a tiny positive
//!   number (≈ 1e-77 for BLEU-4), not 0;
//! - the weighted log precisions are added with `math.fsum` (correctly rounded),
//!   reproduced by [`fsum`].

use std::collections::HashMap;

/// Corpus BLEU-1..4 of tokenised hypotheses against one tokenised reference each.
/// Slices of different length are scored pairwise up to the shorter one.
pub fn corpus_bleu<S: AsRef<str>>(hypotheses: &[Vec<S>], references: &[Vec<S>]) -> [f64; 4] {
    let mut numerators = [0u64; 4];
    let mut denominators = [0u64; 4];
    let (mut hyp_len, mut ref_len) = (0usize, 0usize);
    for (hyp, reference) in hypotheses.iter().zip(references) {
        let hyp: Vec<&str> = hyp.iter().map(AsRef::as_ref).collect();
        let reference: Vec<&str> = reference.iter().map(AsRef::as_ref).collect();
        for n in 1..=4 {
            let (num, den) = modified_precision(&hyp, &reference, n);
            numerators[n - 1] += num;
            denominators[n - 1] += den;
        }
        hyp_len += hyp.len();
        ref_len += reference.len();
    }
    let bp = brevity_penalty(ref_len, hyp_len);
    let mut out = [0.0; 4];
    if numerators[0] == 0 {
        return out;
    }
    for (order, slot) in out.iter_mut().enumerate() {
        let n = order + 1;
        let weight = 1.0 / n as f64;
        let terms: Vec<f64> = (0..n)
            .map(|i| {
                let p = if numerators[i] != 0 {
                    numerators[i] as f64 / denominators[i] as f64
                } else {
                    f64::MIN_POSITIVE
                };
                weight * p.ln()
            })
            .collect();
        *slot = bp * fsum(&terms).exp();
    }
    out
}

/// NLTK's `modified_precision` as an unreduced fraction (numerator, denominator).
pub fn modified_precision(hypothesis: &[&str], reference: &[&str], n: usize) -> (u64, u64) {
    let hyp_counts = ngram_counts(hypothesis, n);
    let ref_counts = ngram_counts(reference, n);
    let clipped: usize = hyp_counts
        .iter()
        .map(|(g, &c)| c.min(ref_counts.get(g).copied().unwrap_or(0)))
        .sum();
    let total: usize = hyp_counts.values().sum();
    (clipped as u64, total.max(1) as u64)
}

/// NLTK's `brevity_penalty(closest_ref_len, hyp_len)`.
pub fn brevity_penalty(closest_ref_len: usize, hyp_len: usize) -> f64 {
    if hyp_len > closest_ref_len {
        1.0
    } else if hyp_len == 0 {
        0.0
    } else {
        (1.0 - closest_ref_len as f64 / hyp_len as f64).exp()
    }
}

fn ngram_counts<'a, 'b>(tokens: &'b [&'a str], n: usize) -> HashMap<&'b [&'a str], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// Correctly rounded sum of floats, a port of CPython's `math.fsum` (Shewchuk's
/// algorithm with the half-even correction), for finite inputs.
pub fn fsum(values: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &value in values {
        let mut x = value;
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    let Some(mut n) = partials.len().checked_sub(1) else {
        return 0.0;
    };
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        let y = partials[n - 1];
        n -= 1;
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn identical_corpus_scores_one() {
        let h = vec![toks("the heart is normal in size and contour")];
        let b = corpus_bleu(&h, &h);
        for v in b {
            assert!((v - 1.0).abs() < 1e-12, "{b:?}");
        }
    }

    #[test]
    fn clipping_and_brevity_follow_the_textbook_example() {
        // Papineni et al.: "the the the the the the the" vs a reference with two "the".
        let h = vec![toks("the the the the the the the")];
        let r = vec![toks("the cat is on the mat")];
        assert_eq!(modified_precision(&h[0], &r[0], 1), (2, 7));
        let b = corpus_bleu(&h, &r);
        assert!((b[0] - 2.0 / 7.0).abs() < 1e-15);
        // Short hypothesis: penalty exp(1 - 6/3).
        assert!((brevity_penalty(6, 3) - (-1.0f64).exp()).abs() < 1e-15);
    }

    #[test]
    fn no_unigram_match_is_exactly_zero_and_missing_orders_are_tiny() {
        let b = corpus_bleu(&[toks("a b")], &[toks("c d")]);
        assert_eq!(b, [0.0; 4]);
        let b = corpus_bleu(&[toks("a b c")], &[toks("a c b")]);
        assert!(b[0] > 0.9 && b[2] > 0.0 && b[2] < 1e-50, "{b:?}");
    }

    #[test]
    fn fsum_is_exact_where_naive_summation_is_not() {
        assert_eq!(fsum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(fsum(&[0.1; 10]), 1.0);
        assert_eq!(fsum(&[]), 0.0);
    }
}
