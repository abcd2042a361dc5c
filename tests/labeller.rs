//! The findings labeller on hand-checked report sentences and on the cases the
//! issue names.

use cxr_edge::labeller::{eval, label, Laterality, Mention};
use cxr_edge::Observation::{self, *};

/// The committed fixture (not through `util`, so this file also builds as its
/// own test target, which cargo's automatic test discovery makes of it).
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn mention(text: &str, o: Observation) -> Mention {
    label(text).mention(o)
}

#[test]
fn fixture_sentences_meet_the_accuracy_floor() {
    let cases = eval::read_fixture(&fixture("labeller_sentences.tsv")).unwrap();
    assert!(cases.len() >= 150, "only {} sentences", cases.len());
    let score = eval::score_fixture(&cases);
    let report: Vec<String> = score
        .mistakes
        .iter()
        .map(|m| {
            format!(
                "{} {:?}->{:?} {:?}: {}",
                m.observation, m.expected, m.got, m.detail, m.sentence
            )
        })
        .collect();
    assert!(
        score.overall.accuracy() >= 0.98,
        "overall {:.4}\n{}",
        score.overall.accuracy(),
        report.join("\n")
    );
    assert!(
        score.overall.mentioned_accuracy() >= 0.95,
        "on mentioned findings {:.4}\n{}",
        score.overall.mentioned_accuracy(),
        report.join("\n")
    );
    for (o, a) in Observation::FINDINGS.iter().zip(&score.per_observation) {
        assert!(
            a.mentioned >= 5,
            "{o}: the fixture mentions it only {} times",
            a.mentioned
        );
        assert!(
            a.mentioned_accuracy() >= 0.85,
            "{o}: {:.3}",
            a.mentioned_accuracy()
        );
    }
    let lat_checked: usize = score
        .per_observation
        .iter()
        .map(|a| a.laterality_checked)
        .sum();
    let lat_ok: usize = score
        .per_observation
        .iter()
        .map(|a| a.laterality_correct)
        .sum();
    assert!(
        lat_checked >= 50 && lat_ok as f64 >= 0.9 * lat_checked as f64,
        "{lat_ok}/{lat_checked}"
    );
}

#[test]
fn negated_lists_and_normal_heart_size() {
    let l = label("No pleural effusion or pneumothorax.");
    assert_eq!(l.mention(PleuralEffusion), Mention::Negative);
    assert_eq!(l.mention(Pneumothorax), Mention::Negative);
    assert_eq!(l.mention(NoFinding), Mention::Positive);
    assert_eq!(
        mention("Heart size is normal.", Cardiomegaly),
        Mention::Negative
    );
    assert_eq!(
        mention("Normal heart size.", Cardiomegaly),
        Mention::Negative
    );
    assert_eq!(
        mention("The heart is not enlarged.", Cardiomegaly),
        Mention::Negative
    );
    assert_eq!(
        mention("No evidence of focal consolidation.", Consolidation),
        Mention::Negative
    );
    assert_eq!(
        mention("The lungs are free of focal airspace disease.", LungOpacity),
        Mention::Negative
    );
    assert_eq!(
        mention("Pneumothorax is not seen.", Pneumothorax),
        Mention::Negative
    );
}

#[test]
fn uncertainty_and_affirmation() {
    assert_eq!(
        mention("Cannot exclude pneumonia.", Pneumonia),
        Mention::Uncertain
    );
    assert_eq!(
        mention("Pneumonia cannot be excluded.", Pneumonia),
        Mention::Uncertain
    );
    assert_eq!(
        mention("Possible left lower lobe pneumonia.", Pneumonia),
        Mention::Uncertain
    );
    let l = label("Atelectasis versus pneumonia.");
    assert_eq!(l.mention(Atelectasis), Mention::Uncertain);
    assert_eq!(l.mention(Pneumonia), Mention::Uncertain);
    let l = label("Stable cardiomegaly.");
    assert_eq!(l.mention(Cardiomegaly), Mention::Positive);
    assert_eq!(l.mention(NoFinding), Mention::Negative);
    assert_eq!(
        mention("Borderline cardiomegaly.", Cardiomegaly),
        Mention::Uncertain
    );
    // "likely" belongs to the atelectasis, not to the opacity before it.
    let l = label("Left basilar opacity, likely atelectasis.");
    assert_eq!(l.mention(LungOpacity), Mention::Positive);
    assert_eq!(l.mention(Atelectasis), Mention::Uncertain);
    // A negation scope ends at "but".
    let l = label("No pneumothorax, but there is a small right effusion.");
    assert_eq!(l.mention(Pneumothorax), Mention::Negative);
    assert_eq!(l.mention(PleuralEffusion), Mention::Positive);
    assert_eq!(
        mention("No change in the small left effusion.", PleuralEffusion),
        Mention::Positive
    );
}

#[test]
fn resolved_findings_and_lookalikes() {
    let l = label("Resolved right effusion.");
    let e = l.get(PleuralEffusion);
    assert_eq!(e.mention, Mention::Negative);
    assert_eq!(e.laterality, Some(Laterality::Right));
    assert_eq!(
        mention("The left apical pneumothorax has resolved.", Pneumothorax),
        Mention::Negative
    );
    let l = label("Calcified granuloma in the right upper lobe.");
    assert_eq!(l.mention(LungLesion), Mention::NotMentioned);
    assert_eq!(
        l.mention(NoFinding),
        Mention::Negative,
        "a granuloma is still a finding"
    );
    assert_eq!(
        mention("Stable 5 mm calcified right midlung nodule", LungLesion),
        Mention::NotMentioned
    );
    let l = label("Large pericardial effusion.");
    assert_eq!(l.mention(PleuralEffusion), Mention::NotMentioned);
    assert_eq!(l.mention(NoFinding), Mention::Negative);
    assert_eq!(
        mention("Small right pleural effusion.", PleuralEffusion),
        Mention::Positive
    );
}

#[test]
fn xxxx_gaps_and_evidence_spans() {
    let text = "The cardiomediastinal silhouette is normal. There are no XXXX of a pleural effusion. XXXX opacity persists in the right midlung.";
    let l = label(text);
    assert_eq!(l.mention(PleuralEffusion), Mention::Negative);
    let o = l.get(LungOpacity);
    assert_eq!(o.mention, Mention::Positive);
    assert_eq!(&text[o.evidence.clone().unwrap()], "opacity");
    assert_eq!(o.laterality, Some(Laterality::Right));
    let c = l.get(Cardiomegaly);
    assert_eq!(c.mention, Mention::Negative);
    assert_eq!(
        &text[c.evidence.clone().unwrap()],
        "cardiomediastinal silhouette is normal"
    );
    assert_eq!(l.mention(NoFinding), Mention::Negative);
}

#[test]
fn severity_laterality_and_aggregation() {
    let l = label("Mild cardiomegaly. Small bilateral pleural effusions. No pneumothorax.");
    assert_eq!(l.get(Cardiomegaly).severity.as_deref(), Some("mild"));
    let e = l.get(PleuralEffusion);
    assert_eq!(
        (e.mention, e.laterality, e.severity.as_deref()),
        (
            Mention::Positive,
            Some(Laterality::Bilateral),
            Some("small")
        )
    );
    // Positive beats negative across sentences; severity only for raised findings.
    let l = label("No large pleural effusion. Small left pleural effusion.");
    let e = l.get(PleuralEffusion);
    assert_eq!(
        (e.mention, e.laterality, e.severity.as_deref()),
        (Mention::Positive, Some(Laterality::Left), Some("small"))
    );
    assert_eq!(
        label("No large pleural effusion.")
            .get(PleuralEffusion)
            .severity,
        None
    );
    // Empty text mentions nothing, not even "no finding".
    assert!(label("  ")
        .0
        .iter()
        .all(|o| o.mention == Mention::NotMentioned));
    assert_eq!(
        label("The lungs are clear.").mention(NoFinding),
        Mention::Positive
    );
}
