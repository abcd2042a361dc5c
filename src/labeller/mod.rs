//! Rule-based, negation- and uncertainty-aware findings labeller for report text.
//!
//! [`label`] splits a text into sentences ([`sentence`]), finds mentions of the
//! nine observations with phrase lists after the CheXpert labeller ([`phrases`]),
//! decides for each mention whether the sentence affirms, denies or doubts it
//! with NegEx/NegBio-style triggers ([`rules`]), and aggregates the mentions of a
//! report as CheXpert does: positive beats uncertain beats negative. "No finding"
//! is positive when nothing — neither the nine nor another abnormality such as
//! emphysema or a fracture — is positive or uncertain.
//!
//! The phrase tables are built once (`LazyLock`); labelling allocates only the
//! token list, so it is cheap enough to run over the whole corpus every epoch.
//! [`eval`] scores the labeller against hand-checked sentences and [`mesh`]
//! against the collection's human-coded MeSH terms.

pub mod eval;
pub mod mesh;
mod phrases;
mod qualifiers;
mod rules;
mod sentence;

use serde::{Deserialize, Serialize};

use crate::Observation;
use phrases::{Flag, Target};

/// What a text says about one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mention {
    Positive,
    Negative,
    Uncertain,
    #[default]
    NotMentioned,
}

impl Mention {
    /// Aggregation rank across mentions (CheXpert): positive > uncertain > negative.
    fn rank(self) -> u8 {
        match self {
            Mention::Positive => 3,
            Mention::Uncertain => 2,
            Mention::Negative => 1,
            Mention::NotMentioned => 0,
        }
    }

    /// Short code used in fixtures and tables: `pos`, `neg`, `unc`, `-`.
    pub fn code(self) -> &'static str {
        match self {
            Mention::Positive => "pos",
            Mention::Negative => "neg",
            Mention::Uncertain => "unc",
            Mention::NotMentioned => "-",
        }
    }

    pub fn from_code(code: &str) -> Option<Mention> {
        [
            Mention::Positive,
            Mention::Negative,
            Mention::Uncertain,
            Mention::NotMentioned,
        ]
        .into_iter()
        .find(|m| m.code() == code)
    }

    /// Positive or uncertain: the text raises the finding.
    pub fn is_raised(self) -> bool {
        matches!(self, Mention::Positive | Mention::Uncertain)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Laterality {
    Left,
    Right,
    Bilateral,
}

impl Laterality {
    pub fn key(self) -> &'static str {
        match self {
            Laterality::Left => "left",
            Laterality::Right => "right",
            Laterality::Bilateral => "bilateral",
        }
    }

    pub fn from_key(key: &str) -> Option<Laterality> {
        [Laterality::Left, Laterality::Right, Laterality::Bilateral]
            .into_iter()
            .find(|l| l.key() == key)
    }
}

/// The label of one observation with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationLabel {
    pub observation: Observation,
    pub mention: Mention,
    /// Byte range of the deciding phrase in the labelled text.
    pub evidence: Option<std::ops::Range<usize>>,
    pub laterality: Option<Laterality>,
    /// Severity word as written, lowercased (e.g. "mild", "small", "large"); only
    /// for positive and uncertain labels ("no large effusion" has none).
    pub severity: Option<String>,
}

/// Labels for all ten observations, indexed like [`Observation::ALL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels(pub Vec<ObservationLabel>);

impl Labels {
    pub fn get(&self, o: Observation) -> &ObservationLabel {
        &self.0[o.index()]
    }

    pub fn mention(&self, o: Observation) -> Mention {
        self.get(o).mention
    }
}

fn empty(observation: Observation) -> ObservationLabel {
    ObservationLabel {
        observation,
        mention: Mention::NotMentioned,
        evidence: None,
        laterality: None,
        severity: None,
    }
}

/// Fold one decided mention into the label of its observation.
fn merge(
    label: &mut ObservationLabel,
    mention: Mention,
    d: &rules::Decided,
    span: std::ops::Range<usize>,
) {
    if mention.rank() > label.mention.rank() {
        *label = ObservationLabel {
            observation: label.observation,
            mention,
            evidence: Some(span),
            laterality: d.laterality,
            severity: None,
        };
    } else if mention == label.mention {
        label.laterality = match (label.laterality, d.laterality) {
            (None, l) | (l, None) => l,
            (Some(a), Some(b)) if a == b => Some(a),
            _ => Some(Laterality::Bilateral),
        };
    } else {
        return;
    }
    if mention.is_raised() && label.severity.is_none() {
        label.severity = d.severity.clone();
    }
}

/// Label a report text (any section or the whole report).
pub fn label(text: &str) -> Labels {
    let lower = text.to_ascii_lowercase();
    let mut labels: Vec<ObservationLabel> = Observation::ALL.into_iter().map(empty).collect();
    let mut other_raised = false;
    let mut any_words = false;
    for tokens in sentence::sentences(&lower) {
        any_words |= tokens.iter().any(|t| t.is_word());
        for d in rules::decide(&tokens) {
            let span = tokens[d.start].start..tokens[d.end - 1].end;
            match d.target {
                Target::Finding(o) => {
                    merge(&mut labels[o.index()], d.mention, &d, span.clone());
                    if d.flag == Flag::AlsoOpacity {
                        merge(
                            &mut labels[Observation::LungOpacity.index()],
                            d.mention,
                            &d,
                            span.clone(),
                        );
                    }
                    if d.flag == Flag::HeartFailure && d.mention.is_raised() {
                        let hf = rules::Decided {
                            laterality: None,
                            severity: None,
                            ..d.clone()
                        };
                        merge(
                            &mut labels[Observation::Cardiomegaly.index()],
                            Mention::Uncertain,
                            &hf,
                            span,
                        );
                    }
                }
                Target::Heart => merge(
                    &mut labels[Observation::Cardiomegaly.index()],
                    d.mention,
                    &d,
                    span,
                ),
                Target::Other => other_raised |= d.mention.is_raised(),
                Target::Ignore => {}
            }
        }
    }
    if any_words {
        let raised = Observation::FINDINGS
            .iter()
            .any(|o| labels[o.index()].mention.is_raised());
        labels[Observation::NoFinding.index()].mention = if raised || other_raised {
            Mention::Negative
        } else {
            Mention::Positive
        };
    }
    Labels(labels)
}
