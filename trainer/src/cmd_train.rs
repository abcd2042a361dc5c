//! `cxr-train train`: one documented command from the data folders to a run with
//! checkpoints, metrics and plots.

use std::path::PathBuf;

use cxr_edge::model_config::{DecoderKind, EncoderKind};
use cxr_edge::preprocess::PreprocessOptions;
use cxr_edge::text::Preset;
use cxr_edge::ModelConfig;

use crate::augment::Augment;
use crate::data::DataOptions;
use crate::train::{self, TrainConfig};

#[derive(clap::Args)]
pub struct Args {
    /// NIH ChestX-ray14 folder (labels.csv + images/). Omit to train on true IU
    /// pairs (NLMCXR_png/ beside the reports).
    #[arg(long, default_value = "../shared/data/nih-cxr14")]
    pub nih: Option<PathBuf>,
    /// IU reports: ecgen-radiology/ folder, its .tgz, or indiana_reports.csv.
    #[arg(long, default_value = "../shared/data/iu-xray/ecgen-radiology")]
    pub reports: PathBuf,
    /// Run folder (config, checkpoints, metrics.json, plots).
    #[arg(long, default_value = "runs/default")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Decoder::Attention)]
    pub decoder: Decoder,
    /// Square input size in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Image encoder: plain conv stages trained from scratch (`--channels`), or
    /// MobileNetV2 1.0 (`--blocks`, initialised from `--pretrained`).
    #[arg(long, value_enum, default_value_t = Encoder::Plain)]
    pub encoder: Encoder,
    /// MobileNetV2 blocks kept (1–17; 17 ends at 320 channels, stride 32).
    #[arg(long, default_value_t = 17)]
    pub blocks: usize,
    /// ImageNet weights for the MobileNetV2 encoder: a TFLite MobileNetV2 1.0
    /// (e.g. ../shared/weights/mobilenet-v2-imagenet/mobilenet_v2_1.0_224_quant.tflite).
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Keep the stem and the first N MobileNetV2 blocks as loaded.
    #[arg(long, default_value_t = 0)]
    pub freeze_blocks: usize,
    /// Train the encoder on the findings loss only (the decoder learns to read
    /// its features without changing them).
    #[arg(long)]
    pub detach_text: bool,
    /// Learning rate of the MobileNetV2 backbone, as a fraction of `--lr`.
    #[arg(long, default_value_t = 0.1)]
    pub backbone_lr: f64,
    /// Encoder channels per stage, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,96,128")]
    pub channels: Vec<usize>,
    #[arg(long, default_value_t = 128)]
    pub embed: usize,
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    #[arg(long, default_value_t = 1.0)]
    pub findings_weight: f64,
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    #[arg(long, default_value_t = 3)]
    pub min_count: usize,
    /// Patients held out (half validation, half test), as a percentage.
    #[arg(long, default_value_t = cxr_edge::nih::HELD_OUT_PERCENT)]
    pub val_percent: u8,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// libtorch intra-op threads (its default spins on small machines).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Do not condition the decoder on the findings head's decisions (the
    /// decoder then has to infer the findings itself; measured to collapse onto
    /// one normal template on the NIH data).
    #[arg(long)]
    pub unconditioned: bool,
    /// Disable training-time augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Continue the run in --out from its last checkpoint and schedule.
    #[arg(long)]
    pub resume: bool,
    /// Initialise the word embeddings from `cxr-train embeddings` output.
    #[arg(long)]
    pub init_embeddings: Option<PathBuf>,
    /// Stop after this many epochs (the run can be continued with --resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Encoder {
    Plain,
    #[value(name = "mobilenet-v2")]
    MobileNetV2,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Decoder {
    Attention,
    Merge,
}

impl Args {
    fn encoder(&self) -> EncoderKind {
        match self.encoder {
            Encoder::Plain => EncoderKind::Plain,
            Encoder::MobileNetV2 => EncoderKind::MobileNetV2 {
                blocks: self.blocks,
            },
        }
    }

    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            model: ModelConfig {
                input_size: self.size,
                encoder: self.encoder(),
                channels: self.channels.clone(),
                decoder: match self.decoder {
                    Decoder::Attention => DecoderKind::Attention,
                    Decoder::Merge => DecoderKind::Merge,
                },
                embed_dim: self.embed,
                hidden: self.hidden,
                attn_dim: 128,
                vocab_size: 0,
                max_len: 40,
                findings_conditioned: !self.unconditioned,
            },
            // MobileNetV2 was trained on images in −1..1: (x − 0.5) / 0.5.
            preprocess: PreprocessOptions {
                size: self.size,
                std: match self.encoder {
                    Encoder::Plain => PreprocessOptions::default().std,
                    Encoder::MobileNetV2 => 0.5,
                },
                ..Default::default()
            },
            pretrained: self.pretrained.clone(),
            freeze_blocks: self.freeze_blocks,
            backbone_lr: self.backbone_lr,
            detach_text: self.detach_text,
            data: DataOptions {
                // `--nih ''` selects true IU pairs (no NIH images).
                nih: self.nih.clone().filter(|p| !p.as_os_str().is_empty()),
                reports: self.reports.clone(),
                val_percent: self.val_percent,
                min_count: self.min_count,
                preset: Preset::Seed,
                max_words: 38,
            },
            augment: (!self.no_augment).then(Augment::default),
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            weight_decay: 0.01,
            warmup: 0.05,
            clip_norm: 1.0,
            dropout: self.dropout,
            findings_weight: self.findings_weight,
            patience: self.patience,
            seed: self.seed,
            threads: self.threads,
            init_embeddings: self.init_embeddings.clone(),
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = a.config();
    let best = train::train(&cfg, &a.out, a.resume, a.stop_after)?;
    println!(
        "best epoch {}: mean AUROC {:.3}, clinical micro-F1 {:.3}, BLEU-4 {:.3}, distinct impressions {}",
        best.epoch,
        best.val.mean_auroc,
        best.val.clinical_vs_labels.micro.f1,
        best.val.text.bleu[3],
        best.val.text.distinct_candidates
    );
    println!("checkpoint: {}", a.out.join("best").display());
    Ok(())
}

/// The default configuration, as `cxr-train train` with no flags would build it.
#[cfg(test)]
pub fn tests_config() -> TrainConfig {
    use clap::Parser;
    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: Args,
    }
    P::parse_from(["cxr-train"]).a.config()
}
