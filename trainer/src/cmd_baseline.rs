//! `cxr-train baseline`: score the text-only floors (see [`crate::baseline`]) on the
//! validation split by study, print a table, write `baselines.json` and
//! `baselines.md`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use cxr_edge::corpus::{self, Split};
use cxr_edge::metrics::{self, Scores};
use cxr_edge::text::{normalize, Preset};
use serde::Serialize;

use crate::baseline::{self, Item};

#[derive(clap::Args)]
pub struct Args {
    /// Report collection: `ecgen-radiology/`, its `.tgz`, or the Kaggle CSV folder.
    #[arg(long, default_value = "../shared/data/iu-xray/ecgen-radiology")]
    pub data: PathBuf,
    /// Folder for baselines.json and baselines.md.
    #[arg(long, default_value = "runs/baselines")]
    pub out: PathBuf,
    /// Validation share by study (the trainer's default).
    #[arg(long, default_value_t = 15)]
    pub val_percent: u8,
    /// Seeds the random baseline is averaged over.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    description: String,
    scores: Scores,
    /// Per-seed BLEU-4 and CIDEr-D of the random baseline (its spread).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    per_seed: Vec<(u64, f64, f64)>,
    /// Candidate file written beside the JSON (seed 0 for the random baseline).
    candidates_file: &'static str,
    #[serde(skip)]
    candidates: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    data: PathBuf,
    val_percent: u8,
    train_studies: usize,
    val_studies: usize,
    target: &'static str,
    rows: Vec<Row>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let collection = corpus::load(&a.data)?;
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for s in &collection.studies {
        // The trainer's targets: studies with an impression that survives the
        // seed normalisation.
        let Some(imp) = s
            .impression
            .as_deref()
            .filter(|t| !normalize(t, Preset::Seed).is_empty())
        else {
            continue;
        };
        let item = Item {
            uid: s.uid.clone(),
            indication: s.indication.clone().unwrap_or_default(),
            impression: imp.to_string(),
        };
        match corpus::split_of(&s.uid, a.val_percent) {
            Split::Train => train.push(item),
            Split::Val => val.push(item),
        }
    }
    if train.is_empty() || val.is_empty() {
        bail!(
            "{}: {} training and {} validation studies with an impression; need both",
            a.data.display(),
            train.len(),
            val.len()
        );
    }
    let refs: Vec<String> = val.iter().map(|v| v.impression.clone()).collect();
    let score = |cands: &[String]| metrics::evaluate(cands, &refs);

    let top = baseline::most_frequent(&train);
    let mut rows = vec![Row {
        name: "most frequent impression",
        description: format!("every study gets {top:?}"),
        scores: score(&vec![top.clone(); val.len()])?,
        per_seed: Vec::new(),
        candidates_file: "most_frequent.txt",
        candidates: vec![top.clone(); val.len()],
    }];

    let mut runs = Vec::new();
    let mut per_seed = Vec::new();
    let mut first_draw = Vec::new();
    for seed in 0..a.seeds.max(1) {
        let cands = baseline::random(&train, val.len(), seed);
        let s = score(&cands)?;
        per_seed.push((seed, s.bleu[3], s.cider_d));
        runs.push(s);
        if seed == 0 {
            first_draw = cands;
        }
    }
    rows.push(Row {
        name: "random impression",
        description: format!(
            "a uniformly drawn training impression, mean over seeds 0..{}",
            runs.len()
        ),
        scores: baseline::average(&runs),
        per_seed,
        candidates_file: "random_seed0.txt",
        candidates: first_draw,
    });

    let (nn, fallbacks) = baseline::nearest_indication(&train, &val, &top);
    rows.push(Row {
        name: "nearest indication (TF-IDF)",
        description: format!(
            "impression of the training study with the most similar indication \
             (TF-IDF cosine over seed-normalised words); {fallbacks} of {} studies \
             without a shared word fell back to the most frequent impression",
            val.len()
        ),
        scores: score(&nn)?,
        per_seed: Vec::new(),
        candidates_file: "nearest_indication.txt",
        candidates: nn,
    });

    let table =
        metrics::markdown_table(&rows.iter().map(|r| (r.name, &r.scores)).collect::<Vec<_>>());
    let header = format!(
        "Baselines on {} ({} train / {} validation studies, {}% validation by study, \
         target: impression, metrics after seed normalisation)",
        a.data.display(),
        train.len(),
        val.len(),
        a.val_percent
    );
    println!("{header}\n\n{table}");
    let convention = &rows[0].scores.clinical.convention;
    println!("Clinical efficacy: {convention}");

    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut md = format!("# Baselines\n\n{header}\n\n{table}\n");
    for r in &rows {
        md.push_str(&format!("- **{}**: {}\n", r.name, r.description));
    }
    md.push_str(&format!("\nClinical efficacy: {convention}\n"));
    let output = Output {
        data: a.data.clone(),
        val_percent: a.val_percent,
        train_studies: train.len(),
        val_studies: val.len(),
        target: "impression",
        rows,
    };
    // One text per line, same order, so `cxr-train score` can rescore any row.
    let lines = |texts: &mut dyn Iterator<Item = &String>| {
        texts
            .map(|t| t.replace(['\n', '\r'], " ") + "\n")
            .collect::<String>()
    };
    let mut files = vec![
        ("baselines.json", serde_json::to_string_pretty(&output)?),
        ("baselines.md", md),
        ("val_references.txt", lines(&mut refs.iter())),
        ("val_uids.txt", lines(&mut val.iter().map(|v| &v.uid))),
    ];
    for r in &output.rows {
        files.push((r.candidates_file, lines(&mut r.candidates.iter())));
    }
    for (name, text) in files {
        let path = a.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote baselines.json, baselines.md and the candidate/reference texts to {}",
        a.out.display()
    );
    Ok(())
}
