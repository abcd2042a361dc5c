//! The observations the labeller, the findings head and the screen share.

use serde::{Deserialize, Serialize};

/// The seed study's nine observations plus "no finding", in a fixed order that
/// is also the order of the findings head's logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observation {
    Cardiomegaly,
    LungOpacity,
    LungLesion,
    Edema,
    Consolidation,
    Pneumonia,
    Atelectasis,
    Pneumothorax,
    PleuralEffusion,
    NoFinding,
}

impl Observation {
    /// How many observations there are: the findings head's width, the length of
    /// every label and score row.
    pub const COUNT: usize = 10;

    /// All observations in logit order.
    pub const ALL: [Observation; Self::COUNT] = [
        Observation::Cardiomegaly,
        Observation::LungOpacity,
        Observation::LungLesion,
        Observation::Edema,
        Observation::Consolidation,
        Observation::Pneumonia,
        Observation::Atelectasis,
        Observation::Pneumothorax,
        Observation::PleuralEffusion,
        Observation::NoFinding,
    ];

    /// The nine findings, without "no finding": the first nine of [`Observation::ALL`].
    pub const FINDINGS: [Observation; Self::COUNT - 1] = {
        let mut out = [Observation::Cardiomegaly; 9];
        let mut i = 0;
        while i < 9 {
            out[i] = Observation::ALL[i];
            i += 1;
        }
        out
    };

    /// Stable snake_case key (JSON, manifests, CSV columns).
    pub fn key(self) -> &'static str {
        match self {
            Observation::Cardiomegaly => "cardiomegaly",
            Observation::LungOpacity => "lung_opacity",
            Observation::LungLesion => "lung_lesion",
            Observation::Edema => "edema",
            Observation::Consolidation => "consolidation",
            Observation::Pneumonia => "pneumonia",
            Observation::Atelectasis => "atelectasis",
            Observation::Pneumothorax => "pneumothorax",
            Observation::PleuralEffusion => "pleural_effusion",
            Observation::NoFinding => "no_finding",
        }
    }

    /// Column of `nih-cxr14/labels.csv` holding this observation.
    pub fn nih_column(self) -> &'static str {
        match self {
            Observation::NoFinding => "normal",
            other => other.key(),
        }
    }

    /// Human-readable name for screens and reports.
    pub fn display_name(self) -> &'static str {
        match self {
            Observation::Cardiomegaly => "Cardiomegaly",
            Observation::LungOpacity => "Lung opacity",
            Observation::LungLesion => "Lung lesion",
            Observation::Edema => "Edema",
            Observation::Consolidation => "Consolidation",
            Observation::Pneumonia => "Pneumonia",
            Observation::Atelectasis => "Atelectasis",
            Observation::Pneumothorax => "Pneumothorax",
            Observation::PleuralEffusion => "Pleural effusion",
            Observation::NoFinding => "No finding",
        }
    }

    /// Index in [`Observation::ALL`] (and in the findings logits).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_key(key: &str) -> Option<Observation> {
        Observation::ALL
            .into_iter()
            .find(|o| o.key() == key || o.nih_column() == key)
    }
}

impl std::fmt::Display for Observation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_indices_follow_order() {
        for (i, o) in Observation::ALL.into_iter().enumerate() {
            assert_eq!(o.index(), i);
            assert_eq!(Observation::from_key(o.key()), Some(o));
            assert_eq!(Observation::from_key(o.nih_column()), Some(o));
        }
        assert_eq!(
            Observation::from_key("normal"),
            Some(Observation::NoFinding)
        );
        assert_eq!(Observation::from_key("fracture"), None);
    }
}
