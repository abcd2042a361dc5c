//! The impression the device shows: never at odds with the findings it flags.
//!
//! The decoder writes free text; the findings head flags observations. A
//! clinician reads both side by side, so the text may not state a finding that
//! is not flagged, nor leave out one that is. [`compose`] keeps the decoder's
//! text only when the project's labeller ([`crate::labeller`]) reads exactly the
//! flagged findings in it and it names no side (the flags carry no laterality,
//! so a side in generated text is invented). Otherwise the impression is
//! composed from the flags: one sentence per flagged finding, highest score
//! first, worded by confidence band: definite at or above the finding's
//! `definite` score (chosen on validation films, see `cxr-edge consistency`),
//! hedged ("possible", "cannot exclude") between the threshold and that score,
//! and hedged throughout when no band was chosen, so the text never claims more
//! certainty than the validation films support. A film with no flag reads as
//! normal. Each sentence comes from the bundle's [`SentenceBank`] of real
//! impressions where it has one for that finding and band (the one closest in
//! wording to the decoder's text), else from a fixed phrase ([`sentence`]); the
//! result is read back, and a composition the labeller does not read as
//! exactly the flags (in their bands) falls back to the fixed phrases.

pub mod bank;

pub use bank::SentenceBank;

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

/// Side words the flags cannot support.
const SIDES: [&str; 8] = [
    "left",
    "right",
    "bilateral",
    "bilaterally",
    "unilateral",
    "lt",
    "rt",
    "both",
];

fn names_a_side(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| SIDES.contains(&w.to_ascii_lowercase().as_str()))
}

/// The impression for these findings; `definite[o]` is the score from which a
/// flagged finding is stated without hedging (`None`: always hedged).
pub fn compose(
    model_text: &str,
    findings: &[Finding],
    definite: &[Option<f32>; Observation::COUNT],
    bank: Option<&SentenceBank>,
) -> Impression {
    let flags = flagged(findings);
    let hedged_any = findings.iter().any(|f| f.flagged && is_hedged(f, definite));
    if !model_text.trim().is_empty()
        && !names_a_side(model_text)
        && !hedged_any
        && raised(model_text) == flags
    {
        return Impression {
            text: readable(model_text),
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

/// One sentence per stated finding (from `bank` when it has one, else the
/// fixed phrase), or a normal impression.
fn write(stated: &[(Observation, bool, f32)], bank: Option<&SentenceBank>, like: &str) -> String {
    let choose = |o: Option<Observation>, hedged: bool| bank.and_then(|b| b.pick(o, hedged, like));
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

fn is_hedged(f: &Finding, definite: &[Option<f32>; Observation::COUNT]) -> bool {
    definite[f.observation.index()].is_none_or(|d| f.score < d)
}

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
        );
        assert_eq!(kept.source, Source::Model);
        assert_eq!(kept.text, "Cardiomegaly without acute pulmonary disease.");

        // States an effusion nobody flagged, and misses nothing: composed.
        let extra = compose("cardiomegaly and pleural effusion", &f, &ALL_DEFINITE, None);
        assert_eq!(
            (extra.source, extra.text.as_str()),
            (Source::Composed, "Cardiomegaly.")
        );
        // Reads "heart size normal" on a film flagged for cardiomegaly: composed.
        let contradicts = compose("heart size normal lungs clear", &f, &ALL_DEFINITE, None);
        assert_eq!(contradicts.text, "Cardiomegaly.");
        // A side the flags cannot support.
        let f = findings(&[(Observation::PleuralEffusion, 0.9)]);
        let sided = compose("right pleural effusion", &f, &ALL_DEFINITE, None);
        assert_eq!(sided.text, "Pleural effusion.");
    }

    #[test]
    fn confidence_bands_hedge_and_order_by_score() {
        let f = findings(&[
            (Observation::Pneumonia, 0.6),
            (Observation::Edema, 0.95),
            (Observation::Atelectasis, 0.7),
        ]);
        let text = compose("", &f, &ALL_DEFINITE, None).text;
        assert_eq!(
            text,
            "Pulmonary edema. Possible atelectasis. Pneumonia cannot be excluded."
        );
        assert!(agrees(&text, &f), "{text}");
        // Without bands nothing is stated as definite, whatever the score.
        let none = [None; Observation::COUNT];
        assert_eq!(
            compose("", &findings(&[(Observation::Edema, 0.99)]), &none, None).text,
            "Possible pulmonary edema."
        );
        // No flag: normal, or the model's text when it raises nothing.
        let clear = findings(&[]);
        assert_eq!(compose("", &clear, &none, None).text, NORMAL);
        let model = compose("no acute cardiopulmonary process", &clear, &none, None);
        assert_eq!(
            (model.source, model.text.as_str()),
            (Source::Model, "No acute cardiopulmonary process.")
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
        let out = compose("heart normal", &findings, &definite, Some(&bank));
        assert_eq!(out.text, "Heart is enlarged. Possible pleural effusion.");
        assert!(agrees(&out.text, &findings));
        // No hedged edema sentence in the bank: the fixed phrase.
        let edema = vec![f(Observation::Edema, 0.7)];
        assert_eq!(
            compose("", &edema, &definite, Some(&bank)).text,
            "Possible pulmonary edema."
        );
        // No flags: a normal impression from the bank.
        let clear = vec![f(Observation::Edema, 0.1)];
        assert_eq!(
            compose("lungs clear right effusion", &clear, &definite, Some(&bank)).text,
            "No active disease."
        );
    }
}
