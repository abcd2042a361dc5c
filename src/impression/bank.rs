//! Sentences from real impressions, to state a flagged finding the way a
//! radiologist writes it instead of a fixed phrase.
//!
//! [`SentenceBank::build`] reads impressions (the trainer's split of the IU
//! reports: the training part, so the references the text is scored against
//! never supply it) sentence by sentence and keeps those that, read by the
//! project's labeller, raise exactly one finding (positive for the definite
//! band, uncertain for the hedged one), and whole impressions that raise none,
//! for films without flags. A sentence is left out when it names a side (the
//! flags carry none), compares with an earlier film (the unit sees one film:
//! "stable", "unchanged", "again", "new", …), recommends, or carries the
//! collection's `XXXX` redactions. The most frequent [`KEEP`] of each kind are
//! kept, with their counts; the device picks the one closest in wording to the
//! decoder's text ([`SentenceBank::pick`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::BundleError;
use crate::labeller::{self, Mention};
use crate::Observation;

use super::consensus::Consensus;
use super::wording::{tidy, Wording};
use crate::corpus::pairing::Mask;

/// The file name in a bundle.
pub const FILE: &str = "impression_bank.json";

/// Sentences kept per finding and band, and normal impressions kept.
pub const KEEP: usize = 40;

/// Words that tie a sentence to something the unit cannot know.
const UNSUPPORTED: [&str; 31] = [
    "left",
    "right",
    "bilateral",
    "bilaterally",
    "unilateral",
    "both",
    "stable",
    "unchanged",
    "again",
    "prior",
    "previous",
    "previously",
    "interval",
    "compared",
    "comparison",
    "since",
    "new",
    "increased",
    "decreased",
    "improved",
    "improving",
    "worsened",
    "worsening",
    "persistent",
    "resolved",
    "resolving",
    "redemonstrated",
    "recommend",
    "recommended",
    "followup",
    "ct",
];

/// Words naming something other than the nine findings (another abnormality,
/// a device, a cause): the flags say nothing of them, so a sentence with one
/// would state what the screen does not flag. The labeller's own list of other
/// abnormalities ([`raises_more`]) catches some; these are the rest seen in the
/// IU impressions.
const OTHER: [&str; 56] = [
    "tb",
    "volumes",
    "volume",
    "carcinoma",
    "lymphangitic",
    "bony",
    "superimposed",
    "underlying",
    "hypertension",
    "bronchitic",
    "bronchitis",
    "bronchiolitis",
    "airway",
    "asthma",
    "viral",
    "reactive",
    "fibrotic",
    "fibrosis",
    "scarring",
    "scar",
    "emphysema",
    "copd",
    "granuloma",
    "granulomatous",
    "granulomas",
    "hernia",
    "fracture",
    "fractures",
    "calcified",
    "calcification",
    "calcifications",
    "mycoplasma",
    "tuberculosis",
    "hyperinflation",
    "hyperinflated",
    "scoliosis",
    "degenerative",
    "spondylosis",
    "osteopenia",
    "kyphosis",
    "aneurysm",
    "tortuous",
    "tortuosity",
    "ectatic",
    "pacemaker",
    "catheter",
    "tube",
    "sternotomy",
    "postoperative",
    "etiologies",
    "etiology",
    "chronic",
    "infection",
    "inflammation",
    "malignancy",
    "bronchiectasis",
];

/// Where in the chest, and how much: the model gives neither, so a sentence
/// saying "bibasilar", "lower lobe" or "moderate" would claim what it cannot
/// know (the labeller's severity words are refused too, in [`single_finding`]).
const UNFOUNDED: [&str; 36] = [
    "multilobar",
    "multifocal",
    "diffuse",
    "focal",
    "patchy",
    "early",
    "bibasilar",
    "basilar",
    "base",
    "bases",
    "basal",
    "lobe",
    "lobes",
    "upper",
    "lower",
    "middle",
    "lingula",
    "lingular",
    "apical",
    "apex",
    "apices",
    "perihilar",
    "hilar",
    "retrocardiac",
    "midlung",
    "mild",
    "moderate",
    "severe",
    "small",
    "large",
    "minimal",
    "trace",
    "tiny",
    "slightly",
    "more",
    "less",
];

/// One kept sentence or impression and how often it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub text: String,
    pub count: u32,
    /// How typical the wording is of training impressions stating the same
    /// findings ([`Consensus::score`]); entries are ranked by it.
    #[serde(default)]
    pub consensus: f32,
}

/// Times a normal impression must have been written to be kept.
pub const MIN_NORMAL_COUNT: u32 = 2;

/// Normal impressions a film without flags draws from, until `cxr-edge
/// consistency --write` chooses the number on validation films.
pub const NORMAL_DRAW: usize = 5;

/// The kept entries of one kind: ranked by consensus, then by count, at most [`KEEP`].
fn ranked(m: BTreeMap<String, u32>, mask: Mask, consensus: &Consensus) -> Vec<Entry> {
    let mut v: Vec<Entry> = m
        .into_iter()
        .map(|(text, count)| Entry {
            consensus: consensus.score(&text, mask),
            text,
            count,
        })
        .collect();
    v.sort_by(|a, b| {
        b.consensus
            .total_cmp(&a.consensus)
            .then(b.count.cmp(&a.count))
            .then(a.text.cmp(&b.text))
    });
    v.truncate(KEEP);
    v
}

/// The findings a [`whole_key`] (or one finding's key) names, as a mask.
fn key_mask(key: &str) -> Mask {
    let names: Vec<&str> = key.split('+').map(|k| k.trim_end_matches('?')).collect();
    Observation::FINDINGS
        .iter()
        .enumerate()
        .filter(|(_, o)| names.contains(&o.key()))
        .fold(0, |m, (i, _)| m | (1 << i))
}

/// Sentences by finding key and band, and normal impressions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentenceBank {
    /// `<finding key>` → sentences stating it as present.
    pub definite: BTreeMap<String, Vec<Entry>>,
    /// `<finding key>` → sentences stating it as possible.
    pub hedged: BTreeMap<String, Vec<Entry>>,
    /// Whole impressions that raise no finding.
    pub normal: Vec<Entry>,
    /// How many of the first `normal` entries a film without flags draws from
    /// ([`SentenceBank::draw_normal`]).
    #[serde(default)]
    pub normal_draw: usize,
    /// Whole impressions by what they raise ([`whole_key`]).
    #[serde(default)]
    pub whole: BTreeMap<String, Vec<Entry>>,
    /// How the decoder's normalised texts are written.
    #[serde(default)]
    pub wording: Wording,
    /// Where the sentences came from (free text).
    #[serde(default)]
    pub provenance: String,
}

/// First words that point back at a sentence the bank does not keep.
const CONTEXTUAL: [&str; 8] = [
    "this", "these", "that", "which", "however", "it", "they", "also",
];

fn usable(text: &str) -> bool {
    let first = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .map(str::to_ascii_lowercase);
    if first.is_some_and(|w| CONTEXTUAL.contains(&w.as_str())) {
        return false;
    }
    !text.to_ascii_lowercase().contains("xxxx")
        && !text.chars().any(|c| c.is_ascii_digit())
        && !text.split(|c: char| !c.is_ascii_alphabetic()).any(|w| {
            let w = w.to_ascii_lowercase();
            UNSUPPORTED.contains(&w.as_str())
                || OTHER.contains(&w.as_str())
                || UNFOUNDED.contains(&w.as_str())
        })
}

/// The words any reader, or any keyword labeller, takes for each finding (in
/// `Observation::FINDINGS` order): a bank sentence must name its finding with
/// one, so that "Heart appears prominent." or "Interstitial prominence.",
/// which the project's labeller reads as cardiomegaly and opacity, are not
/// what a clinician or another labeller has to interpret.
const PLAIN_NAMES: [(&str, &[&str]); 9] = [
    ("cardiomegaly", &["cardiomegaly", "enlarged", "enlargement"]),
    (
        "lung_opacity",
        &["opacity", "opacities", "infiltrate", "infiltrates"],
    ),
    ("lung_lesion", &["nodule", "nodules", "mass", "masses"]),
    ("edema", &["edema"]),
    ("consolidation", &["consolidation"]),
    ("pneumonia", &["pneumonia"]),
    ("atelectasis", &["atelectasis"]),
    ("pneumothorax", &["pneumothorax"]),
    ("pleural_effusion", &["effusion", "effusions"]),
];

/// Whether `text` names every finding of `key` ([`whole_key`] or one
/// finding's key) with one of its [`PLAIN_NAMES`].
fn names_plainly(key: &str, text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .map(str::to_ascii_lowercase)
        .collect();
    key.split('+').map(|k| k.trim_end_matches('?')).all(|k| {
        PLAIN_NAMES
            .iter()
            .find(|(name, _)| *name == k)
            .is_some_and(|(_, plain)| words.iter().any(|w| plain.contains(&w.as_str())))
    })
}

/// Words that rule something out.
const NEGATIONS: [&str; 7] = [
    "no",
    "not",
    "without",
    "negative",
    "otherwise",
    "free",
    "nor",
];

/// Whether a sentence rules something out as well as stating its finding.
fn negates(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| NEGATIONS.contains(&w.to_ascii_lowercase().as_str()))
}

/// The one finding a sentence raises and how, if exactly one and nothing else.
fn single_finding(text: &str) -> Option<(Observation, Mention)> {
    let labels = labeller::label(text);
    let mut raised = Observation::FINDINGS
        .into_iter()
        .filter(|o| labels.mention(*o).is_raised());
    let o = raised.next()?;
    let alone = raised.next().is_none() && labels.get(o).severity.is_none();
    (alone && !raises_more(text, &labels)).then(|| (o, labels.mention(o)))
}

/// Whether `text` raises an abnormality beyond the findings `labels` found
/// ("atelectasis or fibrotic change"): read again with their phrases blanked.
fn raises_more(text: &str, labels: &labeller::Labels) -> bool {
    let mut rest = text.as_bytes().to_vec();
    for o in Observation::FINDINGS {
        let l = labels.get(o);
        if let (true, Some(span)) = (l.mention.is_raised(), l.evidence.clone()) {
            rest[span].iter_mut().for_each(|b| *b = b' ');
        }
    }
    let rest = String::from_utf8_lossy(&rest);
    // "No finding" is negative exactly when the rest raises something.
    labeller::label(&rest).mention(Observation::NoFinding) == Mention::Negative
}

/// The key of a set of stated findings: `key` (definite) or `key?` (hedged),
/// in finding order, joined by `+`; empty for none.
pub fn whole_key(stated: impl IntoIterator<Item = (Observation, bool)>) -> String {
    let mut v: Vec<(Observation, bool)> = stated.into_iter().collect();
    v.sort_by_key(|(o, _)| o.index());
    v.iter()
        .map(|(o, h)| format!("{}{}", o.key(), if *h { "?" } else { "" }))
        .collect::<Vec<_>>()
        .join("+")
}

/// What a whole impression states, as a [`whole_key`]; `None` when the
/// labeller reads something other than present, possible or absent findings
/// (e.g. another abnormality).
fn reading(text: &str) -> Option<String> {
    let labels = labeller::label(text);
    let stated = Observation::FINDINGS
        .into_iter()
        .filter_map(|o| match labels.mention(o) {
            Mention::Positive => Some((o, false)),
            Mention::Uncertain => Some((o, true)),
            _ => None,
        });
    let key = whole_key(stated);
    let other = if key.is_empty() {
        labels.mention(Observation::NoFinding) != Mention::Positive
    } else {
        raises_more(text, &labels)
    };
    (!other).then_some(key)
}

impl SentenceBank {
    /// Build from impressions as written.
    pub fn build<'a>(
        impressions: impl IntoIterator<Item = &'a str> + Clone,
        provenance: String,
    ) -> Self {
        let mut definite: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        let mut hedged: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        let mut normal: BTreeMap<String, u32> = BTreeMap::new();
        let mut wholes: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        let impressions_again = impressions.clone();
        for imp in impressions {
            let whole = tidy(imp);
            if !whole.is_empty() && usable(&whole) {
                match reading(&whole) {
                    Some(key) if key.is_empty() => *normal.entry(whole).or_default() += 1,
                    Some(key) if names_plainly(&key, &whole) => {
                        *wholes.entry(key).or_default().entry(whole).or_default() += 1
                    }
                    _ => {}
                }
            }
            for s in crate::text::split_sentences(imp) {
                let s = tidy(&s);
                if !usable(&s) {
                    continue;
                }
                let into = match single_finding(&s) {
                    Some((o, _)) if !names_plainly(o.key(), &s) => continue,
                    Some((o, Mention::Positive)) => definite.entry(o.key().to_string()),
                    // "Vascular congestion without overt edema" is read as
                    // uncertain, but a reader hears "no edema": a hedge
                    // must not rule its finding out.
                    Some((o, Mention::Uncertain)) if !negates(&s) => {
                        hedged.entry(o.key().to_string())
                    }
                    _ => continue,
                };
                *into.or_default().entry(s).or_default() += 1;
            }
        }
        let consensus = Consensus::build(impressions_again.clone());
        let top = |m: BTreeMap<String, u32>, key: &str| ranked(m, key_mask(key), &consensus);
        let by_key = |m: BTreeMap<String, BTreeMap<String, u32>>| {
            m.into_iter()
                .map(|(k, m)| {
                    let v = top(m, &k);
                    (k, v)
                })
                .collect()
        };
        // A wording written once ("No acute acute cardiopulmonary disease.") is
        // as likely a slip as a style: films without flags draw from the rest.
        normal.retain(|_, n| *n >= MIN_NORMAL_COUNT);
        let normal = top(normal, "");
        SentenceBank {
            wording: Wording::build(impressions_again),
            definite: by_key(definite),
            hedged: by_key(hedged),
            normal_draw: normal.len().min(NORMAL_DRAW),
            normal,
            whole: by_key(wholes),
            provenance,
        }
    }

    /// Read a bank file.
    pub fn load(path: &Path) -> Result<SentenceBank, BundleError> {
        let bytes = std::fs::read(path).map_err(|source| BundleError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| BundleError::Invalid {
            path: path.to_owned(),
            message: format!("not a valid impression bank: {e}"),
        })
    }

    /// Choose [`Self::normal_draw`]: the fewest normal impressions such that,
    /// when `normal_share` of the films carry no flag, the commonest of them
    /// is drawn for at most `most` of all films.
    pub fn choose_normal_draw(&mut self, normal_share: f64, most: f64) {
        let mut total = 0u64;
        let mut largest = 0u64;
        self.normal_draw = self.normal.len();
        for (k, e) in self.normal.iter().enumerate() {
            total += u64::from(e.count);
            largest = largest.max(u64::from(e.count));
            if normal_share * largest as f64 / total as f64 <= most {
                self.normal_draw = k + 1;
                break;
            }
        }
    }

    /// The entries for one finding and band (`None`: normal impressions).
    pub fn entries(&self, o: Option<Observation>, hedged: bool) -> &[Entry] {
        let map = if hedged { &self.hedged } else { &self.definite };
        match o {
            None => &self.normal,
            Some(o) => map.get(o.key()).map_or(&[], Vec::as_slice),
        }
    }

    /// A whole impression stating exactly `key` ([`whole_key`]), closest in
    /// wording to `like`.
    pub fn pick_whole(&self, key: &str, like: &str) -> Option<&str> {
        closest(self.whole.get(key).into_iter().flatten(), like)
    }

    /// A normal impression drawn by `seed` among the first [`Self::normal_draw`]
    /// in proportion to how often each was written, so films without flags read the way radiologists vary their
    /// wording instead of all reading the commonest one; the same seed (the
    /// same film) always draws the same text.
    pub fn draw_normal(&self, seed: u64) -> Option<&str> {
        let pool = &self.normal[..self.normal_draw.max(1).min(self.normal.len())];
        let total: u64 = pool.iter().map(|e| u64::from(e.count)).sum();
        if total == 0 {
            return None;
        }
        let mut at = seed % total;
        for e in pool {
            let n = u64::from(e.count);
            if at < n {
                return Some(&e.text);
            }
            at -= n;
        }
        None
    }

    /// The entry closest in wording to `like` (most shared words), ties to the
    /// most frequent.
    ///
    /// Beside other findings (`alone` false) a sentence that also rules
    /// something out ("Cardiomegaly without acute disease.") would contradict
    /// its neighbours, so only sentences without a negation are picked.
    pub fn pick(
        &self,
        o: Option<Observation>,
        hedged: bool,
        like: &str,
        alone: bool,
    ) -> Option<&str> {
        let entries = self.entries(o, hedged).iter();
        closest(entries.filter(|e| alone || !negates(&e.text)), like)
    }
}

/// The entry sharing the most words with `like`; entries are ordered by
/// count, so ties go to the most frequent.
fn closest<'a>(entries: impl IntoIterator<Item = &'a Entry>, like: &str) -> Option<&'a str> {
    let words: Vec<String> = like.split_whitespace().map(str::to_lowercase).collect();
    let shared = |t: &str| {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty() && words.iter().any(|x| x == &w.to_lowercase()))
            .count()
    };
    let mut best: Option<(&Entry, usize)> = None;
    for e in entries {
        let s = shared(&e.text);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((e, s));
        }
    }
    best.map(|(e, _)| e.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_single_finding_sentences_by_band_and_drops_the_unsupported() {
        let bank = SentenceBank::build(
            [
                "1. Cardiomegaly. 2. No acute pulmonary disease.",
                "Heart is enlarged.",
                "Heart is enlarged.",
                "Mild cardiomegaly.",
                "Possible pneumonia.",
                "Atelectasis or fibrotic change.",
                "Lower lobe pneumonia.",
                "Right pneumonia.",
                "Stable cardiomegaly.",
                "No acute cardiopulmonary abnormality.",
                "No acute cardiopulmonary abnormality. .",
                "No acute acute abnormality.",
                "Cardiomegaly with pulmonary edema.",
                "XXXX opacity.",
            ],
            "test".into(),
        );
        let cardio: Vec<&str> = bank
            .entries(Some(Observation::Cardiomegaly), false)
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        // Most frequent first; "mild" (a severity) and "stable" (a comparison)
        // claim what the model cannot know.
        assert_eq!(cardio, ["Heart is enlarged.", "Cardiomegaly."]);
        let pneumonia = bank.entries(Some(Observation::Pneumonia), true);
        assert_eq!(pneumonia[0].text, "Possible pneumonia.");
        // A location, a side, two findings, a redaction, another abnormality: out.
        for (o, hedged) in [
            (Observation::Atelectasis, false),
            (Observation::Pneumonia, false),
            (Observation::Edema, false),
            (Observation::LungOpacity, false),
        ] {
            assert!(bank.entries(Some(o), hedged).is_empty(), "{o:?}");
        }
        // Tidied alike and counted together; a wording written once is left out.
        let normal: Vec<(&str, u32)> = bank
            .normal
            .iter()
            .map(|e| (e.text.as_str(), e.count))
            .collect();
        assert_eq!(normal, [("No acute cardiopulmonary abnormality.", 2)]);
        // Whole impressions by what they state; the numbered one has digits.
        assert_eq!(
            bank.pick_whole("cardiomegaly", ""),
            Some("Heart is enlarged.")
        );
        assert_eq!(
            bank.pick_whole("pneumonia?", ""),
            Some("Possible pneumonia.")
        );
        let key = whole_key([
            (Observation::PleuralEffusion, true),
            (Observation::Cardiomegaly, false),
        ]);
        assert_eq!(key, "cardiomegaly+pleural_effusion?");
        assert_eq!(
            bank.pick(None, false, "no acute disease", true),
            Some("No acute cardiopulmonary abnormality.")
        );
    }

    #[test]
    fn pick_prefers_shared_words_then_frequency() {
        let bank = SentenceBank::build(
            [
                "Cardiomegaly.",
                "Cardiomegaly.",
                "Cardiomegaly is present.",
                "Enlarged heart.",
            ],
            String::new(),
        );
        let o = Some(Observation::Cardiomegaly);
        assert_eq!(
            bank.pick(o, false, "heart is present", true),
            Some("Cardiomegaly is present.")
        );
        assert_eq!(
            bank.pick(o, false, "nothing alike", true),
            Some("Cardiomegaly.")
        );
        assert_eq!(bank.pick(Some(Observation::Edema), false, "", true), None);
    }

    #[test]
    fn sentences_name_their_finding_plainly() {
        let bank = SentenceBank::build(
            [
                "Heart appears prominent.",
                "Interstitial prominence.",
                "Enlarged cardiac silhouette.",
                "Possible small pleural effusion.",
                "Possible pleural effusion.",
            ],
            String::new(),
        );
        let texts = |o: Observation, hedged: bool| -> Vec<String> {
            bank.entries(Some(o), hedged)
                .iter()
                .map(|e| e.text.clone())
                .collect()
        };
        assert_eq!(
            texts(Observation::Cardiomegaly, false),
            ["Enlarged cardiac silhouette."]
        );
        assert!(texts(Observation::Cardiomegaly, true).is_empty());
        assert!(texts(Observation::LungOpacity, false).is_empty());
        assert_eq!(
            texts(Observation::PleuralEffusion, true),
            ["Possible pleural effusion."]
        );
        assert!(names_plainly(
            "cardiomegaly+pleural_effusion?",
            "Cardiomegaly. Possible effusion."
        ));
        assert!(!names_plainly(
            "cardiomegaly+pleural_effusion?",
            "Cardiomegaly."
        ));
        // The fixed phrases do too.
        for o in Observation::FINDINGS {
            for hedged in [false, true] {
                let s = crate::impression::sentence(o, hedged);
                assert!(names_plainly(o.key(), s), "{s}");
            }
        }
    }

    #[test]
    fn negations_stay_out_of_hedges_and_out_of_company() {
        let bank = SentenceBank::build(
            [
                "Cardiomegaly without acute disease.",
                "Cardiomegaly without acute disease.",
                "Cardiomegaly.",
                "Vascular congestion without overt pulmonary edema.",
                "Findings may be secondary to pulmonary edema.",
            ],
            String::new(),
        );
        let o = Some(Observation::Cardiomegaly);
        // Alone, the sentence may rule out the rest; beside other findings not.
        assert_eq!(
            bank.pick(o, false, "cardiomegaly without acute disease", true),
            Some("Cardiomegaly without acute disease.")
        );
        assert_eq!(
            bank.pick(o, false, "cardiomegaly without acute disease", false),
            Some("Cardiomegaly.")
        );
        let edema: Vec<&str> = bank
            .entries(Some(Observation::Edema), true)
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(edema, ["Findings may be secondary to pulmonary edema."]);
    }
}
