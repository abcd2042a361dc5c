//! Checkpoint → ONNX → NNEF bundle → tract, against an independent plain-Rust
//! forward pass of the spec in `src/model_config.rs`, on random weights.

use std::collections::BTreeMap;
use std::path::Path;

use cxr_edge::bundle::{self, BuildOptions, Bundle, ObservationThreshold, Precision};
use cxr_edge::model_config::BN_EPS;
use cxr_edge::runtime::tract::{ModelSource, TractOptions, TractRuntime};
use cxr_edge::runtime::{EncoderOutput, Runtime};
use cxr_edge::text::Vocab;
use cxr_edge::{DecoderKind, ModelConfig, Observation};
use rand::{rngs::StdRng, Rng, SeedableRng};
use safetensors::{tensor::TensorView, Dtype};

type Params = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn tiny_config(decoder: DecoderKind) -> ModelConfig {
    ModelConfig {
        input_size: 16,
        channels: vec![4, 6],
        encoder: Default::default(),
        decoder,
        embed_dim: 5,
        hidden: 7,
        attn_dim: 3,
        vocab_size: 11,
        max_len: 6,
        findings_conditioned: false,
    }
}

/// Random parameters with the names and shapes of the spec.
fn random_params(c: &ModelConfig, seed: u64) -> Params {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = Params::new();
    let mut add = |name: &str, shape: &[usize], lo: f32, hi: f32| {
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        p.insert(name.to_string(), (shape.to_vec(), data));
    };
    let mut cin = 1;
    for (i, &ch) in c.channels.iter().enumerate() {
        for l in 0..2 {
            add(
                &format!("enc.s{i}.conv{l}.weight"),
                &[ch, cin, 3, 3],
                -0.6,
                0.6,
            );
            add(&format!("enc.s{i}.bn{l}.weight"), &[ch], 0.5, 1.5);
            add(&format!("enc.s{i}.bn{l}.bias"), &[ch], -0.3, 0.3);
            add(&format!("enc.s{i}.bn{l}.running_mean"), &[ch], -0.3, 0.3);
            add(&format!("enc.s{i}.bn{l}.running_var"), &[ch], 0.5, 1.5);
            cin = ch;
        }
    }
    let (ch, h, e, a, v) = (
        c.grid_channels(),
        c.hidden,
        c.embed_dim,
        c.attn_dim,
        c.vocab_size,
    );
    let mut linear = |name: &str, inp: usize, out: usize, bias: bool| {
        add(&format!("{name}.weight"), &[out, inp], -0.5, 0.5);
        if bias {
            add(&format!("{name}.bias"), &[out], -0.2, 0.2);
        }
    };
    linear("enc.head", ch, 10, true);
    linear(
        "dec.out",
        if c.decoder == DecoderKind::Attention {
            h + ch
        } else {
            h
        },
        v,
        true,
    );
    match c.decoder {
        DecoderKind::Attention => {
            linear("dec.init_h", ch, h, true);
            linear("dec.att_grid", ch, a, true);
            linear("dec.att_h", h, a, false);
            linear("dec.att_v", a, 1, false);
            linear("dec.gru_ih", e + ch, 3 * h, true);
            linear("dec.gru_hh", h, 3 * h, true);
        }
        DecoderKind::Merge => {
            linear("dec.img", ch, h, true);
            linear("dec.lstm_ih", e, 4 * h, true);
            linear("dec.lstm_hh", h, 4 * h, true);
        }
    }
    add("dec.emb.weight", &[v, e], -1.0, 1.0);
    p
}

fn write_checkpoint(dir: &Path, c: &ModelConfig, p: &Params) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = p
        .iter()
        .map(|(k, (s, d))| {
            (
                k.clone(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_vec(c).unwrap()).unwrap();
}

// ---------- the reference forward pass, straight from the spec ----------

fn w<'a>(p: &'a Params, name: &str) -> &'a [f32] {
    &p[name].1
}

/// PyTorch Linear: `y = W x + b`, `W` is `[out, in]`.
fn lin(p: &Params, name: &str, x: &[f32], bias: bool) -> Vec<f32> {
    let wt = w(p, &format!("{name}.weight"));
    let out = wt.len() / x.len();
    (0..out)
        .map(|o| {
            let mut acc: f64 = if bias {
                w(p, &format!("{name}.bias"))[o] as f64
            } else {
                0.0
            };
            for (i, xi) in x.iter().enumerate() {
                acc += wt[o * x.len() + i] as f64 * *xi as f64;
            }
            acc as f32
        })
        .collect()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// 3×3 convolution (pad 1, no bias) then eval BatchNorm then ReLU; `x` is `[cin, s, s]`.
fn conv_bn_relu(
    p: &Params,
    conv: &str,
    bn: &str,
    x: &[f32],
    cin: usize,
    s: usize,
    stride: usize,
) -> (Vec<f32>, usize) {
    let wt = w(p, &format!("{conv}.weight"));
    let cout = wt.len() / (cin * 9);
    let so = (s - 1) / stride + 1;
    let mut y = vec![0f32; cout * so * so];
    for o in 0..cout {
        let g = w(p, &format!("{bn}.weight"))[o] as f64;
        let b = w(p, &format!("{bn}.bias"))[o] as f64;
        let m = w(p, &format!("{bn}.running_mean"))[o] as f64;
        let var = w(p, &format!("{bn}.running_var"))[o] as f64;
        for oy in 0..so {
            for ox in 0..so {
                let mut acc = 0f64;
                for ci in 0..cin {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let iy = (oy * stride + ky) as isize - 1;
                            let ix = (ox * stride + kx) as isize - 1;
                            if iy < 0 || ix < 0 || iy >= s as isize || ix >= s as isize {
                                continue;
                            }
                            acc += wt[((o * cin + ci) * 3 + ky) * 3 + kx] as f64
                                * x[(ci * s + iy as usize) * s + ix as usize] as f64;
                        }
                    }
                }
                let bn = (acc - m) / (var + BN_EPS).sqrt() * g + b;
                y[(o * so + oy) * so + ox] = bn.max(0.0) as f32;
            }
        }
    }
    (y, so)
}

fn ref_encode(c: &ModelConfig, p: &Params, image: &[f32]) -> EncoderOutput {
    let (mut x, mut s, mut cin) = (image.to_vec(), c.input_size, 1);
    for (i, &ch) in c.channels.iter().enumerate() {
        (x, s) = conv_bn_relu(
            p,
            &format!("enc.s{i}.conv0"),
            &format!("enc.s{i}.bn0"),
            &x,
            cin,
            s,
            2,
        );
        (x, s) = conv_bn_relu(
            p,
            &format!("enc.s{i}.conv1"),
            &format!("enc.s{i}.bn1"),
            &x,
            ch,
            s,
            1,
        );
        cin = ch;
    }
    let n = s * s;
    let grid: Vec<f32> = (0..n)
        .flat_map(|j| (0..cin).map(move |k| (k, j)))
        .map(|(k, j)| x[k * n + j])
        .collect();
    let pooled: Vec<f32> = (0..cin)
        .map(|k| x[k * n..(k + 1) * n].iter().sum::<f32>() / n as f32)
        .collect();
    let findings = lin(p, "enc.head", &pooled, true);
    let (grid_proj, h0) = match c.decoder {
        DecoderKind::Attention => (
            grid.chunks(cin)
                .flat_map(|g| lin(p, "dec.att_grid", g, true))
                .collect(),
            lin(p, "dec.init_h", &pooled, true)
                .into_iter()
                .map(f32::tanh)
                .collect(),
        ),
        DecoderKind::Merge => (lin(p, "dec.img", &pooled, true), vec![0.0; 2 * c.hidden]),
    };
    EncoderOutput {
        grid,
        grid_proj,
        pooled,
        findings,
        h0,
    }
}

/// Returns (logits, new state, attention).
fn ref_step(
    c: &ModelConfig,
    p: &Params,
    token: u32,
    state: &[f32],
    enc: &EncoderOutput,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (e, h, n, ch) = (c.embed_dim, c.hidden, c.grid_cells(), c.grid_channels());
    let emb = &w(p, "dec.emb.weight")[token as usize * e..(token as usize + 1) * e];
    match c.decoder {
        DecoderKind::Attention => {
            let hp = lin(p, "dec.att_h", state, false);
            let score: Vec<f32> = (0..n)
                .map(|j| {
                    let a = c.attn_dim;
                    let t: Vec<f32> = (0..a)
                        .map(|k| (enc.grid_proj[j * a + k] + hp[k]).tanh())
                        .collect();
                    lin(p, "dec.att_v", &t, false)[0]
                })
                .collect();
            let mx = score.iter().cloned().fold(f32::MIN, f32::max);
            let ex: Vec<f32> = score.iter().map(|s| (s - mx).exp()).collect();
            let sum: f32 = ex.iter().sum();
            let alpha: Vec<f32> = ex.iter().map(|v| v / sum).collect();
            let ctx: Vec<f32> = (0..ch)
                .map(|k| (0..n).map(|j| alpha[j] * enc.grid[j * ch + k]).sum())
                .collect();
            let x: Vec<f32> = emb.iter().chain(&ctx).cloned().collect();
            let gi = lin(p, "dec.gru_ih", &x, true);
            let gh = lin(p, "dec.gru_hh", state, true);
            let hn: Vec<f32> = (0..h)
                .map(|k| {
                    let r = sigmoid(gi[k] + gh[k]);
                    let z = sigmoid(gi[h + k] + gh[h + k]);
                    let nn = (gi[2 * h + k] + r * gh[2 * h + k]).tanh();
                    (1.0 - z) * nn + z * state[k]
                })
                .collect();
            let o: Vec<f32> = hn.iter().chain(&ctx).cloned().collect();
            (lin(p, "dec.out", &o, true), hn, alpha)
        }
        DecoderKind::Merge => {
            let (hp, cp) = state.split_at(h);
            let gi = lin(p, "dec.lstm_ih", emb, true);
            let gh = lin(p, "dec.lstm_hh", hp, true);
            let gate = |k: usize| gi[k] + gh[k];
            let cn: Vec<f32> = (0..h)
                .map(|k| sigmoid(gate(h + k)) * cp[k] + sigmoid(gate(k)) * gate(2 * h + k).tanh())
                .collect();
            let hn: Vec<f32> = (0..h)
                .map(|k| sigmoid(gate(3 * h + k)) * cn[k].tanh())
                .collect();
            let merged: Vec<f32> = (0..h)
                .map(|k| (enc.grid_proj[k] + hn[k]).max(0.0))
                .collect();
            let state = hn.iter().chain(&cn).cloned().collect();
            (lin(p, "dec.out", &merged, true), state, vec![0.0; n])
        }
    }
}

// ---------- helpers ----------

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn build_bundle(c: &ModelConfig, seed: u64, out: &Path) -> (Params, Bundle) {
    build_bundle_with(c, seed, out, Vec::new())
}

fn build_bundle_with(
    c: &ModelConfig,
    seed: u64,
    out: &Path,
    calibration_images: Vec<Vec<f32>>,
) -> (Params, Bundle) {
    let tmp = tempfile::tempdir().unwrap();
    let params = random_params(c, seed);
    write_checkpoint(tmp.path(), c, &params);
    let vocab = tmp.path().join("vocab.json");
    Vocab::build(["the heart is normal", "lungs are clear"], 1)
        .save(&vocab)
        .unwrap();
    let mut options = BuildOptions::new("tiny-test", Vocab::BOS, Vocab::EOS);
    options.preprocess.size = c.input_size;
    options.thresholds = Observation::ALL
        .iter()
        .map(|&observation| ObservationThreshold {
            observation,
            threshold: 0.5,
            calibration: None,
            definite: None,
        })
        .collect();
    options.provenance = serde_json::json!({"data": "random weights, seed", "seed": seed});
    options.int8_targets = if calibration_images.is_empty() {
        Vec::new()
    } else {
        vec!["aarch64".into()]
    };
    options.calibration_images = calibration_images;
    let bundle = bundle::build(tmp.path(), &vocab, &options, out).unwrap();
    (params, bundle)
}

fn random_image(size: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..size * size).map(|_| rng.gen_range(-2.0..2.0)).collect()
}

fn check_against_reference(kind: DecoderKind) {
    let c = tiny_config(kind);
    let dir = tempfile::tempdir().unwrap();
    let (params, bundle) = build_bundle(&c, 7, dir.path());
    let nnef = TractRuntime::load(&bundle).unwrap();
    let onnx = TractRuntime::load_with(
        &bundle,
        &TractOptions {
            threads: 1,
            source: ModelSource::Onnx,
            precision: None,
        },
    )
    .unwrap();
    let image = random_image(c.input_size, 11);

    let expected = ref_encode(&c, &params, &image);
    let got = nnef.encode(&image).unwrap();
    assert_eq!(
        got,
        onnx.encode(&image).unwrap(),
        "NNEF and ONNX encoders differ"
    );
    for (name, a, b) in [
        ("grid", &got.grid, &expected.grid),
        ("grid_proj", &got.grid_proj, &expected.grid_proj),
        ("pooled", &got.pooled, &expected.pooled),
        ("findings", &got.findings, &expected.findings),
        ("h0", &got.h0, &expected.h0),
    ] {
        let d = max_diff(a, b);
        assert!(d <= 1e-4, "{kind:?} encoder {name}: max |Δ| {d}");
    }
    assert!(
        expected.pooled.iter().any(|&v| v > 0.0),
        "degenerate encoder output"
    );

    let (mut state, mut ref_state) = (got.h0.clone(), expected.h0.clone());
    let mut token = 1;
    for step in 0..c.max_len {
        let out = nnef.step(token, &state, &got).unwrap();
        assert_eq!(
            out,
            onnx.step(token, &state, &got).unwrap(),
            "NNEF and ONNX decoders differ"
        );
        let (logits, new_state, attn) = ref_step(&c, &params, token, &ref_state, &expected);
        for (name, a, b) in [
            ("logits", &out.logits, &logits),
            ("state", &out.state, &new_state),
            ("attn", &out.attn, &attn),
        ] {
            let d = max_diff(a, b);
            assert!(d <= 1e-4, "{kind:?} step {step} {name}: max |Δ| {d}");
        }
        state = out.state;
        ref_state = new_state;
        token = bundle::argmax(&logits);
    }
}

#[test]
fn attention_model_matches_the_reference_forward_pass() {
    check_against_reference(DecoderKind::Attention);
}

#[test]
fn merge_model_matches_the_reference_forward_pass() {
    check_against_reference(DecoderKind::Merge);
}

#[test]
fn tampered_file_and_wrong_schema_are_refused() {
    let c = tiny_config(DecoderKind::Attention);
    let dir = tempfile::tempdir().unwrap();
    build_bundle(&c, 3, dir.path());

    let tar = dir.path().join("decoder.nnef.tar");
    let mut bytes = std::fs::read(&tar).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&tar, &bytes).unwrap();
    let err = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("decoder.nnef.tar") && err.contains("sha256"),
        "{err}"
    );
    // The device's path (files checked while the model loads) refuses the
    // same, a tar it parses and a file it does not.
    let open = |dir: &Path| match TractRuntime::open_bundle(dir, &TractOptions::default()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    let err = open(dir.path());
    assert!(
        err.contains("decoder.nnef.tar") && err.contains("sha256"),
        "{err}"
    );
    bytes[mid] ^= 1;
    std::fs::write(&tar, &bytes).unwrap();
    assert_eq!(open(dir.path()), "", "restored");
    let parity = dir.path().join("parity.json");
    let mut text = std::fs::read(&parity).unwrap();
    text.push(b' ');
    std::fs::write(&parity, &text).unwrap();
    let err = open(dir.path());
    assert!(err.contains("parity.json") && err.contains("size"), "{err}");

    let manifest = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1),
    )
    .unwrap();
    let err = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("schema version 99"),
        "{err}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let c = tiny_config(DecoderKind::Attention);
    let tmp = tempfile::tempdir().unwrap();
    let mut params = random_params(&c, 1);
    params.remove("dec.att_v.weight");
    write_checkpoint(tmp.path(), &c, &params);
    let err = cxr_edge::export::export_checkpoint(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dec.att_v.weight") && err.contains("model.safetensors"),
        "{err}"
    );
}

/// The committed bundle (rebuilt only on purpose with `UPDATE_GOLDEN=1`) is
/// reproduced by tract on this machine.
#[test]
fn committed_bundle_reproduces_its_parity_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle/tiny");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let c = ModelConfig {
            input_size: 32,
            channels: vec![8, 16],
            encoder: Default::default(),
            decoder: DecoderKind::Attention,
            embed_dim: 8,
            hidden: 16,
            attn_dim: 8,
            vocab_size: 11,
            max_len: 8,
            findings_conditioned: false,
        };
        let _ = std::fs::remove_dir_all(&dir);
        let calibration = (0..4).map(|i| random_image(c.input_size, 60 + i)).collect();
        build_bundle_with(&c, 2026, &dir, calibration);
    }
    let bundle = Bundle::open(&dir).unwrap();
    // The artefact this CPU runs (int8 on aarch64), then each precision explicitly.
    let runtime = TractRuntime::load(&bundle).unwrap();
    let parity = bundle.parity().unwrap();
    let report = parity
        .check_precision(&runtime, runtime.precision())
        .unwrap();
    assert!(report.max_abs_diff <= 1e-4, "{report:?}");
    assert!(report.tokens_match, "{report:?}");
    for precision in [Precision::Fp32, Precision::Int8] {
        let options = TractOptions {
            precision: Some(precision),
            ..TractOptions::default()
        };
        let rt = TractRuntime::load_with(&bundle, &options).unwrap();
        assert_eq!(rt.precision(), precision);
        let report = parity.check_precision(&rt, precision).unwrap();
        assert!(report.max_abs_diff <= 1e-4, "{precision}: {report:?}");
        assert!(report.tokens_match, "{precision}: {report:?}");
    }
    assert!(bundle.describe().contains("tiny-test"));

    // The comparison does see a difference.
    let mut parity = bundle.parity().unwrap();
    parity.steps[1].logits[3] += 0.01;
    let report = parity
        .check_precision(&runtime, runtime.precision())
        .unwrap();
    assert!(report.max_abs_diff > 0.009, "{report:?}");
    assert_eq!(report.worst, "step 1 logits");
}

/// Every shipped bundle gives, on this CPU and with the artefact this CPU runs
/// (int8 on aarch64 where the bundle has it), the outputs recorded at build time.
#[test]
fn shipped_bundles_reproduce_their_parity_files() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut checked = 0;
    for entry in std::fs::read_dir(&models).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join(bundle::MANIFEST).is_file() {
            continue;
        }
        let b = Bundle::open(&dir).unwrap();
        let rt = TractRuntime::load(&b).unwrap();
        let report = b
            .parity()
            .unwrap()
            .check_precision(&rt, rt.precision())
            .unwrap();
        println!("{} ({}): {report:?}", dir.display(), rt.precision());
        assert!(report.max_abs_diff <= 1e-4, "{}: {report:?}", dir.display());
        assert!(report.tokens_match, "{}: {report:?}", dir.display());
        checked += 1;
    }
    assert!(checked > 0, "no bundle under {}", models.display());
}

#[test]
fn vocabulary_of_the_wrong_size_is_refused() {
    let c = tiny_config(DecoderKind::Attention);
    let tmp = tempfile::tempdir().unwrap();
    write_checkpoint(tmp.path(), &c, &random_params(&c, 5));
    let vocab = tmp.path().join("vocab.json");
    Vocab::build(["too few words"], 1).save(&vocab).unwrap();
    let mut options = BuildOptions::new("x", Vocab::BOS, Vocab::EOS);
    options.preprocess.size = c.input_size;
    let err = bundle::build(tmp.path(), &vocab, &options, &tmp.path().join("out"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vocab.json") && err.contains("7 tokens"),
        "{err}"
    );
}

#[test]
fn tract_runtime_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TractRuntime>();
}

#[test]
fn recompiling_the_committed_bundle_reproduces_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle/tiny");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    std::fs::write(tmp.path().join("encoder.nnef.tar"), b"stale").unwrap();
    let manifest = tmp.path().join("manifest.json");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let stale = original.replacen("\"bytes\": 35328", "\"bytes\": 5", 1);
    let hash = Bundle::open(&src).unwrap().manifest().files["encoder.nnef.tar"]
        .sha256
        .clone();
    std::fs::write(
        &manifest,
        stale.replacen(&hash, &cxr_edge::bundle::sha256_hex(b"stale"), 1),
    )
    .unwrap();

    let bundle = bundle::recompile(tmp.path()).unwrap();
    assert_eq!(bundle.manifest(), Bundle::open(&src).unwrap().manifest());
}

/// Load and latency figures for the default architecture (random weights).
/// Run with `cargo test --release --test tests bundle::figures -- --ignored --nocapture`.
#[test]
#[ignore]
fn figures() {
    use std::time::Instant;
    let c = ModelConfig {
        vocab_size: 11,
        ..ModelConfig::default()
    };
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let images = (0..4).map(|i| random_image(c.input_size, 20 + i)).collect();
    let (_, bundle) = build_bundle_with(&c, 1, dir.path(), images);
    let m = bundle.manifest();
    let size = |f: &str| m.files[f].bytes as f64 / 1e6;
    println!(
        "sizes MB: encoder onnx {:.2} nnef {:.2}; decoder onnx {:.2} nnef {:.2}",
        size("encoder.onnx"),
        size("encoder.nnef.tar"),
        size("decoder.onnx"),
        size("decoder.nnef.tar")
    );
    for source in [ModelSource::Onnx, ModelSource::Nnef] {
        let t = Instant::now();
        let rt = TractRuntime::load_with(
            &bundle,
            &TractOptions {
                threads,
                source,
                precision: None,
            },
        )
        .unwrap();
        let load = t.elapsed();
        let image = random_image(c.input_size, 3);
        let enc = rt.encode(&image).unwrap();
        let t = Instant::now();
        for _ in 0..10 {
            rt.encode(&image).unwrap();
        }
        let encode = t.elapsed() / 10;
        let mut state = enc.h0.clone();
        let t = Instant::now();
        for i in 0..100 {
            state = rt.step(i % 11, &state, &enc).unwrap().state;
        }
        let step = t.elapsed() / 100;
        println!("{source:?} ({threads} threads): load {load:?}, encoder {encode:?}, decoder step {step:?}");
    }
    let int8 = bundle.path("encoder.int8.nnef.tar");
    let opts = TractOptions {
        threads,
        source: ModelSource::Nnef,
        precision: None,
    };
    let q = TractRuntime::from_files(&c, &int8, &bundle.path("decoder.nnef.tar"), &opts).unwrap();
    let image = random_image(c.input_size, 3);
    q.encode(&image).unwrap();
    let t = Instant::now();
    q.encode(&image).unwrap();
    println!(
        "int8 encoder ({threads} threads): {:?}, {:.2} MB",
        t.elapsed(),
        size("encoder.int8.nnef.tar")
    );
}

/// The int8 encoder (tract's quantized conv, stored in NNEF) stays close to fp32.
#[test]
fn int8_encoder_tracks_fp32() {
    use cxr_edge::export::{self, quant, Weights};
    let mut c = tiny_config(DecoderKind::Attention);
    c.input_size = 32;
    c.channels = vec![8, 12];
    let tmp = tempfile::tempdir().unwrap();
    let params = random_params(&c, 9);
    write_checkpoint(tmp.path(), &c, &params);
    let weights = Weights::load(&tmp.path().join("model.safetensors")).unwrap();
    let exported = export::export(&c, &weights).unwrap();
    let images: Vec<Vec<f32>> = (0..8)
        .map(|i| random_image(c.input_size, 100 + i))
        .collect();
    let cal = quant::calibrate(&exported.encoder, c.input_size, &images).unwrap();
    assert_eq!(cal.relu_max.len(), 4);
    let int8 = quant::quantize_encoder(&exported.encoder, &cal).unwrap();
    let (enc, dec) = exported.write(tmp.path()).unwrap();
    let q_onnx = tmp.path().join("encoder.int8.onnx");
    std::fs::write(&q_onnx, prost::Message::encode_to_vec(&int8)).unwrap();
    let q_nnef = tmp.path().join("encoder.int8.nnef.tar");
    bundle::compile(&q_onnx, &q_nnef).unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(&q_nnef).unwrap());
    let mut graph = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("graph.nnef") {
            std::io::Read::read_to_string(&mut entry, &mut graph).unwrap();
        }
    }
    assert!(
        graph.contains("tract_core_qconv"),
        "no quantized conv in NNEF:\n{graph}"
    );

    let opts = TractOptions::default();
    let fp32 = TractRuntime::from_files(&c, &enc, &dec, &opts).unwrap();
    let q = TractRuntime::from_files(&c, &q_nnef, &dec, &opts).unwrap();
    let image = random_image(c.input_size, 7);
    let (a, b) = (fp32.encode(&image).unwrap(), q.encode(&image).unwrap());
    for (name, x, y) in [
        ("grid", &a.grid, &b.grid),
        ("findings", &a.findings, &b.findings),
        ("h0", &a.h0, &b.h0),
    ] {
        let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_diff(x, y);
        println!("int8 vs fp32 {name}: max |Δ| {d} (max |x| {scale})");
        assert!(d <= 0.05 * scale, "{name}: max |Δ| {d}, max |x| {scale}");
    }
}

#[test]
fn calibrated_bundle_runs_int8_on_aarch64_and_fp32_on_x86() {
    let c = tiny_config(DecoderKind::Attention);
    let dir = tempfile::tempdir().unwrap();
    let images = (0..4).map(|i| random_image(c.input_size, 50 + i)).collect();
    let (_, b) = build_bundle_with(&c, 4, dir.path(), images);
    let m = b.manifest();
    assert_eq!(
        m.artefact_for("aarch64").unwrap().precision,
        Precision::Int8
    );
    assert_eq!(m.artefact_for("x86_64").unwrap().precision, Precision::Fp32);
    let rt = TractRuntime::load(&b).unwrap();
    let report = b
        .parity()
        .unwrap()
        .check_precision(&rt, rt.precision())
        .unwrap();
    assert!(report.max_abs_diff <= 1e-4, "{report:?}");
    // An int8 runtime is not held to the fp32 encoder outputs.
    let int8 = TractRuntime::load_with(
        &b,
        &TractOptions {
            precision: Some(Precision::Int8),
            ..TractOptions::default()
        },
    )
    .unwrap();
    let parity = b.parity().unwrap();
    assert!(parity.check(&int8).unwrap().max_abs_diff > 1e-4);
    let mut no_int8 = parity.clone();
    no_int8.int8 = None;
    let e = no_int8
        .check_precision(&int8, Precision::Int8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no int8"), "{e}");
    let before = m.clone();
    let again = bundle::recompile(dir.path()).unwrap();
    assert_eq!(again.manifest(), &before);
}
