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
fn a_manifest_declaring_a_huge_input_size_is_refused_before_anything_allocates() {
    let dir = tempfile::tempdir().unwrap();
    copy_bundle(dir.path());
    let path = dir.path().join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["model"]["input_size"] = 1_000_000.into();
    m["preprocess"]["size"] = 1_000_000.into();
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = failed(&cxr(&[&"report", &sample(), &"--model", &dir.path()]));
    assert!(
        err.contains("manifest.json") && err.contains("input size 1000000 is outside"),
        "{err}"
    );
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
    // The profile named is the one cargo built the binary with: its folder.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_cxr-edge"));
    let profile = bin.parent().unwrap().file_name().unwrap().to_str().unwrap();
    assert_eq!(doc["build_profile"], profile);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, threads) in results.iter().zip([1, 2]) {
        assert_eq!(r["threads"], threads);
        // One study: each figure's median is that study's value.
        let ms = |k: &str| {
            assert_eq!(r[k]["n"], 1, "{k}: {r}");
            r[k]["median"].as_f64().unwrap()
        };
        let total = ms("total_ms");
        let parts: f64 = [
            "attempt_ms",
            "decode_image_ms",
            "preprocess_ms",
            "encoder_ms",
            "decoding_ms",
            "render_ms",
            "writing_ms",
        ]
        .iter()
        .map(|k| ms(k))
        .sum();
        assert!(total > 0.0 && parts <= total * 1.01 + 0.01, "{r}");
        assert!(ms("writing_ms") > 0.0 && ms("attempt_ms") > 0.0, "{r}");
        let share = ms("outside_model_share");
        assert!((0.0..=1.0).contains(&share), "{r}");
        // Counted only where the allocator is built in (the x86 test run);
        // the board's binary has none.
        if cfg!(feature = "heap-stats") {
            assert!(r["peak_heap_bytes"].as_u64().unwrap() > 0, "{r}");
        } else {
            assert!(r["peak_heap_bytes"].is_null(), "{r}");
        }
        assert!(r["decoder_steps"].as_u64().unwrap() >= 1, "{r}");
    }
}

fn nih() -> PathBuf {
    crate::util::fixture("nih")
}

#[test]
fn precision_compares_int8_with_fp32_on_labelled_images() {
    let o = precision_with(&tiny(), &[&"--force", &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let labels = cxr_edge::nih::read_labels(&nih()).unwrap();
    assert_eq!(doc["images"], labels.len());
    assert!(doc["skipped"].as_array().unwrap().is_empty(), "{doc}");
    let identical = doc["identical_impressions"].as_u64().unwrap() as f64;
    assert_eq!(
        doc["agreement"].as_f64().unwrap(),
        identical / labels.len() as f64
    );

    // fp32 AUROC equals what `report` scores give for the same images.
    let model = tiny();
    let paths: Vec<PathBuf> = labels.iter().map(|l| l.path.clone()).collect();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"report",
        &"--json",
        &"--force",
        &"--model",
        &model,
        &"--precision",
        &"fp32",
    ];
    for p in &paths {
        args.push(p);
    }
    let o = cxr(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let reports: Vec<Report> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), labels.len());
    let rows = doc["auroc"].as_array().unwrap();
    assert_eq!(rows.len(), cxr_edge::Observation::FINDINGS.len());
    for (row, o) in rows.iter().zip(cxr_edge::Observation::FINDINGS) {
        let truth: Vec<bool> = labels.iter().map(|l| l.labels[o.index()]).collect();
        let scores: Vec<f32> = reports
            .iter()
            .map(|r| {
                r.findings
                    .iter()
                    .find(|f| f.observation == o)
                    .unwrap()
                    .score
            })
            .collect();
        assert_eq!(row["positives"], truth.iter().filter(|&&t| t).count());
        let expected = cxr_edge::metrics::auroc(&scores, &truth);
        assert_eq!(row["fp32"].as_f64(), expected, "{o:?}: {row}");
    }
}

/// `cxr-edge precision --model MODEL --labels <NIH fixture> EXTRA…`.
fn precision_with(
    model: &dyn AsRef<std::ffi::OsStr>,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> Output {
    let nih = nih();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"precision", &"--model", model, &"--labels", &nih];
    args.extend_from_slice(extra);
    cxr(&args)
}

#[test]
fn precision_selects_ids_and_checks_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "# three\n00001280_004\n00000211_013\n00000061_015\n").unwrap();
    let o = precision_with(&tiny(), &[&"--force", &"--ids", &ids, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["images"], 3);

    // Without --force the 64-pixel fixture films are refused, each named.
    let o = precision_with(&tiny(), &[&"--ids", &ids]);
    let err = failed(&o);
    assert!(
        err.contains("00000211_013.png") && err.contains("smaller than"),
        "{err}"
    );
    assert!(err.contains("none of the 3 images could be read"), "{err}");

    // A bound no run can meet fails the check, saying which.
    let err = failed(&precision_with(
        &tiny(),
        &[
            &"--force",
            &"--ids",
            &ids,
            &"--check",
            &"--min-agreement",
            &"1.01",
        ],
    ));
    assert!(
        err.contains("agree on") && err.contains("below 101.0 %"),
        "{err}"
    );

    std::fs::write(&ids, "00001280_004\nnot_an_image\n").unwrap();
    let err = failed(&precision_with(&tiny(), &[&"--force", &"--ids", &ids]));
    assert!(
        err.contains("ids.txt") && err.contains("not_an_image"),
        "{err}"
    );

    // A bundle without an int8 artefact is named as such.
    let fp32_only = dir.path().join("fp32");
    copy_bundle(&fp32_only);
    let manifest = fp32_only.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["artefacts"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["precision"] == "fp32");
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let err = failed(&precision_with(&fp32_only, &[&"--force"]));
    assert!(err.contains("no int8 artefact"), "{err}");

    // fp32 against itself is no comparison.
    let err = failed(&precision_with(&tiny(), &[&"--precision", &"fp32"]));
    assert!(err.contains("--precision fp32"), "{err}");
}

#[test]
fn info_check_runs_the_parity_file_on_this_cpu() {
    let o = cxr(&[&"info", &tiny(), &"--check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let default = if cfg!(target_arch = "aarch64") {
        "int8"
    } else {
        "fp32"
    };
    assert!(
        out.contains(&format!("{default} artefact (default here)")),
        "{out}"
    );
    for p in ["fp32", "int8"] {
        let line = out.lines().find(|l| l.contains(&format!("{p} artefact")));
        assert!(line.is_some_and(|l| l.ends_with(": ok")), "{p}: {out}");
    }

    // Altered expectations (with a consistent hash) fail the check.
    let dir = tempfile::tempdir().unwrap();
    copy_bundle(dir.path());
    let parity_path = dir.path().join("parity.json");
    let mut p: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&parity_path).unwrap()).unwrap();
    let x = p["steps"][0]["logits"][0].as_f64().unwrap();
    p["steps"][0]["logits"][0] = serde_json::json!(x + 0.5);
    let bytes = serde_json::to_vec(&p).unwrap();
    std::fs::write(&parity_path, &bytes).unwrap();
    let manifest = dir.path().join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["files"]["parity.json"] = serde_json::json!({
        "sha256": cxr_edge::bundle::sha256_hex(&bytes),
        "bytes": bytes.len(),
    });
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let err = failed(&cxr(&[&"info", &dir.path(), &"--check"]));
    assert!(err.contains("differ from the parity file"), "{err}");
    assert!(stdout(&cxr(&[&"info", &dir.path(), &"--check"])).contains("step 0 logits"));
}

#[test]
fn bench_model_sets_artefacts_and_runtimes_side_by_side() {
    let cold_starts: u64 = if std::env::var_os("CXR_TEST_RUNNER").is_some() {
        1
    } else {
        2
    };
    let cold_starts = cold_starts.to_string();
    let o = cxr(&[
        &"bench-model",
        &"--model",
        &tiny(),
        &"--runs",
        &"2",
        &"--steps",
        &"3",
        &"--studies",
        &"2",
        &"--rounds",
        &"2",
        &"--loads",
        &"1",
        // This process and one fresh one (qemu-user cannot start a second
        // foreign binary: this process alone there).
        &"--cold-starts",
        &cold_starts,
        &"--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let sizes = &doc["sizes"];
    let (fp32, int8) = (
        sizes["fp32_bytes"].as_u64().unwrap(),
        sizes["int8_bytes"].as_u64().unwrap(),
    );
    let file = |n: &str| std::fs::metadata(tiny().join(n)).unwrap().len();
    assert_eq!(fp32, file("encoder.nnef.tar") + file("decoder.nnef.tar"));
    assert_eq!(
        int8,
        file("encoder.int8.nnef.tar") + file("decoder.nnef.tar")
    );
    // Every timed figure is a median with its spread over all its runs.
    let spread = |v: &serde_json::Value, n: u64| {
        assert_eq!(v["n"], n, "{v}");
        let (p25, median, p75) = (
            v["p25"].as_f64().unwrap(),
            v["median"].as_f64().unwrap(),
            v["p75"].as_f64().unwrap(),
        );
        assert!(0.0 < p25 && p25 <= median && median <= p75, "{v}");
    };
    let cold = &doc["load"]["cold_start"];
    for key in [
        "total_ms",
        "files_and_model_ms",
        "encoder_ms",
        "decoder_ms",
        "other_files_ms",
        "rest_ms",
    ] {
        spread(&cold[key], cold_starts.parse().unwrap());
    }
    // The whole open covers its files-and-model part in every process.
    assert!(
        cold["total_ms"]["min"].as_f64().unwrap()
            >= cold["files_and_model_ms"]["min"].as_f64().unwrap(),
        "{cold}"
    );
    for key in [
        "reopen_ms",
        "onnx_encoder_ms",
        "onnx_decoder_ms",
        "nnef_encoder_ms",
        "nnef_decoder_ms",
        "nnef_int8_encoder_ms",
    ] {
        spread(&doc["load"][key], 1);
    }
    let l = &doc["latency"][0];
    assert_eq!(l["threads"], 1);
    assert!(l["study_steps"].as_u64().unwrap() >= 1, "{l}");
    // Two rounds of 2 encoder runs, 3 decoder steps and 2 studies.
    for route in ["tract_fp32", "tract_onnx"] {
        spread(&l[route]["encoder_ms"], 4);
        spread(&l[route]["step_ms"], 6);
        spread(&l[route]["study_ms"], 4);
    }
    spread(&l["tract_int8_encoder_ms"], 4);
    assert!(
        l["ratios"]["nnef_over_onnx_study"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // onnxruntime (its Python package, installed by scripts/test.sh) on the same
    // CPU, the same studies; under qemu-user the interpreter is the host's, which
    // is refused.
    if cfg!(target_arch = "x86_64") {
        let ort = &l["onnxruntime"];
        spread(&ort["encoder_ms"], 4);
        spread(&ort["step_ms"], 6);
        spread(&ort["study_ms"], 4);
        spread(&ort["encoder_int8_ms"], 4);
        assert!(
            l["ratios"]["study"]["median"].as_f64().unwrap() > 0.0,
            "{l}"
        );
        assert_eq!(l["ratios"]["study_per_round"].as_array().unwrap().len(), 2);
    } else {
        let e = l["onnxruntime_error"].as_str().unwrap_or_default();
        assert!(
            e.contains("not comparable") || e.contains("not installed"),
            "{l}"
        );
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    // `cxr-edge info | head -0`: the pipe is closed before anything is written.
    use std::os::unix::process::ExitStatusExt;
    let mut child = crate::util::own_binary(env!("CARGO_BIN_EXE_cxr-edge"))
        .args([std::ffi::OsStr::new("info"), tiny().as_os_str()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // Ended by SIGPIPE, as `cat` or `grep` would be.
    assert_eq!(out.status.signal(), Some(13), "{:?}: {err}", out.status);
}
