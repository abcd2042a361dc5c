//! `cxr-train bundle`: a trained run's best checkpoint → a verified device bundle
//! (ONNX export, NNEF compilation, thresholds, provenance, parity file), in one
//! command.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cxr_edge::bundle::{self, BuildOptions, ObservationThreshold};
use cxr_edge::text::Vocab;
use cxr_edge::Observation;

use crate::train::TrainConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Run folder written by `cxr-train train` (uses its `best/` checkpoint).
    pub run: PathBuf,
    /// Output bundle folder, e.g. models/cxr-attn-224-v1.
    #[arg(long)]
    pub out: PathBuf,
    /// Model id written into the manifest (default: the output folder's name).
    #[arg(long)]
    pub id: Option<String>,
    /// A radiograph whose preprocessed pixels go into parity.json (default: a
    /// synthetic image).
    #[arg(long)]
    pub parity_image: Option<PathBuf>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

pub fn run(a: Args) -> Result<()> {
    let best = a.run.join("best");
    let cfg: TrainConfig = read_json(&a.run.join("config.json"))?;
    let thresholds: serde_json::Map<String, serde_json::Value> =
        read_json(&best.join("thresholds.json"))?;
    let validation: serde_json::Value = read_json(&best.join("validation.json"))?;
    let provenance = std::fs::read_to_string(best.join("provenance.txt")).unwrap_or_default();
    let id =
        a.id.clone()
            .or_else(|| a.out.file_name().map(|n| n.to_string_lossy().into_owned()))
            .context("no model id")?;
    let mut opts = BuildOptions::new(id, Vocab::BOS, Vocab::EOS);
    opts.preprocess = cfg.preprocess.clone();
    opts.thresholds = Observation::ALL
        .iter()
        .filter_map(|o| {
            thresholds
                .get(o.key())
                .and_then(|v| v.as_f64())
                .map(|t| ObservationThreshold {
                    observation: *o,
                    threshold: t as f32,
                })
        })
        .collect();
    opts.provenance = serde_json::json!({
        "pairs": provenance,
        "data": cfg.data,
        "training": {
            "epochs": cfg.epochs, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
            "augment": cfg.augment.is_some(),
        },
    });
    let mut metrics = validation.clone();
    if let Some(v) = metrics.get_mut("val") {
        if let Some(o) = v.as_object_mut() {
            o.remove("generated");
        }
    }
    opts.metrics = metrics;
    if let Some(p) = &a.parity_image {
        let img = image::open(p).with_context(|| format!("decoding {}", p.display()))?;
        opts.parity_image = Some(cfg.preprocess.apply(&cxr_edge::preprocess::to_gray16(&img)));
    }
    let b = bundle::build(&best, &best.join("vocab.json"), &opts, &a.out)?;
    println!("{}", b.describe());
    Ok(())
}
