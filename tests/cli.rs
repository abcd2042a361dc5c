//! The real `cxr-edge` binary on the committed tiny bundle (random weights, so
//! the text is meaningless; what is checked is the plumbing) and on bad inputs:
//! every failure is a clear message naming the file, a non-zero exit, no panic.

use std::path::{Path, PathBuf};
use std::process::Output;

use cxr_edge::Report;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> PathBuf {
    root().join("tests/fixtures/bundle/tiny")
}

fn sample() -> PathBuf {
    root().join("samples/nih_00001638_000_normal.png")
}

fn cxr(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = crate::util::own_binary(env!("CARGO_BIN_EXE_cxr-edge"));
    cmd.env_remove("CXR_MODEL");
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("run cxr-edge")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run: non-zero exit, an `error:` line, no panic.
fn failed(o: &Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure; stderr: {err}");
    assert!(err.contains("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn copy_bundle(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(tiny()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn report_prints_impression_and_findings() {
    let o = cxr(&[&"report", &sample(), &"--model", &tiny()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("nih_00001638_000_normal.png"), "{out}");
    assert!(out.contains("impression: "), "{out}");
    assert!(out.contains("flagged: "), "{out}");
}

#[test]
fn json_report_carries_model_and_bundle_hash() {
    let o = cxr(&[
        &"report",
        &sample(),
        &"--model",
        &tiny(),
        &"--json",
        &"--beam",
        &"2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Report = serde_json::from_str(stdout(&o).trim()).unwrap();
    let manifest = std::fs::read(tiny().join("manifest.json")).unwrap();
    assert_eq!(report.bundle_hash, cxr_edge::bundle::sha256_hex(&manifest));
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(report.model_id, m["model_id"].as_str().unwrap());
    assert_eq!(report.findings.len(), 10);
    assert!(report
        .findings
        .iter()
        .all(|f| (0.0..=1.0).contains(&f.score)));
    assert_eq!(report.heatmap.as_ref().unwrap().side, 8);
    assert!(report.timings.decode_image_ms > 0.0);
}

#[test]
fn screen_and_out_folder_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("screen.png");
    let out = dir.path().join("out");
    let dcm = sample().with_extension("dcm");
    let o = cxr(&[
        &"report",
        &sample(),
        &dcm,
        &"--model",
        &tiny(),
        &"--screen",
        &png,
        &"--out",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&png).unwrap();
    assert!(img.width() > 100 && img.height() > 100);
    let json = std::fs::read(out.join("nih_00001638_000_normal.png.report.json")).unwrap();
    let report: Report = serde_json::from_slice(&json).unwrap();
    assert!(report.study.source.ends_with("nih_00001638_000_normal.png"));
    assert!(out.join("nih_00001638_000_normal.png.fhir.json").is_file());
    // The same film as DICOM keeps its own report beside the PNG's.
    let json = std::fs::read(out.join("nih_00001638_000_normal.dcm.report.json")).unwrap();
    let report: Report = serde_json::from_slice(&json).unwrap();
    assert!(report.study.source.ends_with("nih_00001638_000_normal.dcm"));
}

#[test]
fn model_from_the_environment() {
    let o = crate::util::own_binary(env!("CARGO_BIN_EXE_cxr-edge"))
        .args(["report", "--json"])
        .arg(sample())
        .env("CXR_MODEL", tiny())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"impression\""));
}

#[test]
fn missing_model_is_a_clear_error() {
    let o = cxr(&[&"report", &sample(), &"--model", &"/no/such/bundle"]);
    let err = failed(&o);
    assert!(err.contains("/no/such/bundle/manifest.json"), "{err}");
    // Each cause once, even where a library error quotes its source.
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn tampered_bundle_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_bundle(dir.path());
    let target = dir.path().join("decoder.nnef.tar");
    let mut bytes = std::fs::read(&target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&target, bytes).unwrap();
    let report = cxr(&[&"report", &sample(), &"--model", &dir.path()]);
    let info = cxr(&[&"info", &dir.path()]);
    for o in [report, info] {
        let err = failed(&o);
        assert!(
            err.contains("decoder.nnef.tar") && err.contains("sha256"),
            "{err}"
        );
    }
}

#[test]
fn bad_inputs_are_named_and_do_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.png");
    let bytes = std::fs::read(sample()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let missing = dir.path().join("missing.dcm");
    let o = cxr(&[
        &"report",
        &empty,
        &sample(),
        &truncated,
        &missing,
        &"--model",
        &tiny(),
    ]);
    let err = failed(&o);
    for name in ["empty.png", "truncated.png", "missing.dcm"] {
        assert!(err.contains(name), "{name} not named: {err}");
    }
    assert!(err.contains("3 of 4 inputs"), "{err}");
    // The good film was still reported.
    assert!(
        stdout(&o).contains("nih_00001638_000_normal.png"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn small_film_is_refused_unless_forced() {
    let film = root().join("tests/fixtures/nih/images/00000061_012.png");
    let err = failed(&cxr(&[&"report", &film, &"--model", &tiny()]));
    assert!(err.contains("00000061_012.png"), "{err}");
    let o = cxr(&[&"report", &film, &"--model", &tiny(), &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_options_are_refused() {
    let err = failed(&cxr(&[
        &"report",
        &sample(),
        &"--model",
        &tiny(),
        &"--beam",
        &"0",
    ]));
    assert!(err.contains("--beam"), "{err}");
    let o = cxr(&[&"report"]);
    assert!(!o.status.success());
}

#[test]
fn info_describes_a_verified_bundle() {
    let o = cxr(&[&"info", &tiny()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("model id"), "{out}");
    assert!(out.contains("verified"), "{out}");
    assert!(out.contains("bundle hash"), "{out}");
}

#[test]
fn compile_writes_nnef_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let nnef = dir.path().join("encoder.nnef.tar");
    let o = cxr(&[&"compile", &tiny().join("encoder.onnx"), &"-o", &nnef]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = cxr_edge::bundle::load_nnef(&nnef, &Default::default());
    assert!(plan.is_ok(), "{:?}", plan.err());
    let err = failed(&cxr(&[&"compile", &dir.path().join("none.onnx")]));
    assert!(err.contains("none.onnx"), "{err}");
}

#[test]
fn bench_reports_every_stage_at_each_thread_count() {
    let o = cxr(&[
        &"bench",
        &sample(),
        &"--model",
        &tiny(),
        &"--runs",
        &"1",
        &"--threads",
        &"1,2",
        &"--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, threads) in results.iter().zip([1, 2]) {
        assert_eq!(r["threads"], threads);
        let total = r["total_ms"].as_f64().unwrap();
        let parts: f64 = [
            "decode_image_ms",
            "preprocess_ms",
            "encoder_ms",
            "decoding_ms",
            "writing_ms",
        ]
        .iter()
        .map(|k| r[k].as_f64().unwrap())
        .sum();
        assert!(total > 0.0 && parts <= total * 1.01 + 0.01, "{r}");
        let share = r["outside_model_share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share), "{r}");
        assert!(r["peak_heap_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["decoder_steps"].as_u64().unwrap() >= 1, "{r}");
    }
}
