//! Parity of the Rust metrics with the Python packages the field uses (nltk,
//! rouge-score, pycocoevalcap), run as an oracle by `scripts/metrics_oracle.py` on
//! the committed fixture of 220 IU X-ray candidate/reference pairs.
//!
//! The oracle is required: without the Python packages these tests fail and say to
//! run the test set-up (`python3 -m pip install -r scripts/requirements-test.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

use cxr_edge::metrics::{self, cider, rouge, Options, ReferenceSource};
use cxr_edge::text::Preset;

const BLEU_TOL: f64 = 1e-9;
const TOL: f64 = 1e-6;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Pair {
    kind: String,
    candidate: String,
    reference: String,
}

fn fixture_pairs() -> Vec<Pair> {
    let path = crate::util::fixture("metrics_pairs.tsv");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .quoting(false)
        .from_path(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader
        .records()
        .map(|r| {
            let r = r.expect("fixture row");
            Pair {
                kind: r[0].to_owned(),
                candidate: r[3].to_owned(),
                reference: r[4].to_owned(),
            }
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Oracle {
    bleu: [f64; 4],
    rouge_l: f64,
    rouge_l_pairs: Vec<f64>,
    rouge_l_rouge_score: f64,
    rouge_l_rouge_score_pairs: Vec<f64>,
    cider_d: f64,
    cider_d_pairs: Vec<f64>,
}

/// Run the Python oracle on texts exactly as the Rust metrics see them.
fn oracle(dir: &Path, candidates: &[String], references: &[String]) -> Oracle {
    let input = dir.join("pairs.json");
    let json = serde_json::json!({ "candidates": candidates, "references": references });
    std::fs::write(&input, json.to_string()).unwrap();
    let python = std::env::var("CXR_PYTHON").unwrap_or_else(|_| "python3".into());
    let setup =
        "run the test set-up first: `python3 -m pip install -r scripts/requirements-test.txt` \
                 (nltk, rouge-score, pycocoevalcap; see README)";
    let out = Command::new(&python)
        .arg(root().join("scripts/metrics_oracle.py"))
        .arg("score")
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("cannot start the Python oracle `{python}` ({e}); {setup}"));
    assert!(
        out.status.success(),
        "the Python metrics oracle failed ({}): {}\n{setup}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("oracle JSON")
}

fn assert_close(what: &str, rust: f64, python: f64, tol: f64) {
    assert!(
        (rust - python).abs() <= tol,
        "{what}: rust {rust:.17} vs python {python:.17} (diff {:e})",
        (rust - python).abs()
    );
}

fn check_parity(preset: Option<Preset>) {
    let pairs = fixture_pairs();
    assert!(pairs.len() >= 200, "fixture has {} pairs", pairs.len());
    let options = Options {
        preset,
        ..Options::default()
    };
    let candidates: Vec<String> = pairs.iter().map(|p| p.candidate.clone()).collect();
    let references: Vec<String> = pairs.iter().map(|p| p.reference.clone()).collect();
    let prepared_c: Vec<String> = candidates.iter().map(|t| options.prepare(t)).collect();
    let prepared_r: Vec<String> = references.iter().map(|t| options.prepare(t)).collect();

    let dir = tempfile::tempdir().unwrap();
    let py = oracle(dir.path(), &prepared_c, &prepared_r);
    let scores = metrics::evaluate_with(&candidates, &references, &options).unwrap();

    for n in 0..4 {
        assert_close(
            &format!("BLEU-{}", n + 1),
            scores.bleu[n],
            py.bleu[n],
            BLEU_TOL,
        );
    }
    assert_close("ROUGE-L (pycocoevalcap)", scores.rouge_l, py.rouge_l, TOL);
    assert_close(
        "ROUGE-L (rouge-score)",
        scores.rouge_l_rouge_score,
        py.rouge_l_rouge_score,
        TOL,
    );
    assert_close("CIDEr-D", scores.cider_d, py.cider_d, TOL);

    let tokens = |v: &[String]| -> Vec<Vec<String>> {
        v.iter()
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let cider_pairs = cider::cider_d_pairs(&tokens(&prepared_c), &tokens(&prepared_r));
    for (i, p) in pairs.iter().enumerate() {
        let what = |m: &str| format!("{m}, pair {} ({})", i + 1, p.kind);
        let (c, r) = (&prepared_c[i], &prepared_r[i]);
        assert_close(
            &what("ROUGE-L"),
            rouge::rouge_l_coco_pair(c, r),
            py.rouge_l_pairs[i],
            TOL,
        );
        assert_close(
            &what("rouge-score"),
            rouge::rouge_l_rouge_score_pair(c, r),
            py.rouge_l_rouge_score_pairs[i],
            TOL,
        );
        assert_close(&what("CIDEr-D"), cider_pairs[i], py.cider_d_pairs[i], TOL);
    }
    // A whole-corpus score near 0 or 1 would make the comparison weak.
    assert!(
        scores.bleu[3] > 0.05 && scores.bleu[3] < 0.95,
        "{:?}",
        scores.bleu
    );
    assert!(scores.cider_d > 0.1, "{}", scores.cider_d);
}

#[test]
fn parity_with_python_on_normalised_text() {
    check_parity(Some(Preset::Seed));
}

#[test]
fn parity_with_python_on_raw_text() {
    check_parity(None);
}

#[test]
fn parity_on_every_kind_of_pair_alone() {
    // Small corpora change the document frequencies and the brevity penalty.
    let pairs = fixture_pairs();
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default();
    for kind in ["identical", "near", "same_study", "unrelated", "short"] {
        let (c, r): (Vec<String>, Vec<String>) = pairs
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| (options.prepare(&p.candidate), options.prepare(&p.reference)))
            .unzip();
        assert!(!c.is_empty(), "{kind}");
        let py = oracle(dir.path(), &c, &r);
        let rust = metrics::evaluate_with(&c, &r, &options).unwrap();
        for n in 0..4 {
            assert_close(
                &format!("{kind} BLEU-{}", n + 1),
                rust.bleu[n],
                py.bleu[n],
                BLEU_TOL,
            );
        }
        assert_close(&format!("{kind} ROUGE-L"), rust.rouge_l, py.rouge_l, TOL);
        assert_close(
            &format!("{kind} rouge-score"),
            rust.rouge_l_rouge_score,
            py.rouge_l_rouge_score,
            TOL,
        );
        assert_close(&format!("{kind} CIDEr-D"), rust.cider_d, py.cider_d, TOL);
    }
}

#[test]
fn identical_texts_score_perfectly_and_collapse_is_counted() {
    let pairs = fixture_pairs();
    let texts: Vec<String> = pairs
        .iter()
        .filter(|p| p.kind == "identical")
        .map(|p| p.reference.clone())
        .collect();
    let s = metrics::evaluate(&texts, &texts).unwrap();
    // NLTK counts a text shorter than n as one n-gram slot with no match
    // (denominator max(1, 0)), so even identical corpora with short texts lose a
    // little at the higher orders: p_n = Σ max(0, len−n+1) / Σ max(1, len−n+1).
    let lens: Vec<usize> = texts
        .iter()
        .map(|t| Options::default().prepare(t).split_whitespace().count())
        .collect();
    let mut log_sum = 0.0;
    for n in 1..=4usize {
        let num: usize = lens.iter().map(|&l| (l + 1).saturating_sub(n)).sum();
        let den: usize = lens.iter().map(|&l| (l + 1).saturating_sub(n).max(1)).sum();
        log_sum += (num as f64 / den as f64).ln();
        let expected = (log_sum / n as f64).exp();
        assert!(
            (s.bleu[n - 1] - expected).abs() < 1e-12,
            "{:?} vs {expected}",
            s.bleu
        );
    }
    assert!(
        s.bleu[3] < 1.0,
        "the fixture has identical texts shorter than 4 words"
    );
    assert!((s.rouge_l - 1.0).abs() < 1e-12 && (s.rouge_l_rouge_score - 1.0).abs() < 1e-12);
    assert_eq!(s.clinical.reference_source, ReferenceSource::Labeller);
    let distinct = texts
        .iter()
        .map(|t| Options::default().prepare(t))
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert_eq!(s.distinct_candidates, distinct);

    // One template for every study: a single distinct candidate.
    let template = vec![texts[0].clone(); texts.len()];
    let collapsed = metrics::evaluate(&template, &texts).unwrap();
    assert_eq!(collapsed.distinct_candidates, 1);
    assert!(collapsed.cider_d < s.cider_d);
}

#[test]
fn mismatched_or_empty_inputs_are_errors() {
    let one = vec!["no acute disease".to_owned()];
    let e = metrics::evaluate(&one, &[]).unwrap_err().to_string();
    assert!(e.contains("1 candidates but 0 references"), "{e}");
    assert!(matches!(
        metrics::evaluate(&[], &[]),
        Err(metrics::MetricsError::Empty)
    ));
    let e = metrics::evaluate_with_labels(&one, &one, &[], &Options::default()).unwrap_err();
    assert!(e.to_string().contains("0 reference label rows"), "{e}");
}
