//! The impression the device shows: never at odds with the findings it flags.
//!
//! The decoder writes free text; the findings head flags observations. A
//! clinician reads both side by side, so the text may not state a finding that
//! is not flagged, nor leave out one that is. [`compose`] decides, in order:
//! - a film without flags reads a normal impression of real IU reports, drawn
//!   by a digest of the film among the most typical ones in proportion to how
//!   often each was written ([`SentenceBank::draw_normal`]): the same film
//!   always reads the same, and films do not all read the one commonest phrase;
//! - the decoder's text, when the project's labeller ([`crate::labeller`])
//!   reads exactly the flagged findings in it, it names no side (the flags
//!   carry no laterality, so a side in generated text is invented), nothing
//!   flagged needs hedging, and it lost no number to the normalisation
//!   ([`Wording::show`], which also restores how it was written);
//! - otherwise an impression composed from the flags: a whole real impression
//!   stating exactly them, else one sentence per flagged finding, highest
//!   score first, from the bundle's [`SentenceBank`] (ranked by how typical
//!   each wording is, [`consensus`], and picked by closeness to the decoder's
//!   words), else a fixed phrase ([`sentence`]). Sentences are worded by
//!   confidence band: definite at or above the finding's `definite` score
//!   (chosen on validation films, see `cxr-edge consistency`), hedged
//!   ("possible", "cannot exclude") between the threshold and that score, and
//!   hedged throughout when no band was chosen. The result is read back, and a
//!   composition the labeller does not read as exactly the flags (in their
//!   bands) falls back to the fixed phrases.

pub mod bank;
pub mod consensus;
pub mod wording;

pub use bank::SentenceBank;
pub use wording::{tidy, Wording};

use crate::labeller::{self, Mention};
use crate::report::Finding;
use crate::Observation;

/// Where the impression came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The decoder's text, which states exactly the flagged findings.
    Model,
    /// Sentences written from the flags.
    Composed,
}

/// An impression and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    pub text: String,
    pub source: Source,
}

/// The observations a text raises (positive or uncertain), by the labeller.
pub fn raised(text: &str) -> Vec<Observation> {
    let labels = labeller::label(text);
    Observation::FINDINGS
        .into_iter()
        .filter(|o| labels.mention(*o).is_raised())
        .collect()
}

/// Whether `text` raises exactly the flagged findings.
pub fn agrees(text: &str, findings: &[Finding]) -> bool {
    raised(text) == flagged(findings)
}

fn flagged(findings: &[Finding]) -> Vec<Observation> {
    Observation::FINDINGS
        .into_iter()
        .filter(|o| findings.iter().any(|f| f.observation == *o && f.flagged))
        .collect()
}

/// Side words the flags cannot support ("rightsided" is how the seed
/// normalisation writes "right-sided").
const SIDES: [&str; 10] = [
    "left",
    "right",
    "bilateral",
    "bilaterally",
    "unilateral",
    "lt",
    "rt",
    "both",
    "rightsided",
    "leftsided",
];

/// `text` with every side word left out (for measuring what invented sides
/// are worth to the text metrics).
pub fn without_sides(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| !names_a_side(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a text names a side.
pub fn names_a_side(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| SIDES.contains(&w.to_ascii_lowercase().as_str()))
}

/// The impression for these findings; `definite[o]` is the score from which a
/// flagged finding is stated without hedging (`None`: always hedged). `digest`
/// gives a digest of the film, asked for only when the film has no flag: it
/// then reads a normal impression drawn by it from the bank
/// ([`SentenceBank::draw_normal`]).
pub fn compose(
    model_text: &str,
    findings: &[Finding],
    definite: &[Option<f32>; Observation::COUNT],
    bank: Option<&SentenceBank>,
    digest: impl FnOnce() -> u64,
) -> Impression {
    let flags = flagged(findings);
    if let Some(normal) = bank
        .filter(|_| flags.is_empty())
        .and_then(|b| b.draw_normal(digest()))
    {
        return Impression {
            text: normal.to_string(),
            source: Source::Composed,
        };
    }
    if let Some(text) = model_wording(model_text, findings, definite, bank) {
        return Impression {
            text,
            source: Source::Model,
        };
    }
    let mut stated: Vec<(Observation, bool, f32)> = findings
        .iter()
        .filter(|f| f.flagged && f.observation != Observation::NoFinding)
        .map(|f| (f.observation, is_hedged(f, definite), f.score))
        .collect();
    stated.sort_by(|a, b| b.2.total_cmp(&a.2));
    let whole = bank.and_then(|b| {
        let key = bank::whole_key(stated.iter().map(|&(o, h, _)| (o, h)));
        b.pick_whole(&key, model_text).map(str::to_string)
    });
    let text = whole
        .into_iter()
        .chain(
            [bank, None]
                .into_iter()
                .map(|bank| write(&stated, bank, model_text)),
        )
        .find(|text| reads_as(text, &stated))
        .unwrap_or_else(|| write(&stated, None, model_text));
    Impression {
        text,
        source: Source::Composed,
    }
}

/// The decoder's text as shown, when it may be: it states exactly the flags,
/// names no side, nothing flagged needs hedging, and (with a bank) it has not
/// lost a number to the normalisation ([`Wording::show`]).
fn model_wording(
    model_text: &str,
    findings: &[Finding],
    definite: &[Option<f32>; Observation::COUNT],
    bank: Option<&SentenceBank>,
) -> Option<String> {
    let hedged_any = findings.iter().any(|f| f.flagged && is_hedged(f, definite));
    let usable = !model_text.trim().is_empty()
        && !names_a_side(model_text)
        && !hedged_any
        && raised(model_text) == flagged(findings);
    if !usable {
        return None;
    }
    match bank {
        Some(b) => b.wording.show(model_text),
        None => Some(readable(model_text)),
    }
}

/// One sentence per stated finding (from `bank` when it has one, else the
/// fixed phrase), or a normal impression.
fn write(stated: &[(Observation, bool, f32)], bank: Option<&SentenceBank>, like: &str) -> String {
    let alone = stated.len() <= 1;
    let choose =
        |o: Option<Observation>, hedged: bool| bank.and_then(|b| b.pick(o, hedged, like, alone));
    if stated.is_empty() {
        return choose(None, false).unwrap_or(NORMAL).to_string();
    }
    stated
        .iter()
        .map(|&(o, hedged, _)| choose(Some(o), hedged).unwrap_or(sentence(o, hedged)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the labeller reads `text` as exactly the stated findings, each in its
/// band (uncertain when hedged, positive when definite).
fn reads_as(text: &str, stated: &[(Observation, bool, f32)]) -> bool {
    let labels = labeller::label(text);
    Observation::FINDINGS.into_iter().all(|o| {
        let m = labels.mention(o);
        match stated.iter().find(|s| s.0 == o) {
            Some(&(_, true, _)) => m == Mention::Uncertain,
            Some(&(_, false, _)) => m == Mention::Positive,
            None => !m.is_raised(),
        }
    })
}

/// Whether a flagged finding is stated as possible rather than present: below
/// its definite band, or, where the bundle calibrates it, with a calibrated
/// probability under [`DEFINITE_PROBABILITY`]. The band rests on a handful of
/// validation films, so a score in it can still carry a calibrated probability
/// of 0.3, and the screen shows that probability beside the text: the text
/// must not sound surer than the number.
fn is_hedged(f: &Finding, definite: &[Option<f32>; Observation::COUNT]) -> bool {
    let below_band = definite[f.observation.index()].is_none_or(|d| f.score < d);
    below_band || f.probability.is_some_and(|p| p < DEFINITE_PROBABILITY)
}

/// The calibrated probability from which a finding may be stated as present:
/// more likely than not.
pub const DEFINITE_PROBABILITY: f32 = 0.5;

/// What a film without flags reads.
pub const NORMAL: &str = "No acute cardiopulmonary abnormality.";

/// One sentence stating `o`, definite or hedged.
pub fn sentence(o: Observation, hedged: bool) -> &'static str {
    use Observation::*;
    match (o, hedged) {
        (Cardiomegaly, false) => "Cardiomegaly.",
        (Cardiomegaly, true) => "Possible cardiomegaly.",
        (LungOpacity, false) => "Pulmonary opacity.",
        (LungOpacity, true) => "Possible pulmonary opacity.",
        (LungLesion, false) => "Pulmonary nodule or mass.",
        (LungLesion, true) => "Possible pulmonary nodule or mass.",
        (Edema, false) => "Pulmonary edema.",
        (Edema, true) => "Possible pulmonary edema.",
        (Consolidation, false) => "Consolidation.",
        (Consolidation, true) => "Possible consolidation.",
        (Pneumonia, false) => "Findings consistent with pneumonia.",
        (Pneumonia, true) => "Pneumonia cannot be excluded.",
        (Atelectasis, false) => "Atelectasis.",
        (Atelectasis, true) => "Possible atelectasis.",
        (Pneumothorax, false) => "Pneumothorax.",
        (Pneumothorax, true) => "Pneumothorax cannot be excluded.",
        (PleuralEffusion, false) => "Pleural effusion.",
        (PleuralEffusion, true) => "Possible pleural effusion.",
        (NoFinding, _) => NORMAL,
    }
}

/// The decoder's normalised text as a clinician writes it: sentence case and a
/// closing full stop (the decoder's vocabulary has no punctuation).
pub fn readable(text: &str) -> String {
    let text = text.trim();
    let mut out = String::with_capacity(text.len() + 1);
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.extend(chars);
    }
    if !out.is_empty() && !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(flags: &[(Observation, f32)]) -> Vec<Finding> {
        Observation::ALL
            .into_iter()
            .map(|o| {
                let score = flags
                    .iter()
                    .find(|(f, _)| *f == o)
                    .map_or(0.05, |(_, s)| *s);
                Finding {
                    observation: o,
                    score,
                    threshold: 0.5,
                    flagged: score >= 0.5,
                    probability: None,
                }
            })
            .collect()
    }

    const ALL_DEFINITE: [Option<f32>; Observation::COUNT] = [Some(0.8); Observation::COUNT];

    #[test]
    fn every_sentence_states_exactly_its_finding() {
        for o in Observation::FINDINGS {
            for hedged in [false, true] {
                let s = sentence(o, hedged);
                assert_eq!(raised(s), vec![o], "{s:?}");
            }
        }
        assert!(raised(NORMAL).is_empty());
    }

    #[test]
    fn model_text_is_kept_only_when_it_states_exactly_the_flags() {
        let f = findings(&[(Observation::Cardiomegaly, 0.9)]);
        let kept = compose(
            "cardiomegaly without acute pulmonary disease",
            &f,
            &ALL_DEFINITE,
            None,
            || 0,
        );
        assert_eq!(kept.source, Source::Model);
        assert_eq!(kept.text, "Cardiomegaly without acute pulmonary disease.");

        // States an effusion nobody flagged, and misses nothing: composed.
        let extra = compose(
            "cardiomegaly and pleural effusion",
            &f,
            &ALL_DEFINITE,
            None,
            || 0,
        );
        assert_eq!(
            (extra.source, extra.text.as_str()),
            (Source::Composed, "Cardiomegaly.")
        );
        // Reads "heart size normal" on a film flagged for cardiomegaly: composed.
        let contradicts = compose(
            "heart size normal lungs clear",
            &f,
            &ALL_DEFINITE,
            None,
            || 0,
        );
        assert_eq!(contradicts.text, "Cardiomegaly.");
        // A side the flags cannot support.
        let f = findings(&[(Observation::PleuralEffusion, 0.9)]);
        let sided = compose("right pleural effusion", &f, &ALL_DEFINITE, None, || 0);
        assert_eq!(sided.text, "Pleural effusion.");
    }

    #[test]
    fn confidence_bands_hedge_and_order_by_score() {
        let f = findings(&[
            (Observation::Pneumonia, 0.6),
            (Observation::Edema, 0.95),
            (Observation::Atelectasis, 0.7),
        ]);
        let text = compose("", &f, &ALL_DEFINITE, None, || 0).text;
        assert_eq!(
            text,
            "Pulmonary edema. Possible atelectasis. Pneumonia cannot be excluded."
        );
        assert!(agrees(&text, &f), "{text}");
        // Without bands nothing is stated as definite, whatever the score.
        let none = [None; Observation::COUNT];
        assert_eq!(
            compose(
                "",
                &findings(&[(Observation::Edema, 0.99)]),
                &none,
                None,
                || 0
            )
            .text,
            "Possible pulmonary edema."
        );
        // No flag: normal, or the model's text when it raises nothing.
        let clear = findings(&[]);
        assert_eq!(compose("", &clear, &none, None, || 0).text, NORMAL);
        let model = compose(
            "no acute cardiopulmonary process",
            &clear,
            &none,
            None,
            || 0,
        );
        assert_eq!(
            (model.source, model.text.as_str()),
            (Source::Model, "No acute cardiopulmonary process.")
        );
    }

    #[test]
    fn sides_are_found_and_left_out() {
        let t = "small rightsided pneumothorax and left-sided effusion both lungs clear";
        assert!(names_a_side(t));
        let out = without_sides(t);
        assert_eq!(out, "small pneumothorax and effusion lungs clear");
        assert!(!names_a_side(&out));
    }

    #[test]
    fn a_calibrated_probability_under_a_half_is_hedged_whatever_the_band() {
        let mut f = findings(&[(Observation::PleuralEffusion, 0.9)]);
        let effusion = Observation::PleuralEffusion.index();
        f[effusion].probability = Some(0.32);
        assert_eq!(
            compose("", &f, &ALL_DEFINITE, None, || 0).text,
            "Possible pleural effusion."
        );
        f[effusion].probability = Some(0.61);
        assert_eq!(
            compose("", &f, &ALL_DEFINITE, None, || 0).text,
            "Pleural effusion."
        );
    }

    #[test]
    fn readable_capitalises_and_closes() {
        assert_eq!(readable(" heart size normal "), "Heart size normal.");
        assert_eq!(readable("Done."), "Done.");
        assert_eq!(readable(""), "");
    }
}

#[cfg(test)]
mod bank_tests {
    use super::*;

    #[test]
    fn bank_sentences_are_used_when_they_read_right_and_fixed_phrases_otherwise() {
        let bank = SentenceBank::build(
            [
                "Heart is enlarged.",
                "Possible pleural effusion.",
                "No active disease.",
                "No active disease.",
            ],
            String::new(),
        );
        let f = |o: Observation, score: f32| Finding {
            observation: o,
            score,
            threshold: 0.5,
            flagged: score >= 0.5,
            probability: None,
        };
        let findings = vec![
            f(Observation::Cardiomegaly, 0.9),
            f(Observation::PleuralEffusion, 0.6),
        ];
        let mut definite = [None; Observation::COUNT];
        definite[Observation::Cardiomegaly.index()] = Some(0.8);
        let out = compose("heart normal", &findings, &definite, Some(&bank), || 0);
        assert_eq!(out.text, "Heart is enlarged. Possible pleural effusion.");
        assert!(agrees(&out.text, &findings));
        // No hedged edema sentence in the bank: the fixed phrase.
        let edema = vec![f(Observation::Edema, 0.7)];
        assert_eq!(
            compose("", &edema, &definite, Some(&bank), || 0).text,
            "Possible pulmonary edema."
        );
        // No flags: a normal impression from the bank.
        let clear = vec![f(Observation::Edema, 0.1)];
        assert_eq!(
            compose(
                "lungs clear right effusion",
                &clear,
                &definite,
                Some(&bank),
                || 0
            )
            .text,
            "No active disease."
        );
    }

    #[test]
    fn films_without_flags_draw_normal_wordings_by_frequency_and_seed() {
        let mut written = vec!["No acute disease."; 3];
        written.extend(["Normal chest."; 2]);
        let bank = SentenceBank::build(written, String::new());
        let clear = vec![Finding {
            observation: Observation::Edema,
            score: 0.1,
            threshold: 0.5,
            flagged: false,
            probability: None,
        }];
        let none = [None; Observation::COUNT];
        // Three in five seeds draw the wording written three times in five.
        let drawn: Vec<String> = (0..10u64)
            .map(|seed| compose("", &clear, &none, Some(&bank), || seed).text)
            .collect();
        let common = drawn.iter().filter(|t| *t == "No acute disease.").count();
        assert_eq!((common, drawn.len() - common), (6, 4), "{drawn:?}");
        assert!(drawn.iter().all(|t| agrees(t, &clear)));
        // The same film always reads the same.
        assert_eq!(
            compose("", &clear, &none, Some(&bank), || 5).text,
            compose("anything", &clear, &none, Some(&bank), || 5).text
        );
    }
}
