//! `cxr-edge consistency`: does the impression say what the screen flags?
//!
//! Runs the bundle on the held-out NIH films ([`Holdout`]: the validation half
//! chooses, the test half is scored once) and reads every impression back with
//! the project's labeller:
//! - agreement per film (the text raises exactly the flagged findings) and per
//!   film × finding cell, for the decoder's own text and for the impression the
//!   device shows ([`cxr_edge::impression::compose`]);
//! - how varied the shown impressions are (distinct texts, the commonest one's share);
//! - with `--write`, the confidence bands: per finding, the lowest score at or
//!   above its threshold from which at least `--definite-ppv` of the validation
//!   films scoring that high carry the finding's label (stated without hedging
//!   from there; hedged below; always hedged if no score gets there), and with
//!   `--reports` the sentence bank from the training split of the IU impressions.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use cxr_edge::corpus::pairing;
use cxr_edge::impression::{self, Source};
use cxr_edge::input::{self, ValidateOptions};
use cxr_edge::metrics;
use cxr_edge::nih::{self, Holdout, NihImage};
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::Observation;
use rand::SeedableRng;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub held_out: super::HeldOut,
    /// Share of validation films scoring at least a band's start that must carry
    /// the label for the finding to be stated without hedging.
    #[arg(long, default_value_t = 0.5)]
    pub definite_ppv: f64,
    /// Write the chosen bands into the bundle's manifest.
    #[arg(long)]
    pub write: bool,
    /// Write the evaluation here as JSON.
    #[arg(long)]
    pub eval_out: Option<PathBuf>,
    /// IU reports (`ecgen-radiology/`): score BLEU, ROUGE-L and CIDEr-D of the
    /// decoder's text and of the shown impression against findings-matched
    /// references, picked as the trainer's validation does.
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Write one JSON line per held-out film (its group, labels, flags, the
    /// decoder's text and the shown impression) here, for review.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Words a reference keeps (the trainer's `max_words`).
    #[arg(long, default_value_t = 38)]
    pub max_words: usize,
}

/// One film's outcome.
struct Read {
    group: Holdout,
    labels: [bool; Observation::COUNT],
    scores: [f32; Observation::COUNT],
    flagged: Vec<Observation>,
    generated: String,
    generated_raised: Vec<Observation>,
    shown: String,
    shown_raised: Vec<Observation>,
    composed: bool,
}

fn read_one(reporter: &Reporter, image: &NihImage, group: Holdout) -> anyhow::Result<Read> {
    let opts = ValidateOptions {
        force: true,
        ..ValidateOptions::default()
    };
    let radiograph = input::decode_file(&image.path, &opts)?;
    let (report, stats) = reporter.report_with_stats(&radiograph)?;
    let mut scores = [0f32; Observation::COUNT];
    for f in &report.findings {
        scores[f.observation.index()] = f.score;
    }
    Ok(Read {
        group,
        labels: image.labels,
        scores,
        // In finding order, as `impression::raised` lists them.
        flagged: Observation::FINDINGS
            .into_iter()
            .filter(|o| {
                report
                    .findings
                    .iter()
                    .any(|f| f.observation == *o && f.flagged)
            })
            .collect(),
        generated_raised: impression::raised(&stats.generated),
        generated: stats.generated,
        shown_raised: impression::raised(&report.impression),
        shown: report.impression,
        composed: stats.source == Some(Source::Composed),
    })
}

/// Agreement of one kind of text with the flags.
#[derive(Debug, Serialize)]
struct Agreement {
    films: usize,
    /// Films whose text raises exactly the flagged findings.
    film_rate: f64,
    /// Film × finding cells (nine findings) where text and flag agree.
    cell_rate: f64,
}

fn agreement(reads: &[&Read], text: impl Fn(&Read) -> &Vec<Observation>) -> Agreement {
    let films = reads.len().max(1) as f64;
    let exact = reads.iter().filter(|r| *text(r) == r.flagged).count();
    let cells: usize = reads
        .iter()
        .map(|r| {
            Observation::FINDINGS
                .iter()
                .filter(|o| text(r).contains(o) == r.flagged.contains(o))
                .count()
        })
        .sum();
    Agreement {
        films: reads.len(),
        film_rate: exact as f64 / films,
        cell_rate: cells as f64 / (films * Observation::FINDINGS.len() as f64),
    }
}

#[derive(Debug, Serialize)]
struct GroupEval {
    group: Holdout,
    generated: Agreement,
    shown: Agreement,
    /// Text metrics against findings-matched references (with `--reports`).
    generated_text: Option<metrics::Scores>,
    shown_text: Option<metrics::Scores>,
    /// The decoder's text with its side words removed (what it would score if
    /// it invented no laterality), to tell that cost from the rest.
    generated_without_sides_text: Option<metrics::Scores>,
    /// Shown minus decoder text on the same films, with film-bootstrap 95 %
    /// intervals ([`metrics::paired_differences`]).
    shown_minus_generated: Option<metrics::Differences>,
    composed_share: f64,
    /// Films whose shown impression names a side (left, right, bilateral, …):
    /// nothing in the model supports one, so this must stay 0.
    sided: usize,
    distinct_impressions: usize,
    commonest_impression: String,
    commonest_share: f64,
}

fn evaluate(reads: &[Read], group: Holdout, refs: Option<&[String]>) -> anyhow::Result<GroupEval> {
    let picked: Vec<(&Read, Option<&String>)> = reads
        .iter()
        .enumerate()
        .filter(|(_, r)| r.group == group)
        .map(|(i, r)| (r, refs.map(|refs| &refs[i])))
        .collect();
    let rs: Vec<&Read> = picked.iter().map(|(r, _)| *r).collect();
    let score = |text: &dyn Fn(&Read) -> String| -> anyhow::Result<Option<metrics::Scores>> {
        if refs.is_none() {
            return Ok(None);
        }
        let candidates: Vec<String> = rs.iter().map(|r| text(r)).collect();
        let references: Vec<String> = picked.iter().filter_map(|(_, t)| t.cloned()).collect();
        Ok(Some(metrics::evaluate(&candidates, &references)?))
    };
    let differences = match refs {
        Some(_) => {
            let shown: Vec<String> = rs.iter().map(|r| r.shown.clone()).collect();
            let generated: Vec<String> = rs.iter().map(|r| r.generated.clone()).collect();
            let references: Vec<String> = picked.iter().filter_map(|(_, t)| t.cloned()).collect();
            Some(metrics::paired_differences(
                &shown,
                &generated,
                &references,
                TEXT_RESAMPLES,
                11,
            )?)
        }
        None => None,
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rs {
        *counts.entry(r.shown.as_str()).or_default() += 1;
    }
    let (commonest, n) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(t, n)| (t.to_string(), *n))
        .unwrap_or_default();
    let films = rs.len().max(1) as f64;
    Ok(GroupEval {
        group,
        generated: agreement(&rs, |r| &r.generated_raised),
        shown: agreement(&rs, |r| &r.shown_raised),
        generated_text: score(&|r| r.generated.clone())?,
        shown_text: score(&|r| r.shown.clone())?,
        generated_without_sides_text: score(&|r| impression::without_sides(&r.generated))?,
        shown_minus_generated: differences,
        composed_share: rs.iter().filter(|r| r.composed).count() as f64 / films,
        sided: rs
            .iter()
            .filter(|r| impression::names_a_side(&r.shown))
            .count(),
        distinct_impressions: counts.len(),
        commonest_impression: commonest,
        commonest_share: n as f64 / films,
    })
}

/// The sentence bank from the training split of the IU impressions (the
/// references come from the validation split).
fn sentence_bank(args: &Args) -> anyhow::Result<Option<impression::SentenceBank>> {
    let Some(dir) = &args.reports else {
        return Ok(None);
    };
    let collection = cxr_edge::corpus::load(dir)
        .with_context(|| format!("loading reports from {}", dir.display()))?;
    let train: Vec<&str> = collection
        .studies
        .iter()
        .filter(|s| {
            cxr_edge::corpus::split_of(&s.uid, args.held_out.val_percent)
                == cxr_edge::corpus::Split::Train
        })
        .filter_map(|s| s.impression.as_deref())
        .collect();
    let provenance = format!(
        "{} training-split IU impressions of {} ({} % validation by study)",
        train.len(),
        dir.display(),
        args.held_out.val_percent
    );
    Ok(Some(impression::SentenceBank::build(train, provenance)))
}

/// One findings-matched reference per read film: an IU validation-split
/// impression whose labeller findings match the film's NIH labels (nearest
/// label set when none matches), picked with the trainer's seed in film order.
fn references(args: &Args, reads: &[Read]) -> anyhow::Result<Option<Vec<String>>> {
    let Some(dir) = &args.reports else {
        return Ok(None);
    };
    let collection = cxr_edge::corpus::load(dir)
        .with_context(|| format!("loading reports from {}", dir.display()))?;
    let texts: Vec<(String, pairing::Mask)> = collection
        .studies
        .iter()
        .filter(|s| {
            cxr_edge::corpus::split_of(&s.uid, args.held_out.val_percent)
                == cxr_edge::corpus::Split::Val
        })
        .filter_map(|s| s.impression.as_deref().filter(|t| !t.trim().is_empty()))
        .map(|imp| {
            let text = cxr_edge::text::normalize(imp, cxr_edge::text::Preset::Seed)
                .split_whitespace()
                .take(args.max_words)
                .collect::<Vec<_>>()
                .join(" ");
            (text, pairing::mask_from_text(imp))
        })
        .filter(|(t, _)| !t.is_empty())
        .collect();
    let masks: Vec<pairing::Mask> = texts.iter().map(|(_, m)| *m).collect();
    let pool = pairing::ReportPool::new(&masks);
    if pool.is_empty() {
        bail!("{}: no validation-split impressions", dir.display());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    Ok(Some(
        reads
            .iter()
            .map(|r| {
                let (i, _) = pool
                    .pick(pairing::mask_from_labels(&r.labels), &mut rng)
                    .expect("non-empty pool");
                texts[i].0.clone()
            })
            .collect(),
    ))
}

/// Film resamples for the intervals of the text-metric differences.
const TEXT_RESAMPLES: usize = 500;

/// The largest share of validation films the commonest normal impression may
/// be drawn for (the aim on test films is 25 %; the margin is for sampling).
const COMMONEST_AIM: f64 = 0.2;

/// Fewest validation films a band's precision may rest on.
const MIN_BAND_FILMS: usize = 5;

/// Per finding: the lowest score ≥ its threshold from which the validation
/// films scoring at least that much carry the label at `ppv` or more.
fn bands(
    reads: &[Read],
    thresholds: &[f32; Observation::COUNT],
    ppv: f64,
) -> [Option<f32>; Observation::COUNT] {
    let val: Vec<&Read> = reads
        .iter()
        .filter(|r| r.group == Holdout::Validation)
        .collect();
    let mut out = [None; Observation::COUNT];
    for o in Observation::FINDINGS {
        let i = o.index();
        let mut scored: Vec<(f32, bool)> = val
            .iter()
            .map(|r| (r.scores[i], r.labels[i]))
            .filter(|(s, _)| *s >= thresholds[i])
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Walk up from the threshold: the first start whose tail is precise enough.
        for start in 0..scored.len() {
            let tail = &scored[start..];
            let positives = tail.iter().filter(|(_, l)| *l).count();
            if tail.len() >= MIN_BAND_FILMS && positives as f64 / tail.len() as f64 >= ppv {
                out[i] = Some(scored[start].0);
                break;
            }
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct Evaluation {
    model_id: String,
    definite_ppv: f64,
    definite: BTreeMap<String, Option<f32>>,
    groups: Vec<GroupEval>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.definite_ppv) {
        bail!("--definite-ppv must be in [0, 1]");
    }
    let dir = super::resolve_bundle(args.held_out.model.as_deref())?;
    let open = || {
        Reporter::open(
            &dir,
            &ReporterOptions {
                force: true,
                ..ReporterOptions::default()
            },
        )
        .with_context(|| format!("cannot load the model bundle {}", dir.display()))
    };
    let mut reporter = open()?;
    let images = nih::read_labels(&args.held_out.nih)?;
    let held_out: Vec<(NihImage, Holdout)> = images
        .into_iter()
        .map(|i| {
            let g = Holdout::of_patient(&i.patient, args.held_out.val_percent);
            (i, g)
        })
        .filter(|(_, g)| *g != Holdout::Train)
        .collect();
    if held_out.is_empty() {
        bail!("no held-out films in {}", args.held_out.nih.display());
    }
    let read_all = |reporter: &Reporter| -> anyhow::Result<Vec<Read>> {
        held_out
            .iter()
            .map(|(i, g)| read_one(reporter, i, *g))
            .collect()
    };
    let mut reads = read_all(&reporter)?;
    let mut manifest = cxr_edge::bundle::Bundle::open(&dir)?.manifest().clone();
    let mut thresholds = [cxr_edge::reporter::DEFAULT_THRESHOLD; Observation::COUNT];
    for t in &manifest.observations {
        thresholds[t.observation.index()] = t.threshold;
    }
    let chosen = bands(&reads, &thresholds, args.definite_ppv);
    if args.write {
        for t in manifest.observations.iter_mut() {
            t.definite = chosen[t.observation.index()];
        }
        let path = dir.join(cxr_edge::bundle::MANIFEST);
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
            .with_context(|| format!("writing {}", path.display()))?;
        if let Some(mut bank) = sentence_bank(&args)? {
            let val: Vec<&Read> = reads
                .iter()
                .filter(|r| r.group == Holdout::Validation)
                .collect();
            let clear = val.iter().filter(|r| r.flagged.is_empty()).count();
            bank.choose_normal_draw(clear as f64 / val.len().max(1) as f64, COMMONEST_AIM);
            cxr_edge::bundle::attach_impression_bank(&dir, &bank)?;
        }
        reporter = open()?;
        reads = read_all(&reporter)?;
    }
    let refs = references(&args, &reads)?;
    let eval = Evaluation {
        model_id: reporter.model_id().to_string(),
        definite_ppv: args.definite_ppv,
        definite: Observation::FINDINGS
            .iter()
            .map(|o| (o.key().to_string(), chosen[o.index()]))
            .collect(),
        groups: vec![
            evaluate(&reads, Holdout::Validation, refs.as_deref())?,
            evaluate(&reads, Holdout::Test, refs.as_deref())?,
        ],
    };
    print(&eval);
    if let Some(path) = &args.dump {
        dump(path, &reads, refs.as_deref())?;
    }
    if let Some(path) = &args.eval_out {
        std::fs::write(path, serde_json::to_vec_pretty(&eval)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One JSON line per film.
fn dump(path: &std::path::Path, reads: &[Read], refs: Option<&[String]>) -> anyhow::Result<()> {
    let keys = |os: &[Observation]| os.iter().map(|o| o.key()).collect::<Vec<_>>();
    let mut out = String::new();
    for (i, r) in reads.iter().enumerate() {
        let labelled: Vec<Observation> = Observation::FINDINGS
            .into_iter()
            .filter(|o| r.labels[o.index()])
            .collect();
        let line = serde_json::json!({
            "group": r.group,
            "labels": keys(&labelled),
            "flagged": keys(&r.flagged),
            "generated": r.generated,
            "shown": r.shown,
            "shown_raises": keys(&r.shown_raised),
            "composed": r.composed,
            "reference": refs.map(|refs| &refs[i]),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn print(eval: &Evaluation) {
    println!(
        "impression consistency of {} (bands at PPV ≥ {})",
        eval.model_id, eval.definite_ppv
    );
    for (o, d) in &eval.definite {
        match d {
            Some(d) => println!("  {o:<18} definite from {d:.2}"),
            None => println!("  {o:<18} always hedged"),
        }
    }
    for g in &eval.groups {
        println!(
            "{:?}: {} films; decoder text agrees on {:.1} % of films ({:.1} % of cells); shown impression {:.1} % ({:.1} %); composed {:.1} %; naming a side {}; {} distinct, commonest {:.1} %: {:?}",
            g.group,
            g.shown.films,
            g.generated.film_rate * 100.0,
            g.generated.cell_rate * 100.0,
            g.shown.film_rate * 100.0,
            g.shown.cell_rate * 100.0,
            g.composed_share * 100.0,
            g.sided,
            g.distinct_impressions,
            g.commonest_share * 100.0,
            g.commonest_impression
        );
        if let (Some(a), Some(b)) = (&g.generated_text, &g.shown_text) {
            println!(
                "  vs findings-matched references: decoder text BLEU-1 {:.3} BLEU-4 {:.3} ROUGE-L {:.3} CIDEr-D {:.3}; shown BLEU-1 {:.3} BLEU-4 {:.3} ROUGE-L {:.3} CIDEr-D {:.3}",
                a.bleu[0], a.bleu[3], a.rouge_l, a.cider_d, b.bleu[0], b.bleu[3], b.rouge_l, b.cider_d
            );
        }
        if let Some(a) = &g.generated_without_sides_text {
            println!(
                "  decoder text without its side words: BLEU-1 {:.3} BLEU-4 {:.3} ROUGE-L {:.3} CIDEr-D {:.3}",
                a.bleu[0], a.bleu[3], a.rouge_l, a.cider_d
            );
        }
        if let Some(d) = &g.shown_minus_generated {
            let i = |x: &metrics::Interval| format!("{:+.3} [{:+.3}, {:+.3}]", x.value, x.lo, x.hi);
            println!(
                "  shown − decoder (95 % film-bootstrap intervals): BLEU-1 {} BLEU-4 {} ROUGE-L {} CIDEr-D {}",
                i(&d.bleu_1),
                i(&d.bleu_4),
                i(&d.rouge_l),
                i(&d.cider_d)
            );
        }
    }
}
