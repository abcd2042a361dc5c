//! Fast CPU tests of the model and the training machinery (one thread).

use std::path::PathBuf;

use cxr_edge::model_config::EncoderKind;
use cxr_edge::preprocess::PreprocessOptions;
use cxr_edge::text::Vocab;
use cxr_edge::{DecoderKind, ModelConfig};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Tensor};

use crate::data::{self, Sample};
use crate::model::{CxrModel, Mode};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/nih")
}

fn tiny_config(decoder: DecoderKind, vocab: usize) -> ModelConfig {
    tiny_config_with(decoder, vocab, false)
}

fn tiny_config_with(decoder: DecoderKind, vocab: usize, findings_conditioned: bool) -> ModelConfig {
    ModelConfig {
        input_size: 32,
        channels: vec![8, 16],
        encoder: Default::default(),
        decoder,
        embed_dim: 16,
        hidden: 48,
        attn_dim: 16,
        vocab_size: vocab,
        max_len: 12,
        findings_conditioned,
    }
}

const REPORTS: [&str; 4] = [
    "no acute cardiopulmonary abnormality",
    "cardiomegaly with small bilateral pleural effusions",
    "right lower lobe pneumonia",
    "no active disease",
];

fn fixture_images(n: usize, size: usize) -> (Vec<Sample>, Tensor) {
    let samples: Vec<Sample> = data::read_nih(&fixture_dir())
        .unwrap()
        .into_iter()
        .take(n)
        .collect();
    let opts = PreprocessOptions {
        size,
        ..Default::default()
    };
    let t = data::image_tensor(&samples, &opts, None).unwrap();
    (samples, t)
}

fn overfit(decoder: DecoderKind) {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vocab = Vocab::build(REPORTS.iter().copied(), 1);
    let cfg = tiny_config(decoder, vocab.len());
    let (_, images) = fixture_images(4, cfg.input_size);
    let seqs: Vec<Vec<u32>> = REPORTS.iter().map(|r| vocab.encode(r)).collect();
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let tokens = data::batch_tokens(&refs, Vocab::BOS, Vocab::EOS);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CxrModel::new(&vs.root(), &cfg, 0.0);
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let first = model
        .text_loss(&model.encode(&images, Mode::Train), &tokens, Mode::Train)
        .double_value(&[]);
    let mut last = first;
    for _ in 0..250 {
        let loss = model.text_loss(&model.encode(&images, Mode::Train), &tokens, Mode::Train);
        opt.backward_step(&loss);
        last = loss.double_value(&[]);
    }
    assert!(
        last < first / 20.0,
        "loss {first} -> {last}: did not fall 20x"
    );
    // BatchNorm running statistics have converged on these four images, so eval
    // mode reproduces the training reports.
    let _g = tch::no_grad_guard();
    let enc = model.encode(&images, Mode::Eval);
    let (out, attn) = model.greedy(&enc, Vocab::BOS as i64, Vocab::EOS as i64);
    let texts: Vec<String> = out.iter().map(|t| vocab.decode(t)).collect();
    assert_eq!(texts, REPORTS.map(String::from).to_vec());
    assert_eq!(attn.size(), vec![4, cfg.grid_cells() as i64]);
}

#[test]
fn attention_model_overfits_a_handful_of_pairs() {
    overfit(DecoderKind::Attention);
}

#[test]
fn merge_model_overfits_a_handful_of_pairs() {
    overfit(DecoderKind::Merge);
}

#[test]
fn checkpoint_round_trip_is_bit_identical() {
    tch::set_num_threads(1);
    tch::manual_seed(1);
    let vocab = Vocab::build(REPORTS.iter().copied(), 1);
    let cfg = tiny_config(DecoderKind::Attention, vocab.len());
    let (_, images) = fixture_images(2, cfg.input_size);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CxrModel::new(&vs.root(), &cfg, 0.1);
    let dir = tempfile::tempdir().unwrap();
    crate::train::save_checkpoint(&vs, &cfg, &vocab, dir.path()).unwrap();

    let mut vs2 = nn::VarStore::new(Device::Cpu);
    let loaded_cfg: ModelConfig =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(loaded_cfg, cfg);
    let model2 = CxrModel::new(&vs2.root(), &loaded_cfg, 0.1);
    vs2.load(dir.path().join("model.safetensors")).unwrap();
    let _g = tch::no_grad_guard();
    let a = model.encode(&images, Mode::Eval);
    let b = model2.encode(&images, Mode::Eval);
    assert!(a.findings.equal(&b.findings));
    assert!(a.grid.equal(&b.grid));
    let tok = Tensor::from_slice(&[Vocab::BOS as i64, Vocab::BOS as i64]);
    let sa = model.step(&tok, &a.h0, &a, Mode::Eval);
    let sb = model2.step(&tok, &b.h0, &b, Mode::Eval);
    assert!(sa.logits.equal(&sb.logits));
    let v2 = Vocab::load(&dir.path().join("vocab.json")).unwrap();
    assert_eq!(v2.hash(), vocab.hash());
}

#[test]
fn schedule_warms_up_then_decays() {
    let cfg = crate::cmd_train::tests_config();
    let total = 1000;
    let lrs: Vec<f64> = (0..total)
        .map(|s| crate::train::lr_at(&cfg, s, total))
        .collect();
    let peak = lrs.iter().cloned().fold(0.0, f64::max);
    assert!((peak - cfg.lr).abs() < 1e-12);
    assert!(lrs[0] < lrs[10]);
    assert!(lrs[total - 1] < 0.1 * cfg.lr);
    assert!(lrs.windows(2).skip(60).all(|w| w[1] <= w[0] + 1e-15));
}

fn max_abs_diff(a: &[f32], b: &Tensor) -> f32 {
    let b: Vec<f32> = Vec::try_from(b.contiguous().view([-1])).unwrap();
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The trainer→device contract: the same checkpoint in libtorch and, exported and
/// compiled to NNEF, in tract gives the same numbers and the same greedy text.
fn tch_tract_parity(decoder: DecoderKind, conditioned: bool) {
    let vocab = Vocab::build(REPORTS.iter().copied(), 1);
    tch_tract_parity_of(tiny_config_with(decoder, vocab.len(), conditioned));
}

fn tch_tract_parity_of(cfg: ModelConfig) {
    use cxr_edge::bundle::{self, BuildOptions};
    use cxr_edge::runtime::tract::TractRuntime;
    use cxr_edge::runtime::Runtime;

    tch::set_num_threads(1);
    tch::manual_seed(2);
    let vocab = Vocab::build(REPORTS.iter().copied(), 1);
    let (_, images) = fixture_images(3, cfg.input_size);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CxrModel::new(&vs.root(), &cfg, 0.0);
    if cfg.encoder != EncoderKind::Plain {
        // Realistic weights: the ImageNet ones.
        let tflite = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/pretrained/mobilenet-v2-imagenet/mobilenet_v2_1.0_224_quant.tflite");
        let pre = crate::mobilenet::from_tflite(&crate::tflite::read(&tflite).unwrap()).unwrap();
        assert!(crate::mobilenet::load_into(&vs, "enc.mb.", &pre).unwrap() > 0);
    }
    // Thresholds that split this random head's scores both ways.
    model.set_thresholds(&[0.3, 0.5, 0.7, 0.4, 0.6, 0.5, 0.45, 0.55, 0.5, 0.5]);
    {
        // Non-trivial BatchNorm statistics, so folding is exercised.
        let _g = tch::no_grad_guard();
        for _ in 0..3 {
            model.encode(&images, Mode::Train);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    crate::train::save_checkpoint(&vs, &cfg, &vocab, &ckpt).unwrap();
    let mut opts = BuildOptions::new("parity-test", Vocab::BOS, Vocab::EOS);
    opts.preprocess.size = cfg.input_size;
    let b = bundle::build(
        &ckpt,
        &ckpt.join("vocab.json"),
        &opts,
        &dir.path().join("bundle"),
    )
    .unwrap();
    let rt = TractRuntime::load(&b).unwrap();

    let _g = tch::no_grad_guard();
    for i in 0..3 {
        let x = images.narrow(0, i, 1);
        let pixels: Vec<f32> = Vec::try_from(x.contiguous().view([-1])).unwrap();
        let et = rt.encode(&pixels).unwrap();
        let e = model.encode(&x, Mode::Eval);
        assert!(max_abs_diff(&et.findings, &e.findings) <= 1e-4);
        assert!(max_abs_diff(&et.grid, &e.grid) <= 1e-4);
        assert!(max_abs_diff(&et.grid_proj, &e.grid_proj) <= 1e-4);
        assert!(max_abs_diff(&et.h0, &e.h0) <= 1e-4);
        let (tch_tokens, _) = model.greedy(&e, Vocab::BOS as i64, Vocab::EOS as i64);
        let mut state = et.h0.clone();
        let mut token = Vocab::BOS;
        let mut tract_tokens = Vec::new();
        let mut tstate = e.h0.shallow_clone();
        for _ in 0..cfg.max_len {
            let s = rt.step(token, &state, &et).unwrap();
            let ts = model.step(
                &Tensor::from_slice(&[token as i64]),
                &tstate,
                &e,
                Mode::Eval,
            );
            assert!(
                max_abs_diff(&s.logits, &ts.logits) <= 1e-4,
                "step logits differ"
            );
            assert!(max_abs_diff(&s.attn, &ts.attn) <= 1e-4, "attention differs");
            token = bundle::argmax(&s.logits);
            if token == Vocab::EOS {
                break;
            }
            tract_tokens.push(token);
            state = s.state;
            tstate = ts.state;
        }
        assert_eq!(
            tract_tokens, tch_tokens[0],
            "greedy text differs for image {i}"
        );
    }
}

#[test]
fn tract_matches_tch_attention() {
    tch_tract_parity(DecoderKind::Attention, false);
}

#[test]
fn tract_matches_tch_merge() {
    tch_tract_parity(DecoderKind::Merge, false);
}

#[test]
fn tract_matches_tch_mobilenet_v2_even_and_odd_sides() {
    // Even sides pad TFLite-style (the extra row at the bottom), odd ones evenly.
    for size in [32, 29] {
        let vocab = Vocab::build(REPORTS.iter().copied(), 1);
        let cfg = ModelConfig {
            input_size: size,
            encoder: EncoderKind::MobileNetV2 { blocks: 5 },
            channels: Vec::new(),
            ..tiny_config_with(DecoderKind::Attention, vocab.len(), true)
        };
        tch_tract_parity_of(cfg);
    }
}

#[test]
fn tract_matches_tch_findings_conditioned() {
    tch_tract_parity(DecoderKind::Attention, true);
    tch_tract_parity(DecoderKind::Merge, true);
}

fn tiny_run_config() -> crate::train::TrainConfig {
    let mut cfg = crate::cmd_train::tests_config();
    cfg.model = tiny_config(DecoderKind::Attention, 0);
    cfg.preprocess.size = cfg.model.input_size;
    cfg.data.nih = Some(fixture_dir());
    cfg.data.reports =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/iu/ecgen-radiology");
    cfg.data.val_percent = 40;
    cfg.data.min_count = 1;
    cfg.epochs = 2;
    cfg.batch = 4;
    cfg.threads = 1;
    cfg
}

fn history(dir: &std::path::Path) -> Vec<crate::train::EpochRecord> {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn resume_continues_the_same_schedule() {
    let cfg = tiny_run_config();
    let full = tempfile::tempdir().unwrap();
    crate::train::train(&cfg, full.path(), false, None).unwrap();
    let split = tempfile::tempdir().unwrap();
    crate::train::train(&cfg, split.path(), false, Some(1)).unwrap();
    assert_eq!(history(split.path()).len(), 1);
    crate::train::train(&cfg, split.path(), true, None).unwrap();
    let (a, b) = (history(full.path()), history(split.path()));
    assert_eq!(a.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(b.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2]);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.lr, y.lr, "epoch {} learning rate", x.epoch);
    }
    // The run folder has everything a user looks at.
    for f in [
        "config.json",
        "splits.json",
        "metrics.json",
        "best/model.safetensors",
        "best/thresholds.json",
        "last/vocab.json",
    ] {
        assert!(split.path().join(f).exists(), "{f} missing");
    }

    // One command from the run to a bundle with an int8 encoder calibrated on
    // the run's training images, the default for the CPUs named.
    let out = split.path().join("bundle");
    let args = |calibrate, int8_for: &[&str]| crate::cmd_bundle::Args {
        run: split.path().to_path_buf(),
        out: out.clone(),
        id: Some("tiny-int8".into()),
        parity_image: None,
        calibrate,
        int8_for: int8_for.iter().map(|s| s.to_string()).collect(),
    };
    let e = crate::cmd_bundle::run(args(0, &["aarch64"])).unwrap_err();
    assert!(e.to_string().contains("--calibrate"), "{e}");
    crate::cmd_bundle::run(args(3, &["aarch64"])).unwrap();
    let b = cxr_edge::bundle::Bundle::open(&out).unwrap();
    let m = b.manifest();
    assert_eq!(m.model_id, "tiny-int8");
    use cxr_edge::bundle::Precision;
    assert_eq!(
        m.artefact_for("aarch64").unwrap().precision,
        Precision::Int8
    );
    assert_eq!(m.artefact_for("x86_64").unwrap().precision, Precision::Fp32);
    assert!(b.parity().unwrap().int8.is_some());
}

/// The real IU layout with images (`ecgen-radiology/` beside `NLMCXR_png/`) trains
/// on true pairs with no NIH folder. The pixels here are NIH fixture images saved
/// under IU file names: this exercises the code path, not the data.
#[test]
fn true_iu_pairs_train_from_the_distributed_layout() {
    let root = tempfile::tempdir().unwrap();
    let src =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/iu/ecgen-radiology");
    let reports = root.path().join("ecgen-radiology");
    let pngs = root.path().join("NLMCXR_png");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::create_dir_all(&pngs).unwrap();
    let nih: Vec<PathBuf> = data::read_nih(&fixture_dir())
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect();
    let mut n = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let xml = std::fs::read_to_string(&p).unwrap();
        std::fs::write(reports.join(p.file_name().unwrap()), &xml).unwrap();
        for id in xml
            .split("parentImage id=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
        {
            std::fs::copy(&nih[n % nih.len()], pngs.join(format!("{id}.png"))).unwrap();
            n += 1;
        }
    }
    let mut cfg = tiny_run_config();
    cfg.data.nih = None;
    cfg.data.reports = reports;
    cfg.epochs = 1;
    let d = data::load(&cfg.data).unwrap();
    assert!(d.true_pairs);
    assert!(d.provenance.contains("true image-report pairs"));
    // Each image is paired with its own study's report.
    for s in d.train.iter() {
        let r = &d.train_reports[s.own_report.unwrap()];
        assert_eq!(r.uid, s.group);
    }
    let out = tempfile::tempdir().unwrap();
    let best = crate::train::train(&cfg, out.path(), false, None).unwrap();
    assert_eq!(best.val.generated.len(), d.val.len());
}

#[test]
fn corpus_embeddings_initialise_the_decoder() {
    let texts: Vec<String> = REPORTS
        .iter()
        .cycle()
        .take(40)
        .map(|s| s.to_string())
        .collect();
    let e = crate::embeddings::fit(&texts, 4, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emb.json");
    std::fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
    let vocab = Vocab::build(REPORTS.iter().copied(), 1);
    let mut cfg = tiny_config(DecoderKind::Attention, vocab.len());
    cfg.embed_dim = 4;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CxrModel::new(&vs.root(), &cfg, 0.0);
    let before = model.embedding_weight().copy();
    let words: Vec<String> = (0..vocab.len() as u32)
        .map(|i| vocab.token(i).unwrap().to_string())
        .collect();
    let n = crate::embeddings::init_matrix(model.embedding_weight(), &words, &path).unwrap();
    assert_eq!(n, vocab.len() - 4, "every word but the four specials");
    let id = vocab.id("pneumonia").unwrap() as i64;
    assert!(!model.embedding_weight().get(id).equal(&before.get(id)));
    assert!(model.embedding_weight().get(0).equal(&before.get(0)));
    let mut bad = cfg.clone();
    bad.embed_dim = 8;
    let vs2 = nn::VarStore::new(Device::Cpu);
    let m2 = CxrModel::new(&vs2.root(), &bad, 0.0);
    let err = crate::embeddings::init_matrix(m2.embedding_weight(), &words, &path).unwrap_err();
    assert!(format!("{err:#}").contains("emb.json"), "{err:#}");
}
