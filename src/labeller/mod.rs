//! Rule-based, negation- and uncertainty-aware findings labeller for report text.
//! (Implementation in progress: this module's API is fixed, its rules are not yet.)

use serde::{Deserialize, Serialize};

use crate::Observation;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Laterality {
    Left,
    Right,
    Bilateral,
}

/// The label of one observation with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationLabel {
    pub observation: Observation,
    pub mention: Mention,
    /// Byte range of the deciding phrase in the labelled text.
    pub evidence: Option<std::ops::Range<usize>>,
    pub laterality: Option<Laterality>,
    /// Severity word as written (e.g. "mild", "small", "large").
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

/// Label a report text (any section or the whole report).
pub fn label(text: &str) -> Labels {
    let _ = text;
    Labels(
        Observation::ALL
            .into_iter()
            .map(|observation| ObservationLabel {
                observation,
                mention: Mention::NotMentioned,
                evidence: None,
                laterality: None,
                severity: None,
            })
            .collect(),
    )
}
