//! `cxr-train eval`: a checkpoint's validation numbers next to the baselines.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cxr_edge::ModelConfig;
use tch::nn;

use crate::data;
use crate::evaluate;
use crate::model::CxrModel;
use crate::train::TrainConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Run folder written by `cxr-train train`.
    pub run: PathBuf,
    /// Checkpoint inside the run: `best` or `last`.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Baselines JSON written by `cxr-train baseline --out` (optional).
    #[arg(long)]
    pub baselines: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Also decode with beam search of this width (the device's decode policy).
    #[arg(long)]
    pub beam: Option<usize>,
    /// Write the table as Markdown here too.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    tch::set_num_threads(a.threads as i32);
    let cfg: TrainConfig = serde_json::from_slice(
        &std::fs::read(a.run.join("config.json"))
            .with_context(|| format!("reading {}/config.json", a.run.display()))?,
    )?;
    let ckpt = a.run.join(&a.checkpoint);
    let model_cfg: ModelConfig = serde_json::from_slice(
        &std::fs::read(ckpt.join("config.json"))
            .with_context(|| format!("reading {}/config.json", ckpt.display()))?,
    )?;
    let mut data = data::load(&cfg.data)?;
    data.vocab = cxr_edge::text::Vocab::load(&ckpt.join("vocab.json"))?;
    for t in data
        .train_reports
        .iter_mut()
        .chain(data.val_reports.iter_mut())
    {
        t.tokens = data.vocab.encode(&t.text);
    }
    let cache = std::env::var_os("CXR_CACHE").map(|c| PathBuf::from(c).join("image-cache"));
    let images = data::image_tensor(&data.val, &cfg.preprocess, cache.as_deref())?;
    let train_images = data::image_tensor(&data.train, &cfg.preprocess, cache.as_deref())?;
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let model = CxrModel::new(&vs.root(), &model_cfg, 0.0);
    vs.load(ckpt.join("model.safetensors"))
        .with_context(|| format!("loading {}/model.safetensors", ckpt.display()))?;
    let v = evaluate::validate(&model, &data, &images, 64)?;
    let mut table = String::new();
    table.push_str(&format!("{}\n\n", data.provenance));
    table.push_str("| system | BLEU-1 | BLEU-4 | ROUGE-L | CIDEr-D | clinical micro-F1 vs labels | distinct | mean AUROC |\n");
    table.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    if let Some(p) = &a.baselines {
        let b: serde_json::Value = serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )?;
        table.push_str(&baseline_rows(&b));
    }
    for (name, s, c) in evaluate::image_baselines(&data, &train_images, &images)? {
        table.push_str(&format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | – |\n",
            s.bleu[0], s.bleu[3], s.rouge_l, s.cider_d, c.micro.f1, s.distinct_candidates
        ));
    }
    table.push_str(&format!(
        "| {} ({:?}, {} px) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.3} |\n",
        a.run.display(),
        model_cfg.decoder,
        model_cfg.input_size,
        v.text.bleu[0],
        v.text.bleu[3],
        v.text.rouge_l,
        v.text.cider_d,
        v.clinical_vs_labels.micro.f1,
        v.text.distinct_candidates,
        v.mean_auroc
    ));
    if let Some(width) = a.beam {
        let texts = beam_texts(&model, &data, &images, width)?;
        let (s, c) = evaluate::score_texts(&data, &texts)?;
        table.push_str(&format!(
            "| {} beam {width} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.3} |\n",
            a.run.display(),
            s.bleu[0],
            s.bleu[3],
            s.rouge_l,
            s.cider_d,
            c.micro.f1,
            s.distinct_candidates,
            v.mean_auroc
        ));
    }
    table.push_str(
        "\nPer-observation AUROC of the findings head:\n\n| observation | AUROC |\n| --- | --- |\n",
    );
    for (o, x) in &v.auroc {
        table.push_str(&format!(
            "| {} | {} |\n",
            o.display_name(),
            x.map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "n/a (one class)".into())
        ));
    }
    table.push_str(
        "\nClinical efficacy counts uncertain mentions as negative (the R2Gen convention).\n",
    );
    println!("{table}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &table).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Table rows from the baselines JSON (`[{ "name", "scores" }]` or `{ name: scores }`).
fn baseline_rows(b: &serde_json::Value) -> String {
    let entries: Vec<(String, &serde_json::Value)> = match b {
        serde_json::Value::Array(v) => v
            .iter()
            .map(|e| {
                let name = e
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("baseline")
                    .to_string();
                (name, e.get("scores").unwrap_or(e))
            })
            .collect(),
        serde_json::Value::Object(m) => m
            .get("rows")
            .or_else(|| m.get("baselines"))
            .map(return_rows)
            .unwrap_or_else(|| m.iter().map(|(k, v)| (k.clone(), v)).collect()),
        _ => Vec::new(),
    };
    let num = |v: &serde_json::Value, path: &[&str]| {
        let mut cur = v;
        for p in path {
            cur = match p.parse::<usize>() {
                Ok(i) => &cur[i],
                Err(_) => &cur[*p],
            };
        }
        cur.as_f64()
            .map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "–".into())
    };
    entries
        .iter()
        .map(|(name, s)| {
            format!(
                "| {name} (IU text, by indication) | {} | {} | {} | {} | {} | {} | – |\n",
                num(s, &["bleu", "0"]),
                num(s, &["bleu", "3"]),
                num(s, &["rouge_l"]),
                num(s, &["cider_d"]),
                num(s, &["clinical", "micro", "f1"]),
                s["distinct_candidates"]
            )
        })
        .collect()
}

fn return_rows(inner: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
    match inner {
        serde_json::Value::Array(v) => v
            .iter()
            .map(|e| {
                (
                    e.get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("baseline")
                        .to_string(),
                    e.get("scores").unwrap_or(e),
                )
            })
            .collect(),
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => Vec::new(),
    }
}

/// Beam-search texts for the validation images through the device's decoder
/// policy over the libtorch model (thresholds already set by `validate`).
fn beam_texts(
    model: &CxrModel,
    data: &data::Dataset,
    images: &tch::Tensor,
    width: usize,
) -> Result<Vec<String>> {
    use cxr_edge::decode::{self, DecodeOptions, Strategy};
    use cxr_edge::runtime::Runtime;
    use cxr_edge::text::Vocab;
    let rt = crate::tch_runtime::TchRuntime { model };
    let mut opts = DecodeOptions::new(Vocab::BOS, Vocab::EOS, model.config.max_len)
        .with_strategy(Strategy::Beam { width });
    opts.suppress = vec![Vocab::PAD, Vocab::UNK];
    let mut out = Vec::new();
    for i in 0..images.size()[0] {
        let pixels: Vec<f32> = Vec::try_from(images.get(i).contiguous().view([-1]))?;
        let enc = rt.encode(&pixels)?;
        let d = decode::decode(&rt, &enc, &opts)?;
        out.push(data.vocab.decode(&d.tokens));
    }
    Ok(out)
}
