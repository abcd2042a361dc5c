//! The MobileNetV2 weights read from TFLite, checked against the TFLite runtime
//! (LiteRT, `scripts/litert-oracle.py`) on photographs, and the grey stem.

use std::path::{Path, PathBuf};

use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::mobilenet::{from_tflite, imagenet_logits, load_into, MobileNetV2};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tflite_path() -> PathBuf {
    root().join("models/pretrained/mobilenet-v2-imagenet/mobilenet_v2_1.0_224_quant.tflite")
}

/// The check photographs as 224 × 224 RGB bytes, in file-name order.
fn photographs() -> (Vec<String>, Vec<u8>) {
    let dir = root().join("tests/fixtures/imagenet");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let mut bytes = Vec::new();
    for f in &files {
        let im = image::open(f).unwrap().to_rgb8();
        assert_eq!(im.dimensions(), (224, 224), "{}", f.display());
        bytes.extend_from_slice(im.as_raw());
    }
    let names = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    (names, bytes)
}

fn litert_logits(bytes: &[u8], n: usize) -> Vec<Vec<f32>> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bytes).unwrap();
    let out = std::process::Command::new("python3")
        .arg(root().join("scripts/litert-oracle.py"))
        .arg(tflite_path())
        .arg(tmp.path())
        .arg(n.to_string())
        .output()
        .expect("python3 runs (scripts/test.sh installs the oracle)");
    assert!(
        out.status.success(),
        "LiteRT oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[derive(serde::Deserialize)]
    struct Out {
        logits: Vec<Vec<f32>>,
    }
    serde_json::from_slice::<Out>(&out.stdout).unwrap().logits
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap()
}

#[test]
fn tflite_weights_classify_as_litert_does() {
    tch::set_num_threads(1);
    let pre = from_tflite(&crate::tflite::read(&tflite_path()).unwrap()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = MobileNetV2::new(&vs.root(), 17, 3);
    let loaded = load_into(&vs, "", &pre).unwrap();
    assert_eq!(loaded, pre.named.len());
    assert_eq!(
        loaded,
        vs.variables().len(),
        "every encoder tensor comes from the file"
    );

    let (names, bytes) = photographs();
    let n = names.len();
    // The quantized input's own convention: real = (q − 128) / 128.
    let x = (Tensor::from_slice(&bytes)
        .to_kind(Kind::Float)
        .view([n as i64, 224, 224, 3])
        .permute([0, 3, 1, 2])
        - 128.0)
        / 128.0;
    let ours = tch::no_grad(|| imagenet_logits(&net, &pre, &x));
    let ours: Vec<Vec<f32>> = (0..n)
        .map(|i| Vec::<f32>::try_from(ours.get(i as i64)).unwrap())
        .collect();
    let theirs = litert_logits(&bytes, n);
    let labels: Vec<String> = std::fs::read_to_string(
        root().join("models/pretrained/mobilenet-v2-imagenet/imagenet_labels.txt"),
    )
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect();
    let mut agree = 0;
    let mut in_top3 = 0;
    let mut max_diff = 0f32;
    for i in 0..n {
        let (a, b) = (argmax(&ours[i]), argmax(&theirs[i]));
        agree += usize::from(a == b);
        let beaten = theirs[i].iter().filter(|&&v| v > theirs[i][a]).count();
        in_top3 += usize::from(beaten < 3);
        for (x, y) in ours[i].iter().zip(&theirs[i]) {
            max_diff = max_diff.max((x - y).abs());
        }
        eprintln!("{}: ours {} / LiteRT {}", names[i], labels[a], labels[b]);
    }
    let range = theirs.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    eprintln!(
        "top-1 agreement {agree}/{n}, ours in LiteRT's top 3 {in_top3}/{n}; \
         largest logit difference {max_diff:.3} (logits up to {range:.1})"
    );
    // The float network is not bit-exact with the int8 one (LiteRT requantizes
    // every layer's output): one photograph whose two best classes are close
    // may swap them, never more.
    assert!(
        agree + 1 >= n,
        "top-1 classes differ from LiteRT on {} of {n}",
        n - agree
    );
    assert_eq!(in_top3, n, "a top-1 class outside LiteRT's top 3");
    assert!(
        max_diff < 0.2 * range,
        "logits differ by {max_diff} of {range}"
    );
}

#[test]
fn grey_stem_equals_the_colour_stem_on_a_grey_image() {
    let pre = from_tflite(&crate::tflite::read(&tflite_path()).unwrap()).unwrap();
    let (vs1, vs3) = (
        nn::VarStore::new(Device::Cpu),
        nn::VarStore::new(Device::Cpu),
    );
    let grey = MobileNetV2::new(&vs1.root(), 4, 1);
    let colour = MobileNetV2::new(&vs3.root(), 4, 3);
    load_into(&vs1, "", &pre).unwrap();
    load_into(&vs3, "", &pre).unwrap();
    let x = Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let a = tch::no_grad(|| grey.forward(&x));
    let b = tch::no_grad(|| colour.forward(&x.expand([2, 3, 64, 64], false)));
    let d = (a - b).abs().max().double_value(&[]);
    assert!(d < 1e-4, "max |Δ| {d}");
}

#[test]
fn a_file_that_is_not_mobilenet_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad: &Path = &dir.path().join("garbage.tflite");
    std::fs::write(bad, b"not a flatbuffer at all").unwrap();
    let e = format!("{:#}", crate::tflite::read(bad).unwrap_err());
    assert!(e.contains("garbage.tflite"), "{e}");
}

/// `--freeze-blocks` keeps the stem and the first blocks as loaded, and
/// `--detach-text` keeps the text loss from reaching the encoder at all.
#[test]
fn frozen_blocks_and_a_detached_text_loss_leave_the_encoder_alone() {
    use crate::model::{CxrModel, Mode};
    use cxr_edge::model_config::EncoderKind;
    use cxr_edge::{DecoderKind, ModelConfig};
    use tch::nn::OptimizerConfig;

    tch::manual_seed(3);
    let cfg = ModelConfig {
        input_size: 32,
        encoder: EncoderKind::MobileNetV2 { blocks: 3 },
        channels: Vec::new(),
        decoder: DecoderKind::Attention,
        embed_dim: 8,
        hidden: 16,
        attn_dim: 8,
        vocab_size: 12,
        max_len: 6,
        findings_conditioned: false,
    };
    let images = Tensor::rand([2, 1, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let tokens = Tensor::from_slice(&[1i64, 5, 6, 2, 1, 7, 2, 0]).view([2, 4]);
    let labels = Tensor::ones([2, 10], (Kind::Float, Device::Cpu));
    let snapshot = |vs: &nn::VarStore, name: &str| vs.variables()[name].copy();

    // Frozen: after a step on both losses, the stem and block 0 are unchanged,
    // block 1 moved.
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CxrModel::new(&vs.root(), &cfg, 0.0);
    model.freeze_backbone_prefix(1);
    let (stem, b0, b1) = (
        snapshot(&vs, "enc.mb.stem.weight"),
        snapshot(&vs, "enc.mb.b0.dw.weight"),
        snapshot(&vs, "enc.mb.b1.dw.weight"),
    );
    let mut opt = nn::AdamW::default().build(&vs, 1e-2).unwrap();
    let enc = model.encode(&images, Mode::Train);
    let loss = model.text_loss(&enc, &tokens, Mode::Train)
        + enc.findings.binary_cross_entropy_with_logits::<&Tensor>(
            &labels,
            None,
            None,
            tch::Reduction::Mean,
        );
    opt.backward_step(&loss);
    let moved = |before: &Tensor, name: &str| {
        (before - &vs.variables()[name])
            .abs()
            .max()
            .double_value(&[])
            > 0.0
    };
    assert!(!moved(&stem, "enc.mb.stem.weight"));
    assert!(!moved(&b0, "enc.mb.b0.dw.weight"));
    assert!(moved(&b1, "enc.mb.b1.dw.weight"));

    // Detached: the text loss alone gives the encoder no gradient, the decoder one.
    let vs = nn::VarStore::new(Device::Cpu);
    let mut model = CxrModel::new(&vs.root(), &cfg, 0.0);
    model.detach_text = true;
    let enc = model.encode(&images, Mode::Train);
    model.text_loss(&enc, &tokens, Mode::Train).backward();
    let vars = vs.variables();
    let grad_norm = |name: &str| {
        let g = vars[name].grad();
        if g.defined() {
            g.abs().sum(Kind::Float).double_value(&[])
        } else {
            0.0
        }
    };
    assert_eq!(grad_norm("enc.mb.b2.project.weight"), 0.0);
    assert!(grad_norm("dec.gru_hh.weight") > 0.0);
}
