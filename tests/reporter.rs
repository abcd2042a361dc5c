//! The Reporter over a scripted runtime: text, findings at the manifest's
//! thresholds, heat map, provenance, timings and errors naming the input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cxr_edge::bundle::{Manifest, ObservationThreshold, VocabEntry, SCHEMA_VERSION};
use cxr_edge::input::{Radiograph, ValidateOptions};
use cxr_edge::preprocess::{Gray16, PreprocessOptions};
use cxr_edge::report::StudyInfo;
use cxr_edge::reporter::{ReportError, Reporter, ReporterError, ReporterOptions};
use cxr_edge::runtime::fake::FakeRuntime;
use cxr_edge::text::{Vocab, EOS};
use cxr_edge::{DecoderKind, ModelConfig, Observation};

fn vocab() -> Vocab {
    Vocab::build(["heart size normal", "lungs clear", "no effusion"], 1)
}

fn config(vocab: &Vocab) -> ModelConfig {
    FakeRuntime::config(vocab.len())
}

fn manifest(config: &ModelConfig) -> Manifest {
    Manifest {
        schema_version: SCHEMA_VERSION,
        model_id: "fake-1".into(),
        created_by: "tests".into(),
        tract_version: cxr_edge::bundle::TRACT_VERSION.into(),
        model: config.clone(),
        preprocess: PreprocessOptions {
            size: config.input_size,
            ..PreprocessOptions::default()
        },
        vocab: VocabEntry {
            file: "vocab.json".into(),
            sha256: String::new(),
            bos_id: Vocab::BOS,
            eos_id: Vocab::EOS,
        },
        max_len: 10,
        observations: vec![
            ObservationThreshold {
                observation: Observation::Cardiomegaly,
                threshold: 0.7,
                calibration: None,
                definite: None,
            },
            ObservationThreshold {
                observation: Observation::Edema,
                threshold: 0.2,
                calibration: None,
                definite: None,
            },
        ],
        artefacts: Vec::new(),
        onnx_encoder: String::new(),
        onnx_decoder: String::new(),
        parity: String::new(),
        view_check: None,
        impression_bank: None,
        files: BTreeMap::new(),
        provenance: serde_json::Value::Null,
        metrics: serde_json::Value::Null,
    }
}

/// What the device shows for the scripted film: its flags, hedged.
const CONSISTENT: &str = "Possible cardiomegaly. Possible pulmonary edema.";

/// "heart size normal", findings: cardiomegaly 0.88, edema 0.27, the rest low.
fn scripted(v: &Vocab, c: &ModelConfig) -> FakeRuntime {
    let id = |w: &str| v.id(w).unwrap();
    let (heart, size, normal) = (id("heart"), id("size"), id("normal"));
    let mut findings = [-3.0; Observation::COUNT];
    findings[Observation::Cardiomegaly.index()] = 2.0;
    findings[Observation::Edema.index()] = -1.0;
    FakeRuntime::new(c)
        .with_findings(&findings)
        .after(&[], &[(heart, 3.0), (id("lungs"), 2.0)])
        .after(&[heart], &[(size, 3.0)])
        .after(&[heart, size], &[(normal, 3.0)])
        .attend(&[heart, size], vec![0.0, 0.0, 0.0, 1.0])
        .otherwise(&[(EOS, 3.0)])
}

fn reporter(runtime: FakeRuntime, c: &ModelConfig, options: &ReporterOptions) -> Reporter {
    reporter_with(runtime, &manifest(c), options)
}

fn reporter_with(runtime: FakeRuntime, m: &Manifest, options: &ReporterOptions) -> Reporter {
    Reporter::from_parts(Box::new(runtime), m, vocab(), "abc123".into(), options).unwrap()
}

fn radiograph(source: &str) -> Radiograph {
    Radiograph {
        image: Gray16::from_fn(40, 30, |x, y| image::Luma([(x * 1000 + y * 300) as u16])),
        info: StudyInfo {
            instance_key: "k1".into(),
            source: source.into(),
            ..StudyInfo::default()
        },
    }
}

#[test]
fn report_has_text_findings_heatmap_and_provenance() {
    let (v, c) = (vocab(), config(&vocab()));
    for beam in [1, 3] {
        let options = ReporterOptions {
            beam,
            ..ReporterOptions::default()
        };
        let r = reporter(scripted(&v, &c), &c, &options);
        assert_eq!((r.model_id(), r.bundle_hash()), ("fake-1", "abc123"));
        let report = r.report(&radiograph("test://one")).unwrap();
        // The decoder wrote "heart size normal" beside a cardiomegaly flag: the
        // device shows the flags' sentences instead (no bands: hedged).
        let (_, stats) = r.report_with_stats(&radiograph("test://one")).unwrap();
        assert_eq!(stats.generated, "heart size normal", "beam {beam}");
        assert_eq!(stats.source, Some(cxr_edge::impression::Source::Composed));
        assert_eq!(report.impression, CONSISTENT, "beam {beam}");
        assert_eq!(report.study.source, "test://one");
        assert_eq!(report.model_id, "fake-1");
        assert_eq!(report.bundle_hash, "abc123");

        assert_eq!(report.findings.len(), 10);
        let f = |o: Observation| report.findings[o.index()].clone();
        let cardio = f(Observation::Cardiomegaly);
        assert!((cardio.score - 0.880_797).abs() < 1e-4, "{}", cardio.score);
        assert_eq!(cardio.threshold, 0.7);
        assert!(cardio.flagged);
        let edema = f(Observation::Edema);
        assert!(edema.flagged && edema.threshold == 0.2);
        let effusion = f(Observation::PleuralEffusion);
        assert!(!effusion.flagged && effusion.threshold == 0.5);
        let flagged: Vec<Observation> = report.flagged().iter().map(|f| f.observation).collect();
        assert_eq!(flagged, vec![Observation::Cardiomegaly, Observation::Edema]);

        // Cells 0 and 1 by default for the first two words, cell 3 for the third.
        let heat = report.heatmap.as_ref().unwrap();
        assert_eq!(heat.side, 2);
        let third = 1.0 / 3.0;
        for (got, want) in heat.values.iter().zip([third, third, 0.0, third]) {
            assert!((got - want).abs() < 1e-6, "{:?}", heat.values);
        }

        let t = &report.timings;
        assert!(t.total_ms >= t.preprocess_ms + t.encoder_ms + t.decoder_ms - 1e-6);
        let g = &report.generated_at;
        assert!(
            g.len() >= 20 && g.as_bytes()[10] == b'T' && g.ends_with('Z'),
            "{g}"
        );
    }
}

#[test]
fn calibrated_bundles_report_probabilities_and_units_override_thresholds() {
    use cxr_edge::calibration::Calibration;
    let (v, c) = (vocab(), config(&vocab()));
    let mut m = manifest(&c);
    // Cardiomegaly's score 0.88 (logit 2) is worth a probability of σ(0.5·2 − 1) = 0.5.
    m.observations[0].calibration = Some(Calibration::Platt { a: 0.5, b: -1.0 });
    let r = reporter_with(scripted(&v, &c), &m, &ReporterOptions::default());
    let report = r.report(&radiograph("test://cal")).unwrap();
    let cardio = &report.findings[Observation::Cardiomegaly.index()];
    assert!(
        (cardio.probability.unwrap() - 0.5).abs() < 1e-4,
        "{cardio:?}"
    );
    assert!(cardio.flagged, "flags stay on the model score (0.88 ≥ 0.7)");
    assert_eq!(
        report.findings[Observation::Edema.index()].probability,
        None
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["findings"][0]["probability"].is_number());

    // A unit asking for probability ≥ 0.6 no longer flags it; 0.4 does.
    for (shown, flagged) in [(0.6, false), (0.4, true)] {
        let options = ReporterOptions {
            thresholds: [(Observation::Cardiomegaly, shown)].into(),
            ..ReporterOptions::default()
        };
        let r = reporter_with(scripted(&v, &c), &m, &options);
        let report = r.report(&radiograph("test://cal")).unwrap();
        assert_eq!(report.findings[0].flagged, flagged, "threshold {shown}");
    }
    // Without a calibration the unit's threshold is a model score.
    let options = ReporterOptions {
        thresholds: [(Observation::Edema, 0.3)].into(),
        ..ReporterOptions::default()
    };
    let r = reporter_with(scripted(&v, &c), &m, &options);
    let report = r.report(&radiograph("test://cal")).unwrap();
    let edema = &report.findings[Observation::Edema.index()];
    assert!(!edema.flagged && edema.threshold == 0.3, "{edema:?}");
}

#[test]
fn merge_decoder_reports_no_heatmap() {
    let v = vocab();
    let c = ModelConfig {
        decoder: DecoderKind::Merge,
        ..config(&v)
    };
    let r = reporter(scripted(&v, &c), &c, &ReporterOptions::default());
    let report = r.report(&radiograph("x")).unwrap();
    assert_eq!(report.impression, CONSISTENT);
    assert!(report.heatmap.is_none());
}

#[test]
fn mismatched_parts_and_options_are_refused() {
    let v = vocab();
    let c = config(&v);
    let small = ModelConfig {
        vocab_size: v.len() - 1,
        ..c.clone()
    };
    let e = Reporter::from_parts(
        Box::new(FakeRuntime::new(&small)),
        &manifest(&small),
        vocab(),
        String::new(),
        &ReporterOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, ReporterError::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("vocabulary"), "{e}");
    for beam in [0, 99] {
        let options = ReporterOptions {
            beam,
            ..ReporterOptions::default()
        };
        let e = Reporter::from_parts(
            Box::new(FakeRuntime::new(&c)),
            &manifest(&c),
            vocab(),
            String::new(),
            &options,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("beam width"), "{e}");
    }
}

#[test]
fn runtime_failures_name_the_input() {
    let v = vocab();
    let c = config(&v);
    let r = reporter(
        scripted(&v, &c).failing_at(2),
        &c,
        &ReporterOptions::default(),
    );
    let e = r.report(&radiograph("films/bad.png")).unwrap_err();
    assert!(matches!(e, ReportError::Decode { .. }), "{e}");
    assert!(
        e.to_string().starts_with("films/bad.png: decoding failed"),
        "{e}"
    );

    // An encoder expecting another input size than the manifest's preprocessing.
    let other = ModelConfig {
        input_size: 16,
        ..c.clone()
    };
    let r = reporter(FakeRuntime::new(&other), &c, &ReporterOptions::default());
    let e = r.report(&radiograph("films/odd.png")).unwrap_err();
    assert!(matches!(e, ReportError::Encode { .. }), "{e}");
    assert!(e.to_string().contains("films/odd.png"), "{e}");

    let r = reporter(
        scripted(&v, &c).with_findings(&[0.0; 3]),
        &c,
        &ReporterOptions::default(),
    );
    let e = r.report(&radiograph("films/three.png")).unwrap_err();
    assert!(e.to_string().contains("3 findings logits"), "{e}");
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/nih_00001638_000_normal.png")
}

#[test]
fn report_file_decodes_and_times_the_image() {
    let v = vocab();
    let c = config(&v);
    let r = reporter(scripted(&v, &c), &c, &ReporterOptions::default());
    let report = r
        .report_file(&sample(), &ValidateOptions::default())
        .unwrap();
    assert_eq!(report.impression, CONSISTENT);
    assert!(report.study.source.ends_with("nih_00001638_000_normal.png"));
    assert!(report.study.instance_key.starts_with("sha256:"));
    assert!(report.timings.decode_image_ms > 0.0);
    assert!(report.timings.total_ms >= report.timings.decode_image_ms);

    let missing = Path::new("no/such/film.png");
    let e = r
        .report_file(missing, &ValidateOptions::default())
        .unwrap_err();
    assert!(matches!(e, ReportError::Input(_)), "{e}");
    assert!(e.to_string().contains("no/such/film.png"), "{e}");
}

#[test]
fn reports_are_reproducible() {
    let v = vocab();
    let c = config(&v);
    let r = reporter(scripted(&v, &c), &c, &ReporterOptions::default());
    let a = r.report(&radiograph("a")).unwrap();
    let b = r.report(&radiograph("a")).unwrap();
    assert_eq!(
        (&a.impression, &a.findings, &a.heatmap),
        (&b.impression, &b.findings, &b.heatmap)
    );
}

/// A view check centred on features of 1 with unit variance: the fake's
/// all-zero grid lies at distance 1 from it.
fn view_check(c: &ModelConfig, threshold: f32) -> cxr_edge::view_check::ViewCheck {
    let d = 4 * c.grid_channels();
    let mut whiten = vec![0.0; d * d];
    (0..d).for_each(|i| whiten[i * d + i] = 1.0);
    cxr_edge::view_check::ViewCheck {
        feature: cxr_edge::view_check::FEATURE.into(),
        mean: vec![1.0; d],
        whiten,
        threshold,
        provenance: serde_json::Value::Null,
    }
}

#[test]
fn the_view_check_refuses_unlike_films_unless_forced() {
    let (v, c) = (vocab(), config(&vocab()));
    let strict = reporter(scripted(&v, &c), &c, &ReporterOptions::default())
        .with_view_check(view_check(&c, 0.5))
        .unwrap();
    let e = strict.report(&radiograph("test://knee")).unwrap_err();
    match &e {
        ReportError::Input(cxr_edge::input::InputError::NotChestFilm { refusal, .. }) => {
            assert_eq!(refusal.code(), "unlike-frontal-chest")
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(e.to_string().starts_with("test://knee:"), "{e}");
    assert!(e.to_string().contains("distance 1.00, limit 0.50"), "{e}");

    let lenient = reporter(scripted(&v, &c), &c, &ReporterOptions::default())
        .with_view_check(view_check(&c, 1.5))
        .unwrap();
    assert_eq!(
        lenient
            .report(&radiograph("test://chest"))
            .unwrap()
            .impression,
        CONSISTENT
    );

    let forced = ReporterOptions {
        force: true,
        ..ReporterOptions::default()
    };
    let forced = reporter(scripted(&v, &c), &c, &forced)
        .with_view_check(view_check(&c, 0.5))
        .unwrap();
    assert!(forced.report(&radiograph("test://knee")).is_ok());

    // Statistics fitted on another encoder are refused when the bundle opens.
    let mut wrong = view_check(&c, 1.0);
    wrong.mean.pop();
    let e = reporter(scripted(&v, &c), &c, &ReporterOptions::default())
        .with_view_check(wrong)
        .err()
        .unwrap();
    assert!(e.contains("features"), "{e}");
}

#[test]
fn a_finding_scored_within_its_definite_band_is_stated_without_hedging() {
    let (v, c) = (vocab(), config(&vocab()));
    let mut m = manifest(&c);
    for t in m.observations.iter_mut() {
        if t.observation == Observation::Cardiomegaly {
            t.definite = Some(0.85);
        }
    }
    let r = Reporter::from_parts(
        Box::new(scripted(&v, &c)),
        &m,
        vocab(),
        "abc123".into(),
        &ReporterOptions::default(),
    )
    .unwrap();
    let report = r.report(&radiograph("test://one")).unwrap();
    // Cardiomegaly scores 0.88 (≥ 0.85): definite; edema has no band: hedged.
    assert_eq!(report.impression, "Cardiomegaly. Possible pulmonary edema.");
    let raised = cxr_edge::impression::raised(&report.impression);
    let flagged: Vec<Observation> = report.flagged().iter().map(|f| f.observation).collect();
    assert_eq!(raised, flagged);
}
