//! The training loop: AdamW with warm-up + cosine decay, gradient clipping,
//! per-epoch validation with the shared metrics, checkpoints every epoch, early
//! stopping and `--resume`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use cxr_edge::model_config::EncoderKind;
use cxr_edge::preprocess::PreprocessOptions;
use cxr_edge::text::Vocab;
use cxr_edge::{ModelConfig, Observation};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::augment::Augment;
use crate::data::{self, DataOptions, Dataset};
use crate::evaluate::{self, Validation};
use crate::model::{CxrModel, Mode};
use cxr_edge::corpus::pairing;

/// Everything that defines a run; written to `<run>/config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub preprocess: PreprocessOptions,
    pub data: DataOptions,
    pub augment: Option<Augment>,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Fraction of all steps spent warming up linearly.
    pub warmup: f64,
    pub clip_norm: f64,
    pub dropout: f64,
    /// Weight of the findings BCE next to the token cross-entropy.
    pub findings_weight: f64,
    /// Stop after this many epochs without improvement of the selection metric.
    pub patience: usize,
    pub seed: u64,
    pub threads: usize,
    /// Word vectors (`cxr-train embeddings`) to initialise `dec.emb` from.
    #[serde(default)]
    pub init_embeddings: Option<PathBuf>,
    /// TFLite MobileNetV2 weights to start a MobileNetV2 encoder from.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// MobileNetV2 blocks (after the stem) kept as loaded.
    #[serde(default)]
    pub freeze_blocks: usize,
    /// Keep the text loss from reaching the encoder (see `CxrModel::detach_text`).
    #[serde(default)]
    pub detach_text: bool,
    /// Backbone learning rate as a fraction of `lr`.
    #[serde(default = "one")]
    pub backbone_lr: f64,
}

/// What one epoch measured; the list is `<run>/metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub text_loss: f64,
    pub findings_loss: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_s: f64,
    pub val: Validation,
    /// The early-stopping and checkpoint criterion: the findings head's mean
    /// validation AUROC.
    pub selection: f64,
}

/// Resume state, `<run>/state.json`. AdamW moments are not saved (libtorch's
/// optimizer state is not exposed through tch), so a resumed run restarts them.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct RunState {
    next_epoch: usize,
    step: usize,
    best: f64,
    best_epoch: usize,
}

pub fn device() -> Device {
    Device::cuda_if_available()
}

/// Learning rate at `step` of `total`: linear warm-up then cosine to 5 %.
fn one() -> f64 {
    1.0
}

pub fn lr_at(cfg: &TrainConfig, step: usize, total: usize) -> f64 {
    let warm = ((cfg.warmup * total as f64) as usize).max(1);
    if step < warm {
        return cfg.lr * (step + 1) as f64 / warm as f64;
    }
    let p = (step - warm) as f64 / (total - warm).max(1) as f64;
    cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
}

/// Save weights + architecture to `dir` (`model.safetensors`, `config.json`,
/// `vocab.json`): the checkpoint format the exporter reads.
pub fn save_checkpoint(
    vs: &nn::VarStore,
    model: &ModelConfig,
    vocab: &Vocab,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    vs.save(dir.join("model.safetensors"))?;
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(model)?)?;
    vocab.save(&dir.join("vocab.json"))?;
    Ok(())
}

/// Train a run into `out`; returns the best validation record.
/// `stop_after` ends the run after that many epochs of this invocation, leaving
/// a state `--resume` continues (for runs split across sessions).
pub fn train(
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<EpochRecord> {
    tch::set_num_threads(cfg.threads as i32);
    tch::manual_seed(cfg.seed as i64);
    let data = data::load(&cfg.data)?;
    eprintln!("{}", data.provenance);
    eprintln!(
        "{} train / {} val images, {} train / {} val reports, vocabulary {}",
        data.train.len(),
        data.val.len(),
        data.train_reports.len(),
        data.val_reports.len(),
        data.vocab.len()
    );
    let mut model_cfg = cfg.model.clone();
    model_cfg.vocab_size = data.vocab.len();
    model_cfg.input_size = cfg.preprocess.size;
    std::fs::create_dir_all(out)?;
    let mut run_cfg = cfg.clone();
    run_cfg.model = model_cfg.clone();
    std::fs::write(
        out.join("config.json"),
        serde_json::to_vec_pretty(&run_cfg)?,
    )?;
    write_splits(&data, out)?;
    eprintln!(
        "encoder: {:.3} GMAC at {}px",
        model_cfg.encoder_macs() as f64 / 1e9,
        model_cfg.input_size
    );

    let device = device();
    let cache = std::env::var_os("CXR_CACHE").map(|c| PathBuf::from(c).join("image-cache"));
    let train_images =
        data::image_tensor(&data.train, &cfg.preprocess, cache.as_deref())?.to_device(device);
    let val_images =
        data::image_tensor(&data.val, &cfg.preprocess, cache.as_deref())?.to_device(device);

    let mut vs = nn::VarStore::new(device);
    let mut model = CxrModel::new(&vs.root(), &model_cfg, cfg.dropout);
    model.detach_text = cfg.detach_text;
    if let (Some(p), false) = (&cfg.init_embeddings, resume) {
        let words: Vec<String> = (0..data.vocab.len() as u32)
            .map(|i| data.vocab.token(i).unwrap_or_default().to_string())
            .collect();
        let n = crate::embeddings::init_matrix(model.embedding_weight(), &words, p)?;
        eprintln!(
            "initialised {n} of {} word embeddings from {}",
            words.len(),
            p.display()
        );
    }
    if let (Some(p), false) = (&cfg.pretrained, resume) {
        let pre = crate::mobilenet::from_tflite(&crate::tflite::read(p)?)
            .with_context(|| format!("{}: not MobileNetV2 1.0", p.display()))?;
        let n = crate::mobilenet::load_into(&vs, "enc.mb.", &pre)?;
        ensure!(n > 0, "{}: no weights matched the encoder", p.display());
        eprintln!("initialised {n} encoder tensors from {}", p.display());
    }
    model.freeze_backbone_prefix(cfg.freeze_blocks);
    let mut state = RunState::default();
    let mut history: Vec<EpochRecord> = Vec::new();
    if resume && out.join("state.json").exists() {
        vs.load(out.join("last").join("model.safetensors"))
            .context("loading the last checkpoint to resume")?;
        state = serde_json::from_slice(&std::fs::read(out.join("state.json"))?)?;
        history = serde_json::from_slice(&std::fs::read(out.join("metrics.json"))?)?;
        eprintln!(
            "resuming at epoch {} (step {})",
            state.next_epoch, state.step
        );
    }
    let mut opt = nn::AdamW {
        wd: cfg.weight_decay,
        ..Default::default()
    }
    .build(&vs, cfg.lr)?;

    let pos_weight = findings_pos_weight(&data, device);
    let steps_per_epoch = data.train.len().div_ceil(cfg.batch);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ state.next_epoch as u64);
    let vocab = &data.vocab;

    let first_epoch = state.next_epoch;
    for epoch in state.next_epoch..cfg.epochs {
        if stop_after.is_some_and(|n| epoch - first_epoch >= n) {
            eprintln!(
                "stopping after {} epochs; continue with --resume",
                epoch - first_epoch
            );
            break;
        }
        let started = Instant::now();
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut rng);
        let bar = ProgressBar::new(steps_per_epoch as u64).with_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("progress template"),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let (mut sum_loss, mut sum_text, mut sum_find) = (0f64, 0f64, 0f64);
        for idx in order.chunks(cfg.batch) {
            let lr = lr_at(cfg, state.step, total_steps);
            opt.set_lr(lr);
            if model_cfg.encoder != EncoderKind::Plain {
                opt.set_lr_group(crate::model::BACKBONE_GROUP, lr * cfg.backbone_lr);
            }
            let ix = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>())
                .to_device(device);
            let mut x = train_images.index_select(0, &ix);
            if let Some(aug) = &cfg.augment {
                x = aug.apply(
                    &x,
                    cfg.preprocess.mean as f64,
                    cfg.preprocess.std as f64,
                    &mut rng,
                );
            }
            let picked: Vec<usize> = idx
                .iter()
                .map(|&i| {
                    let s = &data.train[i];
                    match s.own_report {
                        Some(r) => r,
                        None => {
                            data.train_pool
                                .pick(pairing::mask_from_labels(&s.labels), &mut rng)
                                .expect("non-empty pool")
                                .0
                        }
                    }
                })
                .collect();
            let seqs: Vec<&[u32]> = picked
                .iter()
                .map(|&r| data.train_reports[r].tokens.as_slice())
                .collect();
            // Teacher-forced conditioning: the paired report's own findings.
            let flags = label_tensor(
                picked
                    .iter()
                    .map(|&r| pairing::labels_from_mask(data.train_reports[r].mask))
                    .collect::<Vec<_>>()
                    .iter(),
                device,
            );
            let tokens = data::batch_tokens(&seqs, Vocab::BOS, Vocab::EOS).to_device(device);
            let labels = label_tensor(idx.iter().map(|&i| &data.train[i].labels), device);
            let enc = model.encode_with(&x, Mode::Train, Some(&flags));
            let text_loss = model.text_loss(&enc, &tokens, Mode::Train);
            let find_loss = enc.findings.binary_cross_entropy_with_logits::<&Tensor>(
                &labels,
                None,
                Some(&pos_weight),
                tch::Reduction::Mean,
            );
            let loss = &text_loss + &find_loss * cfg.findings_weight;
            opt.zero_grad();
            loss.backward();
            opt.clip_grad_norm(cfg.clip_norm);
            opt.step();
            state.step += 1;
            let (l, t, f) = (
                loss.double_value(&[]),
                text_loss.double_value(&[]),
                find_loss.double_value(&[]),
            );
            sum_loss += l;
            sum_text += t;
            sum_find += f;
            let ips = (bar.position() as usize + 1) as f64 * cfg.batch as f64
                / started.elapsed().as_secs_f64();
            bar.set_message(format!("loss {l:.3} lr {lr:.2e} {ips:.1} img/s"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_secs = started.elapsed().as_secs_f64();
        let val = evaluate::validate(&model, &data, &val_images, 64)?;
        let n = steps_per_epoch as f64;
        // The findings head's validation AUROC chooses the checkpoint: it is what
        // the device flags, and the impression is made to agree with the flags
        // (`cxr_edge::impression`), so the decoder's own clinical F1 (noisy on a
        // few hundred films, and measured against findings-matched references)
        // no longer decides.
        let selection = val.mean_auroc;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: sum_loss / n,
            text_loss: sum_text / n,
            findings_loss: sum_find / n,
            lr: lr_at(cfg, state.step.saturating_sub(1), total_steps),
            seconds: train_secs,
            images_per_s: data.train.len() as f64 / train_secs,
            val,
            selection,
        };
        eprintln!(
            "epoch {:>3}  loss {:.3} (text {:.3}, findings {:.3})  {:.0}s {:.1} img/s  | val mean AUROC {:.3}  clinical micro-F1 {:.3}  BLEU-4 {:.3}  distinct {}",
            record.epoch,
            record.train_loss,
            record.text_loss,
            record.findings_loss,
            record.seconds,
            record.images_per_s,
            record.val.mean_auroc,
            record.val.clinical_vs_labels.micro.f1,
            record.val.text.bleu[3],
            record.val.text.distinct_candidates
        );
        save_checkpoint(&vs, &model_cfg, vocab, &out.join("last"))?;
        if selection > state.best || history.is_empty() {
            state.best = selection;
            state.best_epoch = epoch + 1;
            save_checkpoint(&vs, &model_cfg, vocab, &out.join("best"))?;
            let thresholds = evaluate::choose_thresholds(&record.val.scores, &data.val);
            std::fs::write(
                out.join("best").join("thresholds.json"),
                serde_json::to_vec_pretty(&thresholds_json(&thresholds))?,
            )?;
            std::fs::write(
                out.join("best").join("validation.json"),
                serde_json::to_vec_pretty(&record)?,
            )?;
            std::fs::write(out.join("best").join("provenance.txt"), &data.provenance)?;
        }
        history.push(record);
        state.next_epoch = epoch + 1;
        std::fs::write(
            out.join("metrics.json"),
            serde_json::to_vec_pretty(&history)?,
        )?;
        std::fs::write(out.join("state.json"), serde_json::to_vec_pretty(&state)?)?;
        if let Err(e) = crate::plots::write(&history, out) {
            eprintln!("warning: plots not written: {e:#}");
        }
        if epoch + 1 - state.best_epoch >= cfg.patience {
            eprintln!("early stop: no improvement for {} epochs", cfg.patience);
            break;
        }
    }
    let best = history
        .iter()
        .find(|r| r.epoch == state.best_epoch)
        .cloned()
        .context("no epoch was trained")?;
    Ok(best)
}

fn thresholds_json(t: &[f32; Observation::COUNT]) -> serde_json::Value {
    Observation::ALL
        .iter()
        .map(|o| (o.key().to_string(), serde_json::json!(t[o.index()])))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn label_tensor<'a>(
    rows: impl Iterator<Item = &'a [bool; Observation::COUNT]>,
    device: Device,
) -> Tensor {
    let flat: Vec<f32> = rows
        .flat_map(|r| r.iter().map(|&b| b as u8 as f32))
        .collect();
    Tensor::from_slice(&flat)
        .view([-1, Observation::COUNT as i64])
        .to_device(device)
}

/// Positive weights for the findings BCE: negatives/positives, capped, so rare
/// findings are not ignored.
fn findings_pos_weight(data: &Dataset, device: Device) -> Tensor {
    let n = data.train.len() as f32;
    let w: Vec<f32> = Observation::ALL
        .iter()
        .map(|o| {
            let p = data.train.iter().filter(|s| s.labels[o.index()]).count() as f32;
            ((n - p) / p.max(1.0)).clamp(1.0, 20.0)
        })
        .collect();
    Tensor::from_slice(&w)
        .to_device(device)
        .to_kind(Kind::Float)
}

fn write_splits(data: &Dataset, out: &Path) -> Result<()> {
    let ids = |v: &[crate::data::Sample]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let splits = serde_json::json!({
        "provenance": data.provenance,
        "true_pairs": data.true_pairs,
        "train_images": ids(&data.train),
        "val_images": ids(&data.val),
        "train_reports": data.train_reports.iter().map(|t| &t.uid).collect::<Vec<_>>(),
        "val_reports": data.val_reports.iter().map(|t| &t.uid).collect::<Vec<_>>(),
    });
    std::fs::write(out.join("splits.json"), serde_json::to_vec_pretty(&splits)?)?;
    Ok(())
}
