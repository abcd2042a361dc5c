//! ROUGE-L in the two flavours people cite.
//!
//! - [`rouge_l_coco`]: pycocoevalcap's `Rouge` (the coco-caption code the R2Gen line
//!   of work reports): tokens are `text.split(" ")`; F = (1+β²)·P·R / (R + β²·P)
//!   with β = 1.2, 0 when P or R is 0; the corpus score is the mean over pairs.
//! - [`rouge_l_rouge_score`]: Google's `rouge-score` package, `rougeL` fmeasure
//!   (β = 1, i.e. F1) with its default tokenizer and no stemmer; 0 when either side
//!   has no token; the corpus score is the mean over pairs (the package itself only
//!   scores pairs).

/// pycocoevalcap's β.
pub const COCO_BETA: f64 = 1.2;

/// Length of the longest common subsequence of two token sequences.
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// pycocoevalcap `Rouge.calc_score` for one candidate and one reference.
pub fn rouge_l_coco_pair(candidate: &str, reference: &str) -> f64 {
    // Python's `str.split(" ")`: keeps empty strings, so "" is one empty token.
    let c: Vec<&str> = candidate.split(' ').collect();
    let r: Vec<&str> = reference.split(' ').collect();
    let lcs = lcs_len(&r, &c) as f64;
    let prec = lcs / c.len() as f64;
    let rec = lcs / r.len() as f64;
    if prec != 0.0 && rec != 0.0 {
        let b2 = COCO_BETA * COCO_BETA;
        ((1.0 + b2) * prec * rec) / (rec + b2 * prec)
    } else {
        0.0
    }
}

/// pycocoevalcap `Rouge.compute_score`: mean of the per-pair scores.
pub fn rouge_l_coco<S: AsRef<str>>(candidates: &[S], references: &[S]) -> f64 {
    mean(
        candidates
            .iter()
            .zip(references)
            .map(|(c, r)| rouge_l_coco_pair(c.as_ref(), r.as_ref())),
    )
}

/// The `rouge-score` package's default tokenizer without stemming: lowercase,
/// every run of characters outside `[a-z0-9]` becomes a separator.
pub fn rouge_score_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `rouge_scorer.RougeScorer(["rougeL"]).score(reference, candidate)["rougeL"].fmeasure`.
pub fn rouge_l_rouge_score_pair(candidate: &str, reference: &str) -> f64 {
    let c = rouge_score_tokens(candidate);
    let r = rouge_score_tokens(reference);
    if c.is_empty() || r.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(&r, &c) as f64;
    let precision = lcs / c.len() as f64;
    let recall = lcs / r.len() as f64;
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// Mean over pairs of [`rouge_l_rouge_score_pair`].
pub fn rouge_l_rouge_score<S: AsRef<str>>(candidates: &[S], references: &[S]) -> f64 {
    mean(
        candidates
            .iter()
            .zip(references)
            .map(|(c, r)| rouge_l_rouge_score_pair(c.as_ref(), r.as_ref())),
    )
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_of_known_sequences() {
        let a: Vec<char> = "ABCBDAB".chars().collect();
        let b: Vec<char> = "BDCABA".chars().collect();
        assert_eq!(lcs_len(&a, &b), 4);
        assert_eq!(lcs_len::<char>(&[], &b), 0);
    }

    #[test]
    fn coco_weights_recall_with_beta() {
        // LCS 2 of candidate 2 tokens (P = 1) and reference 4 tokens (R = 0.5).
        let f = rouge_l_coco_pair("heart normal", "the heart is normal");
        let b2 = 1.44;
        assert!((f - (1.0 + b2) * 0.5 / (0.5 + b2)).abs() < 1e-15);
        assert_eq!(rouge_l_coco_pair("a b", "c d"), 0.0);
        assert_eq!(
            rouge_l_coco_pair("", ""),
            1.0,
            "pycocoevalcap's empty token matches"
        );
    }

    #[test]
    fn rouge_score_is_f1_on_its_own_tokens() {
        let f = rouge_l_rouge_score_pair("Heart normal.", "the heart is normal");
        assert!((f - 2.0 * 0.5 / 1.5).abs() < 1e-15);
        assert_eq!(
            rouge_score_tokens("No acute, cardio-pulmonary 2x"),
            ["no", "acute", "cardio", "pulmonary", "2x"]
        );
        assert_eq!(rouge_l_rouge_score_pair("", "a"), 0.0);
    }
}
