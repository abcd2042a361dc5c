//! Agreement with the collection's human-coded MeSH terms.
//!
//! Each Indiana report carries "major" MeSH terms coded by people, written as a
//! heading with slash-separated qualifiers (`Pleural Effusion/right/small`,
//! `Opacity/lung/base/left`, `normal`). [`observations`] maps them onto the ten
//! observations, following what the labeller's phrase lists cover (CheXpert
//! counts infiltrates, airspace disease, interstitial markings and parenchymal
//! scars as lung opacity,
//! and vascular congestion and heart failure under edema). The coders mark a
//! finding without saying how sure the report is, so the labeller's "uncertain"
//! is scored both ways.

use super::{label, Mention};
use crate::Observation;

/// The observations a study's MeSH terms state, indexed like
/// [`Observation::ALL`]; `None` when the study was not indexed (no terms, or
/// only `No Indexing`).
pub fn observations<S: AsRef<str>>(terms: &[S]) -> Option<[bool; Observation::COUNT]> {
    let mut out = [false; Observation::COUNT];
    let mut indexed = false;
    for term in terms {
        let term = term.as_ref().trim();
        if term.is_empty() || term.eq_ignore_ascii_case("No Indexing") {
            continue;
        }
        indexed = true;
        let mut parts = term.split('/');
        let heading = parts.next().unwrap_or("").trim();
        let qualifiers: Vec<&str> = parts.map(str::trim).collect();
        let has = |q: &str| qualifiers.contains(&q);
        let lung = has("lung") || has("retrocardiac");
        // The coders write a nodular density as `Density/lung/.../round`.
        if matches!(heading, "Density" | "Opacity") && lung && has("round") {
            out[Observation::LungLesion.index()] = true;
        }
        let o = match heading {
            "normal" => Some(Observation::NoFinding),
            "Cardiomegaly" => Some(Observation::Cardiomegaly),
            "Cardiac Shadow" if has("enlarged") => Some(Observation::Cardiomegaly),
            "Opacity" | "Airspace Disease" | "Infiltrate" | "Lung Diseases, Interstitial" => {
                Some(Observation::LungOpacity)
            }
            "Density" | "Cicatrix" if lung => Some(Observation::LungOpacity),
            // "Prominent interstitial markings" (CheXpert: lung opacity).
            "Markings" | "Lung" if has("interstitial") => Some(Observation::LungOpacity),
            "Nodule" | "Mass" if lung => Some(Observation::LungLesion),
            "Pulmonary Edema" | "Pulmonary Congestion" | "Heart Failure" => {
                Some(Observation::Edema)
            }
            "Consolidation" => Some(Observation::Consolidation),
            "Pneumonia" => Some(Observation::Pneumonia),
            "Pulmonary Atelectasis" => Some(Observation::Atelectasis),
            "Pneumothorax" => Some(Observation::Pneumothorax),
            "Pleural Effusion" => Some(Observation::PleuralEffusion),
            _ => None,
        };
        if let Some(o) = o {
            out[o.index()] = true;
        }
    }
    indexed.then_some(out)
}

/// Confusion counts of one observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

impl Counts {
    fn add(&mut self, truth: bool, predicted: bool) {
        match (truth, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    pub fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }

    pub fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// One study where the labeller and MeSH differ (uncertain counted as positive).
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    pub uid: String,
    pub observation: Observation,
    pub mesh: bool,
    pub label: Mention,
    /// The deciding phrase, when the labeller found one.
    pub evidence: Option<String>,
    pub mesh_terms: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeshScore {
    pub studies: usize,
    /// Studies left out because they carry no MeSH indexing.
    pub unindexed: usize,
    /// Uncertain counted as positive, indexed like [`Observation::ALL`].
    pub uncertain_positive: Vec<Counts>,
    /// Uncertain counted as negative.
    pub uncertain_negative: Vec<Counts>,
    pub disagreements: Vec<Disagreement>,
}

/// One study to score: its id, the text to label (findings and impression) and
/// its major MeSH terms.
pub struct MeshStudy<'a> {
    pub uid: &'a str,
    pub text: String,
    pub terms: &'a [String],
}

pub fn score<'a>(studies: impl IntoIterator<Item = MeshStudy<'a>>) -> MeshScore {
    let mut s = MeshScore {
        studies: 0,
        unindexed: 0,
        uncertain_positive: vec![Counts::default(); Observation::COUNT],
        uncertain_negative: vec![Counts::default(); Observation::COUNT],
        disagreements: Vec::new(),
    };
    for study in studies {
        let Some(truth) = observations(study.terms) else {
            s.unindexed += 1;
            continue;
        };
        s.studies += 1;
        let labels = label(&study.text);
        for o in Observation::ALL {
            let l = labels.get(o);
            let t = truth[o.index()];
            s.uncertain_positive[o.index()].add(t, l.mention.is_raised());
            s.uncertain_negative[o.index()].add(t, l.mention == Mention::Positive);
            if t != l.mention.is_raised() {
                s.disagreements.push(Disagreement {
                    uid: study.uid.to_string(),
                    observation: o,
                    mesh: t,
                    label: l.mention,
                    evidence: l.evidence.clone().map(|r| study.text[r].to_string()),
                    mesh_terms: study.terms.join("; "),
                });
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_terms_with_qualifiers() {
        let t = observations(&[
            "Cardiomegaly/mild",
            "Opacity/lung/base/left",
            "Density/mediastinum",
            "Nodule/lung/lingula",
            "Mass/breast/large",
            "Pleural Effusion/right/small",
            "Calcified Granuloma/lung/upper lobe",
        ])
        .unwrap();
        let on: Vec<Observation> = Observation::ALL
            .into_iter()
            .filter(|o| t[o.index()])
            .collect();
        assert_eq!(
            on,
            vec![
                Observation::Cardiomegaly,
                Observation::LungOpacity,
                Observation::LungLesion,
                Observation::PleuralEffusion
            ]
        );
        let round = observations(&["Density/lung/upper lobe/right/round"]).unwrap();
        assert!(round[Observation::LungLesion.index()] && round[Observation::LungOpacity.index()]);
        assert!(
            observations(&["Markings/lung/interstitial/prominent"]).unwrap()
                [Observation::LungOpacity.index()]
        );
        assert!(observations(&["No Indexing"]).is_none());
        assert!(observations::<&str>(&[]).is_none());
        assert!(observations(&["normal"]).unwrap()[Observation::NoFinding.index()]);
    }

    #[test]
    fn scores_both_conventions() {
        let terms = vec!["Pneumonia/lower lobe/right".to_string()];
        let s = score([MeshStudy {
            uid: "CXR1",
            text: "Right lower lobe opacity, cannot exclude pneumonia.".into(),
            terms: &terms,
        }]);
        let i = Observation::Pneumonia.index();
        assert_eq!(s.uncertain_positive[i].tp, 1);
        assert_eq!(s.uncertain_negative[i].fn_, 1);
        // Lung opacity is positive in the text but not coded: a listed disagreement.
        assert!(s
            .disagreements
            .iter()
            .any(|d| d.observation == Observation::LungOpacity
                && d.evidence.as_deref() == Some("opacity")));
    }
}
