//! Report-generation metrics, computed the way the field computes them so that our
//! numbers can be set beside published ones.
//!
//! Every text is first normalised with a [`Preset`] (default [`Preset::Seed`]; the
//! normaliser is idempotent, so already-normalised model output is unchanged) and
//! then split on whitespace. On those tokens:
//! - [`bleu`]: corpus BLEU-1..4 exactly as NLTK's `corpus_bleu` (no smoothing);
//! - [`rouge`]: ROUGE-L F as pycocoevalcap's `Rouge` (β = 1.2, the number R2Gen-line
//!   papers report) and as the `rouge-score` package's `rougeL` F-measure;
//! - [`cider`]: CIDEr-D as pycocoevalcap's `Cider` (document frequencies from the
//!   references of the evaluated corpus);
//! - [`clinical`]: clinical efficacy of the findings labeller's reading of the
//!   candidates against the labeller's reading of the (raw) references, or against
//!   given labels;
//! - the number of distinct candidates, because template collapse (one fluent report
//!   for every image) scores deceptively well on the n-gram metrics.
//!
//! The parity test `tests/metrics.rs` checks all of them against the Python packages.

mod auroc;
pub mod bleu;
pub mod cider;
pub mod clinical;
mod paired;
mod report;
pub mod rouge;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::labeller::Mention;
use crate::text::{normalize, Preset};

pub use auroc::{auroc, auroc_intervals, Interval};
pub use clinical::{
    read_labels_csv, ClinicalScores, FindingMentions, ObservationScore, Prf, ReferenceSource,
    UncertainPolicy,
};
pub use paired::{paired_differences, Differences};
pub use report::markdown_table;

/// Errors of the metrics module; each names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{candidates} candidates but {references} references: the two lists must pair up line by line")]
    LengthMismatch {
        candidates: usize,
        references: usize,
    },
    #[error("{labels} reference label rows but {references} references")]
    LabelCountMismatch { labels: usize, references: usize },
    #[error("nothing to score: the candidate and reference lists are empty")]
    Empty,
    #[error("cannot read labels file {path}: {source}")]
    LabelsIo {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("labels file {path}: {problem}")]
    LabelsFormat {
        path: std::path::PathBuf,
        problem: String,
    },
}

/// How texts are prepared and clinical labels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Normalisation applied to candidates and references before tokenising for the
    /// n-gram metrics; `None` scores the texts as given (whitespace tokens).
    pub preset: Option<Preset>,
    /// Whether an "uncertain" label counts as positive or negative.
    pub uncertain: UncertainPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            preset: Some(Preset::Seed),
            uncertain: UncertainPolicy::AsNegative,
        }
    }
}

impl Options {
    /// The text the n-gram metrics see: normalised with the preset, or as given.
    pub fn prepare(&self, text: &str) -> String {
        match self.preset {
            Some(p) => normalize(text, p),
            None => text.to_owned(),
        }
    }
}

/// All metrics of one candidate corpus against its references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Number of candidate/reference pairs.
    pub n: usize,
    /// Number of distinct candidate texts after normalisation.
    pub distinct_candidates: usize,
    /// Normalisation preset the n-gram metrics used (`null`: texts as given).
    pub preset: Option<Preset>,
    /// Corpus BLEU-1..4 (NLTK `corpus_bleu`, weights 1/n for n = 1..4).
    pub bleu: [f64; 4],
    /// ROUGE-L F, pycocoevalcap `Rouge` (β = 1.2, mean of per-pair scores).
    pub rouge_l: f64,
    /// ROUGE-L F1, `rouge-score` package `rougeL` fmeasure (its own tokenizer, no
    /// stemmer), mean over pairs.
    pub rouge_l_rouge_score: f64,
    /// CIDEr-D, pycocoevalcap `Cider` (n = 4, σ = 6, ×10).
    pub cider_d: f64,
    /// Clinical efficacy over the nine findings.
    pub clinical: ClinicalScores,
}

/// Score candidates against references (one reference per candidate, same order)
/// with [`Options::default`]; clinical references come from the labeller.
pub fn evaluate(candidates: &[String], references: &[String]) -> Result<Scores, MetricsError> {
    evaluate_with(candidates, references, &Options::default())
}

/// [`evaluate`] with explicit options.
pub fn evaluate_with(
    candidates: &[String],
    references: &[String],
    options: &Options,
) -> Result<Scores, MetricsError> {
    check_lengths(candidates, references)?;
    let reference_labels: Vec<FindingMentions> = references
        .iter()
        .map(|r| clinical::label_findings(r))
        .collect();
    score(
        candidates,
        references,
        &reference_labels,
        ReferenceSource::Labeller,
        options,
    )
}

/// Score with clinical efficacy measured against given reference labels (one row
/// per reference, in [`crate::Observation::FINDINGS`] order) instead of the
/// labeller's reading of the reference texts.
pub fn evaluate_with_labels(
    candidates: &[String],
    references: &[String],
    labels: &[FindingMentions],
    options: &Options,
) -> Result<Scores, MetricsError> {
    check_lengths(candidates, references)?;
    if labels.len() != references.len() {
        return Err(MetricsError::LabelCountMismatch {
            labels: labels.len(),
            references: references.len(),
        });
    }
    score(
        candidates,
        references,
        labels,
        ReferenceSource::GivenLabels,
        options,
    )
}

fn check_lengths(candidates: &[String], references: &[String]) -> Result<(), MetricsError> {
    if candidates.len() != references.len() {
        return Err(MetricsError::LengthMismatch {
            candidates: candidates.len(),
            references: references.len(),
        });
    }
    if candidates.is_empty() {
        return Err(MetricsError::Empty);
    }
    Ok(())
}

fn score(
    candidates: &[String],
    references: &[String],
    reference_labels: &[FindingMentions],
    source: ReferenceSource,
    options: &Options,
) -> Result<Scores, MetricsError> {
    let cands: Vec<String> = candidates.iter().map(|t| options.prepare(t)).collect();
    let refs: Vec<String> = references.iter().map(|t| options.prepare(t)).collect();
    let cand_tokens: Vec<Vec<&str>> = cands
        .iter()
        .map(|t| t.split_whitespace().collect())
        .collect();
    let ref_tokens: Vec<Vec<&str>> = refs
        .iter()
        .map(|t| t.split_whitespace().collect())
        .collect();

    let candidate_labels: Vec<FindingMentions> = candidates
        .iter()
        .map(|c| clinical::label_findings(c))
        .collect();
    let distinct_candidates = cands.iter().collect::<HashSet<_>>().len();

    Ok(Scores {
        n: candidates.len(),
        distinct_candidates,
        preset: options.preset,
        bleu: bleu::corpus_bleu(&cand_tokens, &ref_tokens),
        rouge_l: rouge::rouge_l_coco(&cands, &refs),
        rouge_l_rouge_score: rouge::rouge_l_rouge_score(&cands, &refs),
        cider_d: cider::cider_d(&cand_tokens, &ref_tokens),
        clinical: clinical::clinical_scores(
            &candidate_labels,
            reference_labels,
            source,
            options.uncertain,
        ),
    })
}

/// Whether a mention counts as positive under a policy (used by [`clinical`]).
pub(crate) fn is_positive(m: Mention, policy: UncertainPolicy) -> bool {
    match m {
        Mention::Positive => true,
        Mention::Uncertain => policy == UncertainPolicy::AsPositive,
        Mention::Negative | Mention::NotMentioned => false,
    }
}
