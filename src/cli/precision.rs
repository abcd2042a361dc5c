//! `precision`: does a bundle's reduced-precision artefact (int8 or f16) say
//! what its fp32 artefact says?
//!
//! Both artefacts run through the whole device path (decode, preprocess,
//! encoder, greedy decoding with the repetition guard, thresholds) on labelled
//! radiographs, on this CPU. Reported: the share of images whose impression is
//! identical, the share of finding flags that agree, the largest score gap, and
//! each finding's AUROC under both precisions against the labels. `--check`
//! turns the acceptance bounds (agreement ≥ 95 %, every AUROC within 0.01) into
//! the exit status.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context};
use cxr_edge::bundle::Precision;
use cxr_edge::input::{self, ValidateOptions};
use cxr_edge::metrics::auroc;
use cxr_edge::nih::{self, NihImage};
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::{Observation, Report};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Folder holding `labels.csv` and the images it lists (NIH ChestX-ray14 layout).
    #[arg(long)]
    pub labels: PathBuf,
    /// Only these images: a trainer `splits.json` (its `val_images`) or a text
    /// file with one image id (file stem) per line.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// At most this many images (after `--ids`), in list order.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Bundle folder; default as for `report`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The artefact compared with fp32: int8 or f16.
    #[arg(long, default_value = "int8")]
    pub precision: Precision,
    /// Exit non-zero unless ≥ `--min-agreement` of impressions are identical and
    /// every finding's AUROC moves by at most `--max-auroc-delta`.
    #[arg(long)]
    pub check: bool,
    #[arg(long, default_value_t = 0.95)]
    pub min_agreement: f64,
    #[arg(long, default_value_t = 0.01)]
    pub max_auroc_delta: f64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read films even if they do not look like frontal chest radiographs.
    #[arg(long)]
    pub force: bool,
}

/// One finding's AUROC under both precisions.
#[derive(Debug, Serialize)]
struct FindingAuroc {
    observation: Observation,
    positives: usize,
    fp32: Option<f64>,
    reduced: Option<f64>,
    delta: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Summary {
    model_id: String,
    arch: &'static str,
    precision: Precision,
    images: usize,
    skipped: Vec<String>,
    identical_impressions: usize,
    agreement: f64,
    flag_agreement: f64,
    max_score_delta: f32,
    mean_auroc_fp32: f64,
    mean_auroc_reduced: f64,
    max_auroc_delta: f64,
    auroc: Vec<FindingAuroc>,
    distinct_impressions_fp32: usize,
    distinct_impressions_reduced: usize,
    median_encoder_ms_fp32: f64,
    median_encoder_ms_reduced: f64,
    differing: Vec<(String, String, String)>,
}

/// Image ids from a trainer `splits.json` or a plain list.
fn read_ids(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        let list = v
            .get("val_images")
            .and_then(|l| l.as_array())
            .with_context(|| format!("{}: no `val_images` list", path.display()))?;
        return list
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .with_context(|| format!("{}: `val_images` holds a non-string", path.display()))
            })
            .collect();
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn select(args: &Args) -> anyhow::Result<Vec<NihImage>> {
    let all = nih::read_labels(&args.labels)?;
    let mut images = match &args.ids {
        None => all,
        Some(path) => {
            let ids = read_ids(path)?;
            let by_id: std::collections::HashMap<&str, &NihImage> =
                all.iter().map(|i| (i.id.as_str(), i)).collect();
            let missing: Vec<&str> = ids
                .iter()
                .map(String::as_str)
                .filter(|id| !by_id.contains_key(id))
                .collect();
            if !missing.is_empty() {
                bail!(
                    "{}: {} ids are not in {} (first: {})",
                    path.display(),
                    missing.len(),
                    args.labels.join("labels.csv").display(),
                    missing[0]
                );
            }
            ids.iter().map(|id| by_id[id.as_str()].clone()).collect()
        }
    };
    if let Some(n) = args.limit {
        images.truncate(n);
    }
    if images.is_empty() {
        bail!("no images selected");
    }
    Ok(images)
}

fn open(args: &Args, precision: Precision) -> anyhow::Result<Reporter> {
    let bundle = super::resolve_bundle(args.model.as_deref())?;
    // Both artefacts judge every film: a film near the view check's limit
    // must not drop out of one side of the comparison.
    let options = ReporterOptions {
        precision: Some(precision),
        force: true,
        ..ReporterOptions::default()
    };
    Reporter::open(&bundle, &options).with_context(|| {
        format!(
            "cannot load the {precision} artefact of {}",
            bundle.display()
        )
    })
}

fn score(report: &Report, o: Observation) -> f32 {
    report
        .findings
        .iter()
        .find(|f| f.observation == o)
        .map_or(0.0, |f| f.score)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let images = select(&args)?;
    let fp32 = open(&args, Precision::Fp32)?;
    if args.precision == Precision::Fp32 {
        bail!("--precision fp32: compare int8 or f16 with fp32");
    }
    let reduced = open(&args, args.precision)?;
    let validate = ValidateOptions {
        force: args.force,
        ..ValidateOptions::default()
    };
    let mut pairs: Vec<(&NihImage, Report, Report)> = Vec::new();
    let mut skipped = Vec::new();
    for (n, image) in images.iter().enumerate() {
        let result = input::decode_file(&image.path, &validate)
            .map_err(anyhow::Error::from)
            .and_then(|r| Ok((fp32.report(&r)?, reduced.report(&r)?)));
        match result {
            Ok((a, b)) => pairs.push((image, a, b)),
            Err(e) => {
                eprintln!("skipped {}: {}", image.path.display(), super::chain(&e));
                skipped.push(image.path.display().to_string());
            }
        }
        if (n + 1) % 25 == 0 {
            eprintln!("{}/{} images", n + 1, images.len());
        }
    }
    if pairs.is_empty() {
        bail!("none of the {} images could be read", images.len());
    }
    let summary = summarise(fp32.model_id(), args.precision, &pairs, skipped);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", table(&summary));
    }
    if args.check {
        if summary.agreement < args.min_agreement {
            bail!(
                "{} and fp32 impressions agree on {:.1} % of images, below {:.1} %",
                args.precision,
                summary.agreement * 100.0,
                args.min_agreement * 100.0
            );
        }
        if summary.max_auroc_delta > args.max_auroc_delta {
            bail!(
                "a finding's AUROC moves by {:.4} under {}, above {}",
                summary.max_auroc_delta,
                args.precision,
                args.max_auroc_delta
            );
        }
    }
    Ok(())
}

fn summarise(
    model_id: &str,
    precision: Precision,
    pairs: &[(&NihImage, Report, Report)],
    skipped: Vec<String>,
) -> Summary {
    let n = pairs.len();
    let identical = pairs
        .iter()
        .filter(|(_, a, b)| a.impression == b.impression)
        .count();
    let mut flags = (0usize, 0usize);
    let mut max_score_delta = 0f32;
    for (_, a, b) in pairs {
        for (fa, fb) in a.findings.iter().zip(&b.findings) {
            flags.1 += 1;
            flags.0 += usize::from(fa.flagged == fb.flagged);
            max_score_delta = max_score_delta.max((fa.score - fb.score).abs());
        }
    }
    let fp32: Vec<&Report> = pairs.iter().map(|p| &p.1).collect();
    let reduced: Vec<&Report> = pairs.iter().map(|p| &p.2).collect();
    let auroc: Vec<FindingAuroc> = Observation::FINDINGS
        .iter()
        .map(|&o| {
            let labels: Vec<bool> = pairs.iter().map(|(i, _, _)| i.labels[o.index()]).collect();
            let of = |reports: &[&Report]| {
                let s: Vec<f32> = reports.iter().map(|r| score(r, o)).collect();
                auroc(&s, &labels)
            };
            let (a, b) = (of(&fp32), of(&reduced));
            FindingAuroc {
                observation: o,
                positives: labels.iter().filter(|&&l| l).count(),
                fp32: a,
                reduced: b,
                delta: a.zip(b).map(|(a, b)| b - a),
            }
        })
        .collect();
    let mean = |pick: fn(&FindingAuroc) -> Option<f64>| {
        let v: Vec<f64> = auroc.iter().filter_map(pick).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let distinct = |reports: &[&Report]| {
        reports
            .iter()
            .map(|r| r.impression.as_str())
            .collect::<HashSet<_>>()
            .len()
    };
    let encoder_ms =
        |reports: &[&Report]| super::median(reports.iter().map(|r| r.timings.encoder_ms).collect());
    Summary {
        model_id: model_id.to_string(),
        arch: std::env::consts::ARCH,
        precision,
        images: n,
        skipped,
        identical_impressions: identical,
        agreement: identical as f64 / n as f64,
        flag_agreement: flags.0 as f64 / flags.1.max(1) as f64,
        max_score_delta,
        mean_auroc_fp32: mean(|f| f.fp32),
        mean_auroc_reduced: mean(|f| f.reduced),
        max_auroc_delta: auroc
            .iter()
            .filter_map(|f| f.delta)
            .fold(0.0, |m, d| m.max(d.abs())),
        auroc,
        distinct_impressions_fp32: distinct(&fp32),
        distinct_impressions_reduced: distinct(&reduced),
        median_encoder_ms_fp32: encoder_ms(&fp32),
        median_encoder_ms_reduced: encoder_ms(&reduced),
        differing: pairs
            .iter()
            .filter(|(_, a, b)| a.impression != b.impression)
            .map(|(i, a, b)| (i.id.clone(), a.impression.clone(), b.impression.clone()))
            .collect(),
    }
}

fn table(s: &Summary) -> String {
    let fmt = |v: Option<f64>| v.map_or("   n/a".to_string(), |v| format!("{v:.4}"));
    let mut out = format!(
        "model {} on {}: {} vs fp32 over {} labelled images ({} skipped)\n",
        s.model_id,
        s.arch,
        s.precision,
        s.images,
        s.skipped.len()
    );
    out += &format!(
        "identical impressions {}/{} = {:.1} %; finding flags agree {:.2} %; max |Δ score| {:.4}\n",
        s.identical_impressions,
        s.images,
        s.agreement * 100.0,
        s.flag_agreement * 100.0,
        s.max_score_delta
    );
    out += &format!(
        "distinct impressions fp32 {}, {p} {}; median encoder {:.2} ms fp32, {:.2} ms {p}\n",
        s.distinct_impressions_fp32,
        s.distinct_impressions_reduced,
        s.median_encoder_ms_fp32,
        s.median_encoder_ms_reduced,
        p = s.precision
    );
    out += &format!(
        "finding            pos    fp32  {:>6}       Δ\n",
        s.precision.name()
    );
    for f in &s.auroc {
        out += &format!(
            "{:<17} {:>4}  {}  {}  {}\n",
            f.observation.key(),
            f.positives,
            fmt(f.fp32),
            fmt(f.reduced),
            f.delta.map_or("   n/a".into(), |d| format!("{d:+.4}"))
        );
    }
    out += &format!(
        "mean AUROC        {:>4}  {:.4}  {:.4}  {:+.4} (max |Δ| {:.4})\n",
        "",
        s.mean_auroc_fp32,
        s.mean_auroc_reduced,
        s.mean_auroc_reduced - s.mean_auroc_fp32,
        s.max_auroc_delta
    );
    for (id, a, b) in s.differing.iter().take(10) {
        out += &format!("differs {id}: fp32 {a:?} | {} {b:?}\n", s.precision);
    }
    out
}
