//! `cxr-train calibrate`: choose a run's flag thresholds for a stated operating
//! point and fit each finding's calibration, both on the validation films only,
//! and write them into the best checkpoint (the decoder's conditioning
//! thresholds, `thresholds.json`, `calibration.json`), so the bundle built from
//! it flags, shows and writes what was chosen here.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cxr_edge::calibration::{self, OperatingPoint};
use cxr_edge::{ModelConfig, Observation};
use tch::nn;

use crate::data;
use crate::evaluate;
use crate::model::CxrModel;
use crate::train::TrainConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Run folder written by `cxr-train train` (its `best/` checkpoint is updated).
    pub run: PathBuf,
    /// Where findings are flagged: `specificity:0.85` (the lowest threshold
    /// keeping validation specificity at or above 0.85), `sensitivity:0.8` (the
    /// highest keeping sensitivity at or above 0.8) or `youden`.
    #[arg(long, default_value = "specificity:0.85", value_parser = parse_point)]
    pub operating_point: OperatingPoint,
    /// Folds of the cross-validation that chooses each calibration method.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

fn parse_point(s: &str) -> Result<OperatingPoint, String> {
    match s.split_once(':') {
        None if s == "youden" => Ok(OperatingPoint::Youden),
        Some((kind @ ("sensitivity" | "specificity"), v)) => {
            let v = v
                .parse::<f32>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| format!("`{v}` is not a {kind} in [0, 1]"))?;
            Ok(if kind == "sensitivity" {
                OperatingPoint::Sensitivity(v)
            } else {
                OperatingPoint::Specificity(v)
            })
        }
        _ => Err(format!(
            "`{s}`: expected `youden`, `sensitivity:<0..1>` or `specificity:<0..1>`"
        )),
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

pub fn run(a: Args) -> Result<()> {
    tch::set_num_threads(a.threads as i32);
    let cfg: TrainConfig = read(&a.run.join("config.json"))?;
    let best = a.run.join("best");
    let model_cfg: ModelConfig = read(&best.join("config.json"))?;
    let data = data::load(&cfg.data)?;
    let cache = std::env::var_os("CXR_CACHE").map(|c| PathBuf::from(c).join("image-cache"));
    let images = data::image_tensor(&data.val, &cfg.preprocess, cache.as_deref())?;
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let model = CxrModel::new(&vs.root(), &model_cfg, 0.0);
    vs.load(best.join("model.safetensors"))
        .with_context(|| format!("loading {}/model.safetensors", best.display()))?;
    let vocab = cxr_edge::text::Vocab::load(&best.join("vocab.json"))?;
    let (_, scores) = evaluate::generate(&model, &vocab, &images, 64, false);

    let mut thresholds = [0.5f32; Observation::COUNT];
    let mut out = serde_json::Map::new();
    for o in Observation::ALL {
        let s: Vec<f32> = scores.iter().map(|r| r[o.index()]).collect();
        let l: Vec<bool> = data.val.iter().map(|x| x.labels[o.index()]).collect();
        let Some(t) = calibration::choose_threshold(&s, &l, a.operating_point) else {
            bail!("{}: validation films hold one class only", o.key());
        };
        thresholds[o.index()] = t;
        let choice = calibration::choose(&s, &l, a.folds);
        eprintln!(
            "{:<17} threshold {t:.3}  calibration {:<8} (out-of-fold log loss {})",
            o.key(),
            choice.chosen,
            choice
                .cv_log_loss
                .iter()
                .map(|(m, v)| format!("{m} {v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.insert(o.key().to_string(), serde_json::to_value(&choice)?);
    }
    model.set_thresholds(&thresholds);
    vs.save(best.join("model.safetensors"))?;
    let t: serde_json::Map<_, _> = Observation::ALL
        .iter()
        .map(|o| {
            (
                o.key().to_string(),
                serde_json::json!(thresholds[o.index()]),
            )
        })
        .collect();
    std::fs::write(best.join("thresholds.json"), serde_json::to_vec_pretty(&t)?)?;
    let doc = serde_json::json!({
        "operating_point": a.operating_point.to_string(),
        "validation_films": data.val.len(),
        "observations": out,
    });
    std::fs::write(
        best.join("calibration.json"),
        serde_json::to_vec_pretty(&doc)?,
    )?;
    eprintln!(
        "wrote thresholds ({}) and calibration to {}",
        a.operating_point,
        best.display()
    );
    Ok(())
}
