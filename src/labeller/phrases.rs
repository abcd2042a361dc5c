//! Mention phrases and trigger words.
//!
//! The mention lists follow the CheXpert labeller's `phrases/mention/*.txt` and
//! `phrases/unmention/*.txt` (Irvin et al. 2019, MIT licence), adapted to the
//! Indiana reports: a phrase is a sequence of words, and a word ending in `*`
//! matches any word with that prefix ("atelecta*" matches "atelectasis" and
//! "atelectatic"). At each position the longest phrase wins, which is how the
//! exclusions work: "pericardial effusion" and "calcified nodule" are phrases of
//! their own that consume the words before "effusion" or "nodule" can match.
//!
//! Two differences from CheXpert, both deliberate:
//! - Words that name the heart ("heart size", "cardiac silhouette") are not
//!   findings by themselves; they count only with a size predicate nearby
//!   ("enlarged", "normal", "borderline"), so "clips project over the heart" and
//!   "stable cardiomediastinal silhouette" say nothing about cardiomegaly.
//! - "Other" phrases are CheXpert's no-finding blockers (emphysema, granuloma,
//!   fracture, ...): not labelled, but a positive or uncertain one makes
//!   "no finding" negative.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::Observation;

/// What a matched phrase means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A mention of the observation.
    Finding(Observation),
    /// A heart-size anatomy word that needs a size predicate.
    Heart,
    /// An abnormality outside the nine that still rules out "no finding".
    Other,
    /// Words that must not match anything (consumed and dropped).
    Ignore,
}

/// Phrase flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flag {
    None,
    /// Affirmed mentions are only uncertain evidence (CheXpert: "vascular
    /// congestion" is uncertain edema).
    Hedged,
    /// "Heart failure" / "CHF": affirmed, also uncertain cardiomegaly (CheXpert).
    HeartFailure,
    /// A nodular opacity is a lesion and also a lung opacity (CheXpert matches
    /// both lists independently).
    AlsoOpacity,
}

use Observation::*;
use Target::*;

const N: Flag = Flag::None;

#[rustfmt::skip]
const TABLE: &[(&str, Target, Flag)] = &[
    // Cardiomegaly
    ("cardiomegaly", Finding(Cardiomegaly), N),
    ("cardiac enlargement", Finding(Cardiomegaly), N),
    ("enlargement of the heart", Finding(Cardiomegaly), N),
    ("enlargement of the cardiac silhouette", Finding(Cardiomegaly), N),
    ("heart", Heart, N),
    ("heart size", Heart, N),
    ("heart shadow", Heart, N),
    ("cardiac", Heart, N),
    ("cardiac silhouette", Heart, N),
    ("cardiac size", Heart, N),
    ("cardiac shadow", Heart, N),
    ("cardiac contour*", Heart, N),
    ("cardiomediastinal", Heart, N),
    ("cardiomediastinal silhouette", Heart, N),
    ("cardiomediastinal contour*", Heart, N),
    ("cardio mediastinal", Heart, N),
    ("cardiopericardial silhouette", Heart, N),
    ("heart border*", Ignore, N),
    ("cardiac border*", Ignore, N),
    ("cardiac pacemaker", Ignore, N),
    ("cardiac lead*", Ignore, N),
    ("cardiac monitor*", Ignore, N),
    ("cardiac valve*", Ignore, N),
    ("cardiac device*", Ignore, N),
    ("cardiac apex", Ignore, N),
    // Lung opacity (CheXpert airspace_opacity.txt)
    ("opaci*", Finding(LungOpacity), N),
    ("decreased translucency", Finding(LungOpacity), N),
    ("increased densit*", Finding(LungOpacity), N),
    ("densit*", Finding(LungOpacity), N),
    ("airspace disease", Finding(LungOpacity), N),
    ("air space disease", Finding(LungOpacity), N),
    ("airspace process", Finding(LungOpacity), N),
    ("air space process", Finding(LungOpacity), N),
    ("infiltrat*", Finding(LungOpacity), N),
    ("interstitial marking*", Finding(LungOpacity), N),
    ("interstitial pattern", Finding(LungOpacity), N),
    ("interstitial lung", Finding(LungOpacity), N),
    ("interstitial prominence", Finding(LungOpacity), N),
    ("reticular*", Finding(LungOpacity), N),
    ("reticulation", Finding(LungOpacity), N),
    ("reticulonodular", Finding(LungOpacity), N),
    ("fibronodular", Finding(LungOpacity), N),
    ("parenchymal scarring", Finding(LungOpacity), N),
    ("peribronchial thickening", Finding(LungOpacity), N),
    ("peribronchial cuffing", Finding(LungOpacity), N),
    ("wall thickening", Finding(LungOpacity), N),
    ("scar", Finding(LungOpacity), N),
    ("scars", Finding(LungOpacity), N),
    ("scarring", Finding(LungOpacity), N),
    ("ground glass", Finding(LungOpacity), N),
    ("haziness", Finding(LungOpacity), N),
    ("pleural scar*", Other, N),
    ("bone densit*", Ignore, N),
    ("soft tissue densit*", Other, N),
    ("sclerotic densit*", Other, N),
    ("breast densit*", Ignore, N),
    ("density of the breast*", Ignore, N),
    // Lung lesion (CheXpert lung_lesion.txt; unmention: calcified nodule, massive)
    ("mass", Finding(LungLesion), N),
    ("masses", Finding(LungLesion), N),
    ("nodul*", Finding(LungLesion), N),
    ("nodular densit*", Finding(LungLesion), Flag::AlsoOpacity),
    ("nodular opaci*", Finding(LungLesion), Flag::AlsoOpacity),
    ("nodular infiltrat*", Finding(LungOpacity), N),
    ("lump", Finding(LungLesion), N),
    ("cavitary lesion*", Finding(LungLesion), N),
    ("carcinoma", Finding(LungLesion), N),
    ("neoplasm", Finding(LungLesion), N),
    ("tumor", Finding(LungLesion), N),
    ("pulmonary lesion*", Finding(LungLesion), N),
    ("lung lesion*", Finding(LungLesion), N),
    ("masslike", Finding(LungLesion), N),
    ("malignancy", Finding(LungLesion), N),
    ("lung cancer", Finding(LungLesion), N),
    ("mediastinal mass*", Other, N),
    ("paratracheal mass*", Other, N),
    ("chest wall mass*", Other, N),
    ("breast mass*", Other, N),
    ("thyroid mass*", Other, N),
    ("pericardial mass*", Other, N),
    ("soft tissue mass*", Other, N),
    ("calcified nodul*", Other, N),
    ("calcified pulmonary nodul*", Other, N),
    ("calcified granuloma*", Other, N),
    ("nodular calcification*", Other, N),
    ("mass effect", Ignore, N),
    // Edema
    ("edema", Finding(Edema), N),
    ("oedema", Finding(Edema), N),
    ("heart failure", Finding(Edema), Flag::HeartFailure),
    ("chf", Finding(Edema), Flag::HeartFailure),
    ("vascular congestion", Finding(Edema), Flag::Hedged),
    ("pulmonary congestion", Finding(Edema), Flag::Hedged),
    ("venous congestion", Finding(Edema), Flag::Hedged),
    ("congestion", Finding(Edema), Flag::Hedged),
    ("indistinctness", Finding(Edema), Flag::Hedged),
    ("vascular prominence", Finding(Edema), Flag::Hedged),
    ("soft tissue edema", Other, N),
    // Consolidation
    ("consolidat*", Finding(Consolidation), N),
    // Pneumonia
    ("pneumonia*", Finding(Pneumonia), N),
    ("bronchopneumonia", Finding(Pneumonia), N),
    ("infection", Finding(Pneumonia), N),
    ("infectious process", Finding(Pneumonia), N),
    ("infectious", Finding(Pneumonia), N),
    // Atelectasis
    ("atelecta*", Finding(Atelectasis), N),
    ("collapse", Finding(Atelectasis), N),
    ("collapsed", Finding(Atelectasis), N),
    ("vertebral body collapse", Other, N),
    // Pneumothorax
    ("pneumothora*", Finding(Pneumothorax), N),
    ("hydropneumothora*", Finding(Pneumothorax), N),
    // Pleural effusion (unmention: pericardial effusion)
    ("effusion*", Finding(PleuralEffusion), N),
    ("pleural effusion*", Finding(PleuralEffusion), N),
    ("pleural fluid", Finding(PleuralEffusion), N),
    ("pericardial effusion*", Other, N),
    // No-finding blockers (CheXpert no_finding.txt, abridged, plus fracture)
    ("emphysema*", Other, N),
    ("blunting", Other, N),
    ("blunted", Other, N),
    ("elevation", Other, N),
    ("elevated", Other, N),
    ("eventration", Other, N),
    ("scoliosis", Other, N),
    ("dextroscoliosis", Other, N),
    ("levoscoliosis", Other, N),
    ("dextrocurvature", Other, N),
    ("levocurvature", Other, N),
    ("spondylosis", Other, N),
    ("degenera*", Other, N),
    ("calcifi*", Other, N),
    ("hyperinflat*", Other, N),
    ("hyperexpan*", Other, N),
    ("hernia", Other, N),
    ("copd", Other, N),
    ("plaque*", Other, N),
    ("osteophyt*", Other, N),
    ("granulom*", Other, N),
    ("pneumomediastinum", Other, N),
    ("pneumoperitoneum", Other, N),
    ("kyphosis", Other, N),
    ("fracture*", Other, N),
    ("deformity", Other, N),
    ("thickening", Other, N),
    ("bulla*", Other, N),
    ("bullous", Other, N),
    ("atherosclero*", Other, N),
    ("osteopenia", Other, N),
    ("metastas*", Other, N),
    ("volume loss", Other, N),
    ("fibrosis", Other, N),
    ("bronchiectasis", Other, N),
    ("adenopathy", Other, N),
    ("lymphadenopathy", Other, N),
    ("tortuous", Other, N),
    ("tortuosity", Other, N),
    ("aspiration", Other, N),
    ("cephalization", Other, N),
    ("free air", Other, N),
    ("free intraperitoneal air", Other, N),
    ("granulomatous infection", Other, N),
];

/// One pattern word: exact, or a prefix when the table word ends in `*`.
#[derive(Debug, Clone)]
pub(crate) enum Pat {
    Exact(&'static str),
    Prefix(&'static str),
}

impl Pat {
    fn matches(&self, word: &str) -> bool {
        match self {
            Pat::Exact(w) => word == *w,
            Pat::Prefix(p) => word.starts_with(p),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Phrase {
    pub pats: Vec<Pat>,
    pub target: Target,
    pub flag: Flag,
}

impl Phrase {
    /// Number of tokens matched at `words[0..]`, if the phrase matches there.
    pub fn match_len(&self, words: &[&str]) -> Option<usize> {
        if words.len() < self.pats.len() {
            return None;
        }
        self.pats
            .iter()
            .zip(words)
            .all(|(p, w)| p.matches(w))
            .then_some(self.pats.len())
    }
}

/// The phrase table, indexed by first word so a lookup touches few phrases.
pub(crate) struct Lexicon {
    pub phrases: Vec<Phrase>,
    by_word: HashMap<&'static str, Vec<usize>>,
    /// Phrases whose first word is a prefix pattern, by their first letter.
    by_initial: HashMap<u8, Vec<usize>>,
}

impl Lexicon {
    fn build() -> Self {
        let mut phrases = Vec::with_capacity(TABLE.len());
        let mut by_word: HashMap<&'static str, Vec<usize>> = HashMap::new();
        let mut by_initial: HashMap<u8, Vec<usize>> = HashMap::new();
        for &(text, target, flag) in TABLE {
            let pats: Vec<Pat> = text
                .split_whitespace()
                .map(|w| match w.strip_suffix('*') {
                    Some(p) => Pat::Prefix(p),
                    None => Pat::Exact(w),
                })
                .collect();
            let i = phrases.len();
            match pats[0] {
                Pat::Exact(w) => by_word.entry(w).or_default().push(i),
                Pat::Prefix(p) => by_initial.entry(p.as_bytes()[0]).or_default().push(i),
            }
            phrases.push(Phrase { pats, target, flag });
        }
        Lexicon {
            phrases,
            by_word,
            by_initial,
        }
    }

    /// The longest phrase starting at `words[0]`: (phrase, token count).
    pub fn longest_at(&self, words: &[&str]) -> Option<(&Phrase, usize)> {
        let first = words.first()?;
        let exact = self.by_word.get(first).into_iter().flatten();
        let prefix = first
            .as_bytes()
            .first()
            .and_then(|b| self.by_initial.get(b))
            .into_iter()
            .flatten();
        exact
            .chain(prefix)
            .filter_map(|&i| {
                let p = &self.phrases[i];
                p.match_len(words).map(|n| (p, n))
            })
            .max_by_key(|&(_, n)| n)
    }
}

pub(crate) static LEXICON: LazyLock<Lexicon> = LazyLock::new(Lexicon::build);

/// Words that put what follows them (in their scope) into doubt.
pub(crate) const UNCERTAIN_PRE: &[&str] = &[
    "may",
    "might",
    "could",
    "would",
    "possible",
    "possibly",
    "probable",
    "probably",
    "likely",
    "questionable",
    "question",
    "questioned",
    "suspect",
    "suspected",
    "suspicious",
    "suspicion",
    "concern",
    "concerning",
    "worrisome",
    "suggest",
    "suggests",
    "suggesting",
    "suggestive",
    "suggestion",
    "versus",
    "vs",
    "differential",
    "consider",
    "considered",
    "equivocal",
    "borderline",
    "indeterminate",
    "presumed",
    "presumably",
    "perhaps",
    "unlikely",
    "uncertain",
    "unclear",
    "favor",
    "favored",
    "favoring",
    "correlate",
    "correlation",
    "?",
];

/// Uncertainty triggers whose scope is a whole comma-separated list:
/// "differential diagnosis includes edema, atypical infection, inflammation".
pub(crate) const UNCERTAIN_LIST: &[&str] = &["differential", "considerations", "consideration"];

/// Words that, after a mention in the same clause, put it into doubt.
pub(crate) const UNCERTAIN_POST: &[&str] = &[
    "suspected",
    "questioned",
    "possible",
    "possibly",
    "likely",
    "probable",
    "probably",
    "?",
    "favored",
    "versus",
    "vs",
    "suggested",
    "considered",
    "may",
    "might",
    "could",
    "possibility",
];

/// Single words that negate what follows them in their scope.
pub(crate) const NEGATION_PRE: &[&str] = &[
    "no",
    "not",
    "without",
    "nor",
    "neither",
    "never",
    "resolved",
    "resolution",
    "cleared",
    "removal",
    "removed",
    "absence",
    "negative",
];

/// Two-word negation triggers whose second word would be ambiguous alone.
pub(crate) const NEGATION_PRE_PAIRS: &[(&str, &str)] = &[
    ("free", "of"),
    ("clear", "of"),
    ("rather", "than"),
    ("clearing", "of"),
];

/// Words after "not" (or "no longer") that make a post-negation:
/// "pneumothorax is not seen".
pub(crate) const SEEN: &[&str] = &[
    "seen",
    "identified",
    "present",
    "appreciated",
    "demonstrated",
    "evident",
    "noted",
    "detected",
    "apparent",
    "visible",
    "observed",
    "visualized",
    "definitely",
    "found",
    "shown",
    "there",
];

/// Single words after a mention that negate it: "the effusion has resolved".
pub(crate) const NEGATION_POST: &[&str] = &["resolved", "cleared", "absent", "removed"];

/// Words that close the scope of a trigger (NegEx termination terms).
pub(crate) const TERMINATORS: &[&str] = &[
    "but", "however", "although", "though", "except", "whereas", "while", "yet", "aside", "apart",
    "which", "there",
];

/// After a comma inside a negated list, these words start a new, affirmed item:
/// "no pneumothorax, small left effusion".
pub(crate) const AFFIRMING: &[&str] = &[
    "mild",
    "mildly",
    "small",
    "moderate",
    "minimal",
    "stable",
    "persistent",
    "unchanged",
    "increased",
    "increasing",
    "new",
    "again",
    "interval",
    "trace",
    "severe",
    "marked",
    "with",
];

/// Words just before a pneumonia or heart-failure mention that make it history,
/// not a current finding: "prior tuberculous infection", "history of CHF".
pub(crate) const PAST: &[&str] = &[
    "history",
    "prior",
    "previous",
    "old",
    "remote",
    "healed",
    "granulomatous",
    "tuberculous",
];

/// Heart-size predicates.
pub(crate) const ENLARGED: &[&str] =
    &["enlarged", "enlargement", "enlarging", "large", "increased"];
pub(crate) const NORMAL_SIZE: &[&str] = &["normal", "normally", "unremarkable", "small", "wnl"];
pub(crate) const BORDERLINE_SIZE: &[&str] = &["borderline", "prominent"];

/// Severity words reported as written.
pub(crate) const SEVERITY: &[&str] = &[
    "mild",
    "mildly",
    "minimal",
    "minimally",
    "small",
    "moderate",
    "moderately",
    "large",
    "severe",
    "severely",
    "marked",
    "markedly",
    "massive",
    "tiny",
    "trace",
    "slight",
    "slightly",
    "subtle",
    "extensive",
    "borderline",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_phrase_wins() {
        let (p, n) = LEXICON
            .longest_at(&["pericardial", "effusion", "is", "seen"])
            .unwrap();
        assert_eq!((p.target, n), (Other, 2));
        let (p, n) = LEXICON.longest_at(&["atelectatic", "changes"]).unwrap();
        assert_eq!((p.target, n), (Finding(Atelectasis), 1));
        let (p, n) = LEXICON.longest_at(&["heart", "failure"]).unwrap();
        assert_eq!(
            (p.target, p.flag, n),
            (Finding(Edema), Flag::HeartFailure, 2)
        );
        assert!(LEXICON.longest_at(&["massive"]).is_none());
    }
}
