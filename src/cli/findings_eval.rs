//! `cxr-edge findings-eval`: how well the bundle's findings hold up, measured on
//! the artefact the device runs (tract), on the held-out NIH films ([`Holdout`]):
//! the validation half (which chose thresholds and calibration in the trainer)
//! and the test half, scored once per shipped model.
//!
//! Per finding: AUROC with a bootstrap 95 % interval (films resampled, the same
//! films for every finding, so the mean's interval is joint), sensitivity,
//! specificity and flag rate at the manifest's threshold, and calibration
//! (expected calibration error of the raw score and of the calibrated
//! probability, reliability bins).

use std::path::PathBuf;

use anyhow::{bail, Context};
use cxr_edge::calibration;
use cxr_edge::input::{self, ValidateOptions};
use cxr_edge::metrics::{self, Interval};
use cxr_edge::nih::{self, Holdout};
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::Observation;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub held_out: super::HeldOut,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Write the evaluation here as JSON.
    #[arg(long)]
    pub eval_out: Option<PathBuf>,
}

/// One film's scores and labels.
struct Film {
    group: Holdout,
    labels: [bool; Observation::COUNT],
    scores: [f32; Observation::COUNT],
    probabilities: [Option<f32>; Observation::COUNT],
    flagged: [bool; Observation::COUNT],
}

#[derive(Debug, Serialize)]
struct FindingEval {
    observation: Observation,
    positives: usize,
    auroc: Option<Interval>,
    threshold: f32,
    sensitivity: Option<f64>,
    specificity: Option<f64>,
    flag_rate: f64,
    ece_score: f64,
    ece_probability: Option<f64>,
    reliability: Vec<calibration::ReliabilityBin>,
}

#[derive(Debug, Serialize)]
struct GroupEval {
    group: Holdout,
    films: usize,
    findings: Vec<FindingEval>,
    /// Mean AUROC over the nine findings (no "no finding"), with its interval.
    mean_auroc: Option<Interval>,
    /// Mean over the nine findings.
    mean_ece_score: f64,
    mean_ece_probability: Option<f64>,
    /// Reliability of the calibrated probability pooled over the nine findings.
    pooled_reliability: Vec<calibration::ReliabilityBin>,
}

#[derive(Debug, Serialize)]
struct Evaluation {
    model_id: String,
    operating_point: serde_json::Value,
    resamples: usize,
    groups: Vec<GroupEval>,
}

fn read_films(reporter: &Reporter, args: &Args) -> anyhow::Result<Vec<Film>> {
    let opts = ValidateOptions {
        force: true,
        ..ValidateOptions::default()
    };
    let mut out = Vec::new();
    for image in nih::read_labels(&args.held_out.nih)? {
        let group = Holdout::of_patient(&image.patient, args.held_out.val_percent);
        if group == Holdout::Train {
            continue;
        }
        let radiograph = input::decode_file(&image.path, &opts)
            .with_context(|| format!("{}", image.path.display()))?;
        let (report, _) = reporter.report_with_stats(&radiograph)?;
        let mut film = Film {
            group,
            labels: image.labels,
            scores: [0.0; Observation::COUNT],
            probabilities: [None; Observation::COUNT],
            flagged: [false; Observation::COUNT],
        };
        for f in &report.findings {
            let i = f.observation.index();
            film.scores[i] = f.score;
            film.probabilities[i] = f.probability;
            film.flagged[i] = f.flagged;
        }
        out.push(film);
    }
    Ok(out)
}

fn rate(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn finding(
    films: &[&Film],
    o: Observation,
    auroc: Option<Interval>,
    threshold: f32,
) -> FindingEval {
    let i = o.index();
    let labels: Vec<bool> = films.iter().map(|f| f.labels[i]).collect();
    let scores: Vec<f32> = films.iter().map(|f| f.scores[i]).collect();
    let pos = labels.iter().filter(|&&l| l).count();
    let tp = films.iter().filter(|f| f.labels[i] && f.flagged[i]).count();
    let tn = films
        .iter()
        .filter(|f| !f.labels[i] && !f.flagged[i])
        .count();
    let flagged = films.iter().filter(|f| f.flagged[i]).count();
    let probs: Option<Vec<f32>> = films.iter().map(|f| f.probabilities[i]).collect();
    let (ece_score, score_bins) = calibration::reliability(&scores, &labels, 10);
    let (ece_probability, reliability) = match &probs {
        Some(p) => {
            let (e, bins) = calibration::reliability(p, &labels, 10);
            (Some(e), bins)
        }
        None => (None, score_bins),
    };
    FindingEval {
        observation: o,
        positives: pos,
        auroc,
        threshold,
        sensitivity: rate(tp, pos),
        specificity: rate(tn, films.len() - pos),
        flag_rate: flagged as f64 / films.len().max(1) as f64,
        ece_score,
        ece_probability,
        reliability,
    }
}

fn evaluate(
    films: &[Film],
    group: Holdout,
    thresholds: &[f32; Observation::COUNT],
    args: &Args,
) -> GroupEval {
    let films: Vec<&Film> = films.iter().filter(|f| f.group == group).collect();
    let nine = Observation::FINDINGS;
    let scores: Vec<Vec<f32>> = films
        .iter()
        .map(|f| nine.iter().map(|o| f.scores[o.index()]).collect())
        .collect();
    let labels: Vec<Vec<bool>> = films
        .iter()
        .map(|f| nine.iter().map(|o| f.labels[o.index()]).collect())
        .collect();
    let (each, mean) = metrics::auroc_intervals(&scores, &labels, args.resamples, 7);
    let findings: Vec<FindingEval> = nine
        .iter()
        .zip(each)
        .map(|(&o, a)| finding(&films, o, a, thresholds[o.index()]))
        .collect();
    let n = findings.len() as f64;
    let mean_ece_score = findings.iter().map(|f| f.ece_score).sum::<f64>() / n;
    let mean_ece_probability = findings
        .iter()
        .map(|f| f.ece_probability)
        .sum::<Option<f64>>()
        .map(|s| s / n);
    let (mut p, mut l) = (Vec::new(), Vec::new());
    for f in &films {
        for o in nine {
            p.push(f.probabilities[o.index()].unwrap_or(f.scores[o.index()]));
            l.push(f.labels[o.index()]);
        }
    }
    GroupEval {
        group,
        films: films.len(),
        findings,
        mean_auroc: mean,
        mean_ece_score,
        mean_ece_probability,
        pooled_reliability: calibration::reliability(&p, &l, 10).1,
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = super::resolve_bundle(args.held_out.model.as_deref())?;
    let options = ReporterOptions {
        force: true,
        ..ReporterOptions::default()
    };
    let reporter = Reporter::open(&dir, &options)
        .with_context(|| format!("cannot load the model bundle {}", dir.display()))?;
    let manifest = cxr_edge::bundle::Bundle::open(&dir)?.manifest().clone();
    let mut thresholds = [cxr_edge::reporter::DEFAULT_THRESHOLD; Observation::COUNT];
    for t in &manifest.observations {
        thresholds[t.observation.index()] = t.threshold;
    }
    let films = read_films(&reporter, &args)?;
    if films.is_empty() {
        bail!("no held-out films in {}", args.held_out.nih.display());
    }
    let eval = Evaluation {
        model_id: manifest.model_id.clone(),
        operating_point: manifest.metrics["operating_point"].clone(),
        resamples: args.resamples,
        groups: [Holdout::Validation, Holdout::Test]
            .into_iter()
            .map(|g| evaluate(&films, g, &thresholds, &args))
            .collect(),
    };
    print(&eval);
    if let Some(p) = &args.eval_out {
        std::fs::write(p, serde_json::to_vec_pretty(&eval)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn interval(i: &Option<Interval>) -> String {
    i.map_or("–".into(), |i| {
        format!("{:.3} [{:.3}, {:.3}]", i.value, i.lo, i.hi)
    })
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{:.0} %", 100.0 * x))
}

fn print(eval: &Evaluation) {
    println!(
        "{}: operating point {}, {} bootstrap resamples",
        eval.model_id, eval.operating_point, eval.resamples
    );
    for g in &eval.groups {
        println!(
            "\n{:?}: {} films, mean AUROC {}, mean ECE {:.3} (score) → {} (probability)",
            g.group,
            g.films,
            interval(&g.mean_auroc),
            g.mean_ece_score,
            g.mean_ece_probability
                .map_or("–".into(), |e| format!("{e:.3}"))
        );
        println!("| finding | positives | AUROC [95 % CI] | sensitivity | specificity | flagged | ECE score → probability |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for f in &g.findings {
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.3} → {} |",
                f.observation.key(),
                f.positives,
                interval(&f.auroc),
                pct(f.sensitivity),
                pct(f.specificity),
                pct(Some(f.flag_rate)),
                f.ece_score,
                f.ece_probability.map_or("–".into(), |e| format!("{e:.3}"))
            );
        }
    }
}
