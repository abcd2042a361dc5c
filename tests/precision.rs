//! Reduced-precision artefacts: adding them to a bundle, what tract makes of
//! them, and whether a shipped bundle's per-CPU default is one its committed
//! figures (`precision-eval.json`, `scripts/precision-aarch64.sh`) support.

use std::path::Path;

use cxr_edge::bundle::{self, add_reduced, Bundle, Precision, Reduced};
use cxr_edge::export::quant::Scheme;
use cxr_edge::runtime::tract::{TractOptions, TractRuntime};
use cxr_edge::runtime::Runtime;
use serde_json::Value;

fn tiny_copy() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle/tiny");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

fn image(size: usize, seed: usize) -> Vec<f32> {
    (0..size * size)
        .map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 500.0) - 1.0)
        .collect()
}

fn runtime(b: &Bundle, precision: Precision) -> TractRuntime {
    let options = TractOptions {
        precision: Some(precision),
        ..TractOptions::default()
    };
    TractRuntime::load_with(b, &options).unwrap()
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Op names of the plan tract makes of an NNEF file on this CPU.
fn planned_ops(path: &Path) -> Vec<String> {
    let plan = bundle::load_nnef(path, &Default::default()).unwrap();
    plan.model()
        .nodes
        .iter()
        .map(|n| n.op.name().to_string())
        .collect()
}

#[test]
fn f16_artefact_is_added_for_fp16_cpus_and_tracks_fp32() {
    let dir = tiny_copy();
    let b = add_reduced(dir.path(), &Reduced::F16, &["aarch64+fp16".to_string()]).unwrap();
    let m = b.manifest();
    assert_eq!(m.artefacts[0].precision, Precision::F16);
    let pick = |features: &[&str]| m.artefact_for_cpu("aarch64", features).unwrap().precision;
    assert_eq!(pick(&["fp16", "dotprod"]), Precision::F16);
    assert_eq!(pick(&["dotprod"]), Precision::Int8);
    assert_eq!(
        m.artefact_for_cpu("x86_64", &["fp16"]).unwrap().precision,
        Precision::Fp32
    );
    let bytes = |name: &str| m.files[name].bytes;
    assert!(bytes("decoder.f16.nnef.tar") < bytes("decoder.nnef.tar"));

    let (fp32, f16) = (runtime(&b, Precision::Fp32), runtime(&b, Precision::F16));
    let x = image(m.model.input_size, 3);
    let (a, h) = (fp32.encode(&x).unwrap(), f16.encode(&x).unwrap());
    let d = max_rel_diff(&a.grid, &h.grid);
    assert!(d < 1e-2, "f16 grid differs by {d} of its range");
    let (sa, sh) = (
        fp32.step(1, &a.h0, &a).unwrap(),
        f16.step(1, &a.h0, &a).unwrap(),
    );
    let d = max_rel_diff(&sa.logits, &sh.logits);
    assert!(d < 1e-2, "f16 logits differ by {d} of their range");
    let report = b
        .parity()
        .unwrap()
        .check_precision(&f16, Precision::F16)
        .unwrap();
    assert!(report.tokens_match, "{report:?}");
    // Re-adding replaces, and the files stay verified.
    let again = add_reduced(dir.path(), &Reduced::F16, &[]).unwrap();
    let f16s: Vec<_> = again
        .manifest()
        .artefacts
        .iter()
        .filter(|a| a.precision == Precision::F16)
        .collect();
    assert_eq!(f16s.len(), 1);
    assert!(f16s[0].targets.is_empty());
    assert_eq!(again.manifest().artefacts.last().unwrap(), f16s[0]);
}

/// The i8 scheme is what lets tract fold the zero points and fuse the
/// requantisation into its matrix kernel; the u8 scheme is not.
#[test]
fn i8_scheme_requantises_inside_the_matrix_kernel() {
    let mut unfused = Vec::new();
    for scheme in [Scheme::U8PerChannel, Scheme::I8PerTensor] {
        let dir = tiny_copy();
        let images: Vec<Vec<f32>> = (0..6).map(|i| image(32, i)).collect();
        let b = add_reduced(dir.path(), &Reduced::Int8 { scheme, images }, &[]).unwrap();
        let ops = planned_ops(&b.path("encoder.int8.nnef.tar"));
        let separate = ops
            .iter()
            .filter(|o| {
                ["QSumB", "Scale", "OffsetU8asI8"]
                    .iter()
                    .any(|s| o.contains(s))
            })
            .count();
        unfused.push(separate);

        let (fp32, int8) = (runtime(&b, Precision::Fp32), runtime(&b, Precision::Int8));
        let x = image(32, 11);
        let (a, q) = (fp32.encode(&x).unwrap(), int8.encode(&x).unwrap());
        let d = max_rel_diff(&a.grid, &q.grid);
        assert!(d < 0.1, "{scheme:?}: int8 grid differs by {d} of its range");
        let report = b
            .parity()
            .unwrap()
            .check_precision(&int8, Precision::Int8)
            .unwrap();
        assert!(report.max_abs_diff <= 1e-4, "{scheme:?}: {report:?}");
    }
    assert!(unfused[0] > 0, "u8 scheme: no separate requantisation pass");
    assert_eq!(unfused[1], 0, "i8 scheme: separate requantisation passes");
}

#[test]
fn equalisation_keeps_the_encoder_function() {
    use cxr_edge::export::equalize::equalize;
    use prost::Message;
    let dir = tiny_copy();
    let onnx = std::fs::read(dir.path().join("encoder.onnx")).unwrap();
    let model = tract_onnx::pb::ModelProto::decode(onnx.as_slice()).unwrap();
    let eq = equalize(&model, 4);
    assert_ne!(eq, model, "nothing was equalised");
    let path = dir.path().join("eq.onnx");
    std::fs::write(&path, eq.encode_to_vec()).unwrap();
    let m = Bundle::open(dir.path()).unwrap().manifest().clone();
    let opts = TractOptions::default();
    let dec = dir.path().join("decoder.onnx");
    let a = TractRuntime::from_files(&m.model, &dir.path().join("encoder.onnx"), &dec, &opts);
    let b = TractRuntime::from_files(&m.model, &path, &dec, &opts);
    let x = image(32, 5);
    let (a, b) = (
        a.unwrap().encode(&x).unwrap(),
        b.unwrap().encode(&x).unwrap(),
    );
    assert!(max_rel_diff(&a.grid, &b.grid) < 1e-5);
    assert!(max_rel_diff(&a.findings, &b.findings) < 1e-5);
}

/// The reduced precision a CPU should run by the committed figures: the one
/// with the fewest instructions among those inside every bound, else fp32.
fn supported_default(cpu: &Value, bar: &Value) -> Precision {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no `{k}` in {v}"));
    cpu["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            f(c, "insns_ratio") <= f(bar, "max_insns_ratio")
                && f(c, "agreement") >= f(bar, "min_agreement")
                && f(c, "max_auroc_delta") <= f(bar, "max_auroc_delta")
        })
        .min_by(|a, b| f(a, "insns_ratio").total_cmp(&f(b, "insns_ratio")))
        .map_or(Precision::Fp32, |c| {
            c["precision"].as_str().unwrap().parse().unwrap()
        })
}

#[test]
fn shipped_per_cpu_defaults_are_what_the_committed_figures_support() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let test_films = std::fs::read_to_string(root.join("models/nih-split.csv"))
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(",test"))
        .count();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("models")).unwrap() {
        let dir = entry.unwrap().path();
        let eval = dir.join("precision-eval.json");
        if !eval.is_file() {
            continue;
        }
        let m = Bundle::open(&dir).unwrap().manifest().clone();
        let v: Value = serde_json::from_slice(&std::fs::read(&eval).unwrap()).unwrap();
        for cpu in v["cpus"].as_array().unwrap() {
            for c in cpu["candidates"].as_array().unwrap() {
                assert_eq!(c["images"].as_u64(), Some(test_films as u64), "{c}");
            }
            let features: Vec<&str> = cpu["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let arch = cpu["arch"].as_str().unwrap();
            let shipped = m.artefact_for_cpu(arch, &features).unwrap().precision;
            assert_eq!(
                shipped,
                supported_default(cpu, &v["bar"]),
                "{}: {}",
                dir.display(),
                cpu["cpu"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "no per-CPU figures under models/");
}
