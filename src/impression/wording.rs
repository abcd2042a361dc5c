//! Impressions as a clinician writes them.
//!
//! The decoder speaks the seed normalisation ([`crate::text::Preset::Seed`]):
//! lower case, no punctuation, and every word holding a digit dropped, so
//! "Recommend followup PA and lateral chest in 3-4 weeks." comes out as
//! "recommend followup pa and lateral chest in weeks". The metrics keep scoring
//! that form; the screen and the reports show the written one:
//! - [`tidy`] writes a real impression cleanly: one sentence case per sentence,
//!   a full stop between sentences, the stray marks of the collection
//!   ("abnormality. .", list numbers) gone, abbreviations and numbers kept;
//! - [`Wording`] maps a normalised text back to the most frequent way a
//!   training impression with that normal form was written, and knows the
//!   words that in the training impressions mostly follow a number ("weeks",
//!   "cm"): a decoder text with such a word and no written form has lost its
//!   number, and is not shown as it stands.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::text::{self, Preset};

/// A share of a word's occurrences after a number from which it counts as a
/// unit that needs one.
const NUMBERED_SHARE: f64 = 0.5;

/// Occurrences a word needs before its share is trusted.
const NUMBERED_MIN: u32 = 3;

/// One impression written cleanly: sentences split as written
/// ([`text::split_sentences`], which drops pieces without a letter), each
/// starting with a capital and closed by a full stop; a sentence written all
/// in capitals is lowered first. Words, numbers and abbreviations stay.
pub fn tidy(impression: &str) -> String {
    text::split_sentences(impression)
        .iter()
        .map(|s| sentence(s))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn sentence(s: &str) -> String {
    let s = s.trim().trim_end_matches(['.', ' ']).trim();
    let letters = || s.chars().filter(|c| c.is_alphabetic());
    let shouting = letters().count() > 3 && letters().all(char::is_uppercase);
    let s = if shouting {
        s.to_lowercase()
    } else {
        lower_stray_capitals(s)
    };
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// "No Acute cardiopulmonary disease" → "No acute cardiopulmonary disease": a
/// capitalised word after the first is lowered; abbreviations written in
/// capitals ("PA", "AP", "CT") stay.
fn lower_stray_capitals(s: &str) -> String {
    s.split(' ')
        .enumerate()
        .map(|(i, w)| {
            let mut cs = w.chars();
            let title = cs.next().is_some_and(char::is_uppercase)
                && cs.clone().any(char::is_alphabetic)
                && cs.filter(|c| c.is_alphabetic()).all(char::is_lowercase);
            if i > 0 && title {
                w.to_lowercase()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How normalised texts are written, learnt from training impressions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Wording {
    /// Normal form → the most frequent tidy writing of it, kept only where it
    /// says more than the normal form in sentence case (numbers, full stops
    /// between sentences, abbreviations).
    #[serde(default)]
    pub written: BTreeMap<String, String>,
    /// Words that mostly follow a number in the training impressions.
    #[serde(default)]
    pub numbered: BTreeSet<String>,
}

impl Wording {
    /// Learn from impressions as written.
    pub fn build<'a>(impressions: impl IntoIterator<Item = &'a str>) -> Wording {
        let mut forms: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        let mut after_number: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for imp in impressions {
            let written = tidy(imp);
            let normal = text::normalize(imp, Preset::Seed);
            if normal.is_empty() || written.is_empty() {
                continue;
            }
            count_after_numbers(imp, &mut after_number);
            *forms.entry(normal).or_default().entry(written).or_default() += 1;
        }
        let written = forms
            .into_iter()
            .filter_map(|(normal, ws)| {
                let (best, _) = ws
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
                (best != super::readable(&normal)).then_some((normal, best))
            })
            .collect();
        let numbered = after_number
            .into_iter()
            .filter(|(_, (n, total))| {
                *total >= NUMBERED_MIN && f64::from(*n) / f64::from(*total) >= NUMBERED_SHARE
            })
            .map(|(w, _)| w)
            .collect();
        Wording { written, numbered }
    }

    /// How to show a normalised decoder text: its written form when a training
    /// impression had it, else sentence case with a closing stop; `None` when it
    /// holds a word that lost its number (`"in weeks"`).
    pub fn show(&self, normal: &str) -> Option<String> {
        let normal = normal.trim();
        if let Some(w) = self.written.get(normal) {
            return Some(w.clone());
        }
        let lost = normal.split_whitespace().any(|w| self.numbered.contains(w));
        (!lost).then(|| super::readable(normal))
    }
}

/// For each normalised word, how often it directly follows a word with a digit
/// (`3-4 weeks`, `2 cm`) and how often it occurs at all. List numbers (`1.`,
/// `2)`) are not numbers a word needs: "1. Suspected pneumonia" does not make
/// "suspected" a unit.
fn count_after_numbers(impression: &str, counts: &mut BTreeMap<String, (u32, u32)>) {
    let mut previous_numeric = false;
    for raw in impression.split_whitespace() {
        let list_mark = raw
            .strip_suffix(['.', ')'])
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        let numeric = !list_mark && raw.chars().any(|c| c.is_numeric());
        let word = text::normalize(raw, Preset::Seed);
        if !numeric && !word.is_empty() && !word.contains(' ') {
            let c = counts.entry(word).or_default();
            c.0 += u32::from(previous_numeric);
            c.1 += 1;
        }
        previous_numeric = numeric;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_writes_sentences_and_keeps_numbers() {
        assert_eq!(
            tidy("No acute cardiopulmonary abnormality. ."),
            "No acute cardiopulmonary abnormality."
        );
        assert_eq!(
            tidy("Clear lungs. no acute cardiopulmonary abnormality. ."),
            "Clear lungs. No acute cardiopulmonary abnormality."
        );
        assert_eq!(
            tidy("1. Cardiomegaly. 2. Recommend followup PA and lateral chest in 3-4 weeks"),
            "Cardiomegaly. Recommend followup PA and lateral chest in 3-4 weeks."
        );
        assert_eq!(tidy("NO ACUTE DISEASE."), "No acute disease.");
        assert_eq!(
            tidy("No Acute cardiopulmonary disease on this AP view."),
            "No acute cardiopulmonary disease on this AP view."
        );
        assert_eq!(tidy(" . "), "");
    }

    #[test]
    fn written_forms_restore_numbers_and_words_that_lost_one_are_refused() {
        let w = Wording::build([
            "Recommend followup PA and lateral chest in 3-4 weeks.",
            "Recommend followup PA and lateral chest in 3-4 weeks.",
            "Recommend followup PA and lateral chest in 6-8 weeks.",
            "Nodule measuring 2 cm. Followup in 3 months.",
            "1. Suspected pneumonia. 2. Suspected effusion.",
            "3. Suspected edema.",
            "No acute disease.",
            "No acute disease. Heart size normal.",
        ]);
        // The most frequent writing of a normal form.
        assert_eq!(
            w.show("recommend followup pa and lateral chest in weeks")
                .as_deref(),
            Some("Recommend followup PA and lateral chest in 3-4 weeks.")
        );
        assert_eq!(
            w.show("no acute disease heart size normal").as_deref(),
            Some("No acute disease. Heart size normal.")
        );
        // Written as its sentence case: not stored, shown the same.
        assert!(!w.written.contains_key("no acute disease"));
        assert_eq!(
            w.show("no acute disease").as_deref(),
            Some("No acute disease.")
        );
        // "weeks" follows a number each of the three times it occurs; "cm"
        // does too, but once is too few to trust.
        assert!(w.numbered.contains("weeks"));
        assert!(!w.numbered.contains("cm") && !w.numbered.contains("chest"));
        // Three times after a list number only: not a unit.
        assert!(!w.numbered.contains("suspected"));
        assert_eq!(w.show("followup chest radiograph in weeks"), None);
    }
}
