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
    /// Also build an int8 encoder for aarch64, calibrated on this many training
    /// images of the run (its `splits.json`, spread evenly over the list); 0:
    /// fp32 only.
    #[arg(long, default_value_t = 0)]
    pub calibrate: usize,
    /// CPU targets (e.g. `aarch64`, `aarch64+dotprod`) that run the int8
    /// artefact by default; none: int8 only on request (`cxr-edge … --precision int8`).
    #[arg(long, value_delimiter = ',')]
    pub int8_for: Vec<String>,
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
    // From `cxr-train calibrate`, where it ran.
    let calibration: Option<serde_json::Value> = best
        .join("calibration.json")
        .exists()
        .then(|| read_json(&best.join("calibration.json")))
        .transpose()?;
    // A calibration file that does not parse is an error, not a bundle without
    // calibration.
    let calibration_of = |o: &Observation| -> Result<Option<cxr_edge::calibration::Calibration>> {
        let Some(c) = &calibration else {
            return Ok(None);
        };
        let v = c["observations"][o.key()]["calibration"].clone();
        serde_json::from_value(v)
            .map(Some)
            .with_context(|| format!("{}/calibration.json: {}", best.display(), o.key()))
    };
    let provenance = std::fs::read_to_string(best.join("provenance.txt")).unwrap_or_default();
    let id =
        a.id.clone()
            .or_else(|| a.out.file_name().map(|n| n.to_string_lossy().into_owned()))
            .context("no model id")?;
    let mut opts = BuildOptions::new(id, Vocab::BOS, Vocab::EOS);
    opts.preprocess = cfg.preprocess.clone();
    let mut chosen = Vec::new();
    for o in Observation::ALL {
        if let Some(t) = thresholds.get(o.key()).and_then(|v| v.as_f64()) {
            chosen.push(ObservationThreshold {
                observation: o,
                threshold: t as f32,
                calibration: calibration_of(&o)?,
                definite: None,
            });
        }
    }
    opts.thresholds = chosen;
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
    if let (Some(c), Some(m)) = (&calibration, metrics.as_object_mut()) {
        m.insert("operating_point".into(), c["operating_point"].clone());
    }
    opts.metrics = metrics;
    if let Some(p) = &a.parity_image {
        let img = image::open(p).with_context(|| format!("decoding {}", p.display()))?;
        opts.parity_image = Some(cfg.preprocess.apply(&cxr_edge::preprocess::to_gray16(&img)));
    }
    if a.calibrate > 0 {
        opts.calibration_images = calibration_images(&a.run, &cfg, a.calibrate)?;
        opts.int8_targets = a.int8_for.clone();
    } else if !a.int8_for.is_empty() {
        anyhow::bail!("--int8-for needs --calibrate N (an int8 artefact)");
    }
    let b = bundle::build(&best, &best.join("vocab.json"), &opts, &a.out)?;
    // How each calibration was chosen (out-of-fold log loss per method), for the
    // model card.
    if calibration.is_some() {
        let to = a.out.join("calibration-choice.json");
        std::fs::copy(best.join("calibration.json"), &to)
            .with_context(|| format!("writing {}", to.display()))?;
    }
    println!("{}", b.describe());
    Ok(())
}

/// `n` training images of the run, through the device's own decode and
/// preprocessing, so the int8 ranges are those the board will see.
fn calibration_images(run: &Path, cfg: &TrainConfig, n: usize) -> Result<Vec<Vec<f32>>> {
    let splits: serde_json::Value = read_json(&run.join("splits.json"))?;
    let ids: Vec<&str> = splits
        .get("train_images")
        .and_then(|v| v.as_array())
        .context("splits.json has no `train_images`")?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let root = cfg
        .data
        .nih
        .as_ref()
        .context("the run was not trained on an image folder (no `data.nih`)")?;
    let listed = cxr_edge::nih::read_labels(root)?;
    let by_id: std::collections::HashMap<&str, &Path> = listed
        .iter()
        .map(|i| (i.id.as_str(), i.path.as_path()))
        .collect();
    let n = n.min(ids.len());
    if n == 0 {
        anyhow::bail!("no training images to calibrate on");
    }
    // Training images were accepted by the trainer already; only decode them.
    let validate = cxr_edge::input::ValidateOptions {
        force: true,
        ..Default::default()
    };
    (0..n)
        .map(|k| {
            let id = ids[k * ids.len() / n];
            let path = by_id
                .get(id)
                .with_context(|| format!("training image {id} is not in {}", root.display()))?;
            let r = cxr_edge::input::decode_file(path, &validate)?;
            Ok(cfg.preprocess.apply(&r.image))
        })
        .collect()
}
