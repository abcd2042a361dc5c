//! Clinical efficacy: does the generated text state the same findings as the
//! reference? Both sides are read by [`crate::labeller::label`] (or the reference
//! side comes from given labels), and each of the nine findings is a binary
//! classification task.
//!
//! Convention (stated in every output via [`ClinicalScores::convention`]): a finding
//! is positive when labelled positive; "uncertain" counts as negative by default
//! (the R2Gen line of work), or as positive with [`UncertainPolicy::AsPositive`];
//! negative and not-mentioned are negative. Micro scores pool the counts of all nine
//! findings; macro scores are the unweighted means of the per-finding precision,
//! recall and F1 (scikit-learn's `average="macro"`), where an undefined ratio (0/0)
//! counts as 0 (scikit-learn's `zero_division=0`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{is_positive, MetricsError};
use crate::labeller::{label, Mention};
use crate::Observation;

/// Mentions of the nine findings, in [`Observation::FINDINGS`] order.
pub type FindingMentions = [Mention; 9];

/// How an "uncertain" mention is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UncertainPolicy {
    /// Uncertain counts as negative (the R2Gen line of work).
    #[default]
    AsNegative,
    /// Uncertain counts as positive.
    AsPositive,
}

/// Where the reference labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// The labeller applied to the reference texts.
    Labeller,
    /// Labels given alongside the references.
    GivenLabels,
}

/// Precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    /// From confusion counts, 0 where a ratio is undefined.
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Prf {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Prf {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
        }
    }
}

/// Confusion counts and scores of one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationScore {
    pub observation: Observation,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub tn: usize,
    /// Number of references positive for this finding.
    pub support: usize,
    #[serde(flatten)]
    pub prf: Prf,
}

/// Clinical efficacy over the nine findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalScores {
    pub reference_source: ReferenceSource,
    pub uncertain: UncertainPolicy,
    /// The convention in words, so that a JSON file explains itself.
    pub convention: String,
    pub per_observation: Vec<ObservationScore>,
    pub micro: Prf,
    #[serde(rename = "macro")]
    pub macro_avg: Prf,
}

impl ClinicalScores {
    /// The counting convention in one sentence.
    pub fn convention(source: ReferenceSource, policy: UncertainPolicy) -> String {
        let reference = match source {
            ReferenceSource::Labeller => "labeller(reference text)",
            ReferenceSource::GivenLabels => "given reference labels",
        };
        let uncertain = match policy {
            UncertainPolicy::AsNegative => "uncertain counts as negative (R2Gen convention)",
            UncertainPolicy::AsPositive => "uncertain counts as positive",
        };
        format!(
            "labeller(candidate) vs {reference} over 9 findings; positive = labelled positive, \
             {uncertain}; negative and not mentioned are negative; macro = mean of per-finding \
             values, 0/0 = 0"
        )
    }
}

/// The labeller's reading of a text, restricted to the nine findings.
pub fn label_findings(text: &str) -> FindingMentions {
    let labels = label(text);
    Observation::FINDINGS.map(|o| labels.mention(o))
}

/// Per-finding and micro/macro scores of candidate labels against reference labels.
pub fn clinical_scores(
    candidates: &[FindingMentions],
    references: &[FindingMentions],
    source: ReferenceSource,
    policy: UncertainPolicy,
) -> ClinicalScores {
    let per_observation: Vec<ObservationScore> = Observation::FINDINGS
        .iter()
        .enumerate()
        .map(|(k, &observation)| {
            let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
            for (c, r) in candidates.iter().zip(references) {
                match (is_positive(c[k], policy), is_positive(r[k], policy)) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fn_ += 1,
                    (false, false) => tn += 1,
                }
            }
            ObservationScore {
                observation,
                tp,
                fp,
                fn_,
                tn,
                support: tp + fn_,
                prf: Prf::from_counts(tp, fp, fn_),
            }
        })
        .collect();
    let sum = |f: fn(&ObservationScore) -> usize| per_observation.iter().map(f).sum::<usize>();
    let micro = Prf::from_counts(sum(|o| o.tp), sum(|o| o.fp), sum(|o| o.fn_));
    let k = per_observation.len() as f64;
    let macro_avg = Prf {
        precision: per_observation.iter().map(|o| o.prf.precision).sum::<f64>() / k,
        recall: per_observation.iter().map(|o| o.prf.recall).sum::<f64>() / k,
        f1: per_observation.iter().map(|o| o.prf.f1).sum::<f64>() / k,
    };
    ClinicalScores {
        reference_source: source,
        uncertain: policy,
        convention: ClinicalScores::convention(source, policy),
        per_observation,
        micro,
        macro_avg,
    }
}

/// Parse one cell of a labels CSV: CheXpert's `1` / `0` / `-1` / empty, or the
/// words `positive` / `negative` / `uncertain` / `not_mentioned`.
fn parse_mention(cell: &str) -> Option<Mention> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "positive" | "true" => Some(Mention::Positive),
        "0" | "0.0" | "negative" | "false" => Some(Mention::Negative),
        "-1" | "-1.0" | "uncertain" => Some(Mention::Uncertain),
        "" | "not_mentioned" => Some(Mention::NotMentioned),
        _ => None,
    }
}

/// Read reference labels from a CSV with a header of observation keys (one column
/// per finding, e.g. `cardiomegaly,lung_opacity,…`; a `no_finding` column is
/// allowed and ignored) and one row per reference.
pub fn read_labels_csv(path: &Path) -> Result<Vec<FindingMentions>, MetricsError> {
    let format = |problem: String| MetricsError::LabelsFormat {
        path: path.to_owned(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|source| MetricsError::LabelsIo {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| format(format!("cannot read the header: {e}")))?
        .clone();
    let mut columns: [Option<usize>; 9] = [None; 9];
    for (i, name) in headers.iter().enumerate() {
        let observation = Observation::from_key(name.trim()).ok_or_else(|| {
            format(format!(
                "unknown column {name:?}; expected observation keys such as {}",
                Observation::FINDINGS.map(|o| o.key()).join(", ")
            ))
        })?;
        if let Some(k) = Observation::FINDINGS.iter().position(|&o| o == observation) {
            if columns[k].replace(i).is_some() {
                return Err(format(format!("column {name:?} appears twice")));
            }
        }
    }
    if let Some(k) = columns.iter().position(Option::is_none) {
        return Err(format(format!(
            "missing column {:?}",
            Observation::FINDINGS[k].key()
        )));
    }
    let mut rows = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format(format!("row {}: {e}", row + 1)))?;
        let mut mentions = [Mention::NotMentioned; 9];
        for (k, column) in columns.iter().enumerate() {
            let cell = column.and_then(|c| record.get(c)).unwrap_or("");
            mentions[k] = parse_mention(cell).ok_or_else(|| {
                format(format!(
                    "row {}, column {:?}: cannot read {cell:?} (use 1, 0, -1 or empty)",
                    row + 1,
                    Observation::FINDINGS[k].key()
                ))
            })?;
        }
        rows.push(mentions);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mention::*;

    #[test]
    fn counts_follow_the_uncertain_policy() {
        let mut c = [NotMentioned; 9];
        let mut r = [NotMentioned; 9];
        c[0] = Positive;
        r[0] = Uncertain;
        c[8] = Positive;
        r[8] = Positive;
        let neg = clinical_scores(
            &[c],
            &[r],
            ReferenceSource::GivenLabels,
            UncertainPolicy::AsNegative,
        );
        assert_eq!(
            (neg.per_observation[0].fp, neg.per_observation[8].tp),
            (1, 1)
        );
        assert_eq!(neg.micro, Prf::from_counts(1, 1, 0));
        let pos = clinical_scores(
            &[c],
            &[r],
            ReferenceSource::GivenLabels,
            UncertainPolicy::AsPositive,
        );
        assert_eq!(
            pos.micro,
            Prf {
                precision: 1.0,
                recall: 1.0,
                f1: 1.0
            }
        );
        // Seven findings with no positives score 0, so the macro mean is 2/9.
        assert!((pos.macro_avg.f1 - 2.0 / 9.0).abs() < 1e-15);
        assert!(neg.convention.contains("uncertain counts as negative"));
    }

    #[test]
    fn labels_csv_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Observation::FINDINGS.map(|o| o.key()).join(",");
        let good = dir.path().join("good.csv");
        std::fs::write(&good, format!("{keys},no_finding\n1,0,-1,,0,0,0,0,1,0\n")).unwrap();
        let rows = read_labels_csv(&good).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][..4], [Positive, Negative, Uncertain, NotMentioned]);

        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, format!("{keys},fracture\n")).unwrap();
        let e = read_labels_csv(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("fracture"), "{e}");
        let e = read_labels_csv(&dir.path().join("absent.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent.csv"), "{e}");
    }
}
