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

/// One kept sentence or impression and how often it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub text: String,
    pub count: u32,
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
    /// Whole impressions by what they raise ([`whole_key`]).
    #[serde(default)]
    pub whole: BTreeMap<String, Vec<Entry>>,
    /// Where the sentences came from (free text).
    #[serde(default)]
    pub provenance: String,
}

fn usable(text: &str) -> bool {
    !text.to_ascii_lowercase().contains("xxxx")
        && !text.chars().any(|c| c.is_ascii_digit())
        && !text
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|w| UNSUPPORTED.contains(&w.to_ascii_lowercase().as_str()))
}

/// The one finding a sentence raises and how, if exactly one.
fn single_finding(text: &str) -> Option<(Observation, Mention)> {
    let labels = labeller::label(text);
    let mut raised = Observation::FINDINGS
        .into_iter()
        .filter(|o| labels.mention(*o).is_raised());
    let o = raised.next()?;
    raised.next().is_none().then(|| (o, labels.mention(o)))
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
    let other = key.is_empty() && labels.mention(Observation::NoFinding) != Mention::Positive;
    (!other).then_some(key)
}

fn sentence_case(text: &str) -> String {
    let lower = text.trim().to_lowercase();
    super::readable(&lower)
}

impl SentenceBank {
    /// Build from impressions as written.
    pub fn build<'a>(impressions: impl IntoIterator<Item = &'a str>, provenance: String) -> Self {
        let mut definite: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        let mut hedged: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        let mut normal: BTreeMap<String, u32> = BTreeMap::new();
        let mut wholes: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for imp in impressions {
            let whole = sentence_case(imp);
            if !whole.is_empty() && usable(&whole) {
                match reading(&whole) {
                    Some(key) if key.is_empty() => *normal.entry(whole).or_default() += 1,
                    Some(key) => *wholes.entry(key).or_default().entry(whole).or_default() += 1,
                    None => {}
                }
            }
            for s in crate::text::split_sentences(imp) {
                let s = sentence_case(&s);
                if !usable(&s) {
                    continue;
                }
                let into = match single_finding(&s) {
                    Some((o, Mention::Positive)) => definite.entry(o.key().to_string()),
                    Some((o, Mention::Uncertain)) => hedged.entry(o.key().to_string()),
                    _ => continue,
                };
                *into.or_default().entry(s).or_default() += 1;
            }
        }
        let top = |m: BTreeMap<String, u32>| {
            let mut v: Vec<Entry> = m
                .into_iter()
                .map(|(text, count)| Entry { text, count })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then(a.text.cmp(&b.text)));
            v.truncate(KEEP);
            v
        };
        SentenceBank {
            definite: definite.into_iter().map(|(k, m)| (k, top(m))).collect(),
            hedged: hedged.into_iter().map(|(k, m)| (k, top(m))).collect(),
            normal: top(normal),
            whole: wholes.into_iter().map(|(k, m)| (k, top(m))).collect(),
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
        closest(self.whole.get(key).map_or(&[], Vec::as_slice), like)
    }

    /// The entry closest in wording to `like` (most shared words), ties to the
    /// most frequent.
    pub fn pick(&self, o: Option<Observation>, hedged: bool, like: &str) -> Option<&str> {
        closest(self.entries(o, hedged), like)
    }
}

/// The entry sharing the most words with `like`; entries are ordered by
/// count, so ties go to the most frequent.
fn closest<'a>(entries: &'a [Entry], like: &str) -> Option<&'a str> {
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
                "1. Mild cardiomegaly. 2. No acute pulmonary disease.",
                "Mild cardiomegaly.",
                "Possible pneumonia.",
                "Right lower lobe pneumonia.",
                "Stable cardiomegaly.",
                "No acute cardiopulmonary abnormality.",
                "Cardiomegaly with pulmonary edema.",
                "XXXX opacity.",
            ],
            "test".into(),
        );
        let cardio = bank.entries(Some(Observation::Cardiomegaly), false);
        assert_eq!(
            cardio,
            &[Entry {
                text: "Mild cardiomegaly.".into(),
                count: 2
            }]
        );
        let pneumonia = bank.entries(Some(Observation::Pneumonia), true);
        assert_eq!(pneumonia[0].text, "Possible pneumonia.");
        // The sided, the comparing, the two-finding and the redacted ones are out.
        assert!(bank.entries(Some(Observation::Pneumonia), false).is_empty());
        assert!(bank.entries(Some(Observation::Edema), false).is_empty());
        assert!(bank
            .entries(Some(Observation::LungOpacity), false)
            .is_empty());
        assert_eq!(bank.normal[0].text, "No acute cardiopulmonary abnormality.");
        // Whole impressions by what they state; the numbered one has digits.
        assert_eq!(
            bank.pick_whole("cardiomegaly", ""),
            Some("Mild cardiomegaly.")
        );
        assert_eq!(
            bank.pick_whole("pneumonia?", ""),
            Some("Possible pneumonia.")
        );
        assert_eq!(
            whole_key([
                (Observation::PleuralEffusion, true),
                (Observation::Cardiomegaly, false)
            ]),
            "cardiomegaly+pleural_effusion?"
        );
        assert_eq!(
            bank.pick(None, false, "no acute disease"),
            Some("No acute cardiopulmonary abnormality.")
        );
    }

    #[test]
    fn pick_prefers_shared_words_then_frequency() {
        let bank = SentenceBank::build(
            [
                "Mild cardiomegaly.",
                "Mild cardiomegaly.",
                "Cardiomegaly is present.",
                "Enlarged heart.",
            ],
            String::new(),
        );
        let o = Some(Observation::Cardiomegaly);
        assert_eq!(
            bank.pick(o, false, "heart is present"),
            Some("Cardiomegaly is present.")
        );
        assert_eq!(
            bank.pick(o, false, "nothing alike"),
            Some("Mild cardiomegaly.")
        );
        assert_eq!(bank.pick(Some(Observation::Edema), false, ""), None);
    }
}
