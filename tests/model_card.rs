//! The shipped model card's encoder-sweep table against the committed file its
//! figures come from (`encoder-sweep.jsonl`, written by `scripts/sweep-cost.sh`).

use std::path::PathBuf;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/cxr-attn128-v2")
}

/// The card's table row whose first cell names `label` (bold or not).
fn card_row<'a>(card: &'a str, label: &str) -> Option<&'a str> {
    card.lines().find(|line| {
        line.split('|')
            .nth(1)
            .is_some_and(|cell| cell.trim().trim_matches('*') == label)
    })
}

#[test]
fn every_sweep_row_in_the_card_matches_its_measurement() {
    let dir = model_dir();
    let sweep = std::fs::read_to_string(dir.join("encoder-sweep.jsonl")).unwrap();
    let card = std::fs::read_to_string(dir.join("MODEL_CARD.md")).unwrap();
    // The sweep's table: from its heading to the paragraph on how it was measured.
    let start = card
        .find("**The encoder sweep.**")
        .expect("the card has the sweep");
    let end = start + card[start..].find("How they were measured").unwrap();
    let card = &card[start..end];
    let rows: Vec<serde_json::Value> = sweep
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 2, "the sweep compares at least two encoders");
    for r in &rows {
        let label = r["label"].as_str().unwrap();
        // The 224 px row is that run's bundled checkpoint.
        let row = card_row(card, label)
            .or_else(|| card_row(card, &format!("{label} (bundled epoch)")))
            .unwrap_or_else(|| panic!("no row for {label} in the card"));
        let f = |key: &str| r[key].as_f64().unwrap();
        let median = |key: &str| r[key]["median"].as_f64().unwrap();
        let expected = [
            format!("| {:.0} |", f("encoder_mmac")),
            format!("{:.3} ({})", f("val_mean_auroc"), r["val_epoch"]),
            format!("{:.2} ms", median("x86_tract_encoder_ms")),
            format!("{:.2}×", median("x86_tract_over_ort_encoder")),
            format!("{:.1} M", f("a72_insns_per_encoder") / 1e6),
        ];
        for e in expected {
            assert!(
                row.contains(&e),
                "{label}: the card's row lacks {e:?}: {row}"
            );
        }
        if let Some(vc) = r["val_not_frontal_refused"].as_object() {
            let e = format!(
                "{:.1} % ({}/{})",
                100.0 * vc["rate"].as_f64().unwrap(),
                vc["refused"],
                vc["of"]
            );
            assert!(
                row.contains(&e),
                "{label}: the card's row lacks {e:?}: {row}"
            );
        }
    }
}
