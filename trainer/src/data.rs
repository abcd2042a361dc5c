//! Training data: NIH radiographs with labels, IU report targets, splits and the
//! decoded-image cache.
//!
//! Two settings read the real layouts unchanged:
//! - **Findings-matched** (what these machines have): `nih-cxr14/labels.csv` +
//!   `images/*.png`, paired per epoch with IU impressions by findings (see
//!   [`cxr_edge::corpus::pairing`]). Split by patient.
//! - **True pairs** (a user with the full IU collection): `ecgen-radiology/` next to
//!   `NLMCXR_png/`: each study's first image with a file is paired with its own
//!   report; labels for the findings head come from the labeller on the whole report.
//!   Split by study.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cxr_edge::corpus::{self, Split};
use cxr_edge::nih::Holdout;
use cxr_edge::preprocess::PreprocessOptions;
use cxr_edge::text::{self, Preset, Vocab};
use cxr_edge::Observation;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use cxr_edge::corpus::pairing::{self, Mask, ReportPool};

/// One training or validation image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub id: String,
    pub path: PathBuf,
    /// Grouping key for the split (NIH patient id or IU study uid).
    pub group: String,
    /// Labels in `Observation::ALL` order.
    pub labels: [bool; Observation::COUNT],
    /// Index of its own report in the report list (true pairs only).
    pub own_report: Option<usize>,
}

/// One report target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub uid: String,
    /// Normalised impression.
    pub text: String,
    pub tokens: Vec<u32>,
    pub mask: Mask,
}

/// Everything a run trains and validates on.
pub struct Dataset {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub train_reports: Vec<Target>,
    pub val_reports: Vec<Target>,
    pub train_pool: ReportPool,
    pub val_pool: ReportPool,
    pub vocab: Vocab,
    pub true_pairs: bool,
    /// Plain words for the model card and manifest.
    pub provenance: String,
}

/// Where the data lives and how to cut it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataOptions {
    pub nih: Option<PathBuf>,
    pub reports: PathBuf,
    pub val_percent: u8,
    pub min_count: usize,
    pub preset: Preset,
    /// Cap on words per target (longer impressions are cut).
    pub max_words: usize,
}

/// Read the NIH `labels.csv` (columns by name) into samples.
pub fn read_nih(root: &Path) -> Result<Vec<Sample>> {
    Ok(cxr_edge::nih::read_labels(root)?
        .into_iter()
        .map(|i| Sample {
            id: i.id,
            path: i.path,
            group: format!("nih-patient-{}", i.patient),
            labels: i.labels,
            own_report: None,
        })
        .collect())
}

fn target(uid: &str, impression: &str, opts: &DataOptions) -> Target {
    let text: String = text::normalize(impression, opts.preset)
        .split_whitespace()
        .take(opts.max_words)
        .collect::<Vec<_>>()
        .join(" ");
    Target {
        uid: uid.to_string(),
        mask: pairing::mask_from_text(impression),
        text,
        tokens: Vec::new(),
    }
}

/// Load reports (and images, for true pairs), split, build the vocabulary.
pub fn load(opts: &DataOptions) -> Result<Dataset> {
    let collection = corpus::load(&opts.reports)
        .with_context(|| format!("loading reports from {}", opts.reports.display()))?;
    for s in &collection.skipped {
        eprintln!("skipped report {}: {}", s.source, s.reason);
    }
    let mut train_reports = Vec::new();
    let mut val_reports = Vec::new();
    let mut samples = Vec::new();
    for study in &collection.studies {
        let Some(imp) = study.impression.as_deref().filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        let t = target(&study.uid, imp, opts);
        if t.text.is_empty() {
            continue;
        }
        let is_val = corpus::split_of(&study.uid, opts.val_percent) == Split::Val;
        let list = if is_val {
            &mut val_reports
        } else {
            &mut train_reports
        };
        if let Some(path) = study.images.iter().find_map(|i| i.path.clone()) {
            let whole = format!("{} {}", study.findings.as_deref().unwrap_or(""), imp);
            let labels = pairing::labels_from_mask(pairing::mask_from_text(&whole));
            samples.push((
                is_val,
                Sample {
                    id: study.uid.clone(),
                    path,
                    group: study.uid.clone(),
                    labels,
                    own_report: Some(list.len()),
                },
            ));
        }
        list.push(t);
    }
    let true_pairs = !samples.is_empty() && opts.nih.is_none();
    let (train, val, provenance) = if true_pairs {
        let (v, t): (Vec<_>, Vec<_>) = samples.into_iter().partition(|(v, _)| *v);
        (
            t.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
            v.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
            format!(
                "true image-report pairs from {} (split by study, {}% validation)",
                opts.reports.display(),
                opts.val_percent
            ),
        )
    } else {
        let Some(nih) = &opts.nih else {
            bail!(
                "{}: no images beside the reports (NLMCXR_png/) and no --nih folder given",
                opts.reports.display()
            );
        };
        // Patient-level: training, a validation half (checkpoints, thresholds,
        // calibration) and a test half that training never sees.
        let all = read_nih(nih)?;
        let mut t = Vec::new();
        let mut v = Vec::new();
        for s in all {
            let patient = s.group.trim_start_matches("nih-patient-");
            match Holdout::of_patient(patient, opts.val_percent) {
                Holdout::Train => t.push(s),
                Holdout::Validation => v.push(s),
                Holdout::Test => {}
            }
        }
        (
            t,
            v,
            format!(
                "FINDINGS-MATCHED pairs (not true pairs): NIH ChestX-ray14 images from {} \
                 (split by patient) paired with IU impressions from {} (split by study) \
                 whose labeller findings agree with the image labels; {}% of patients held out, \
                 half for validation, half for a test that training never sees",
                nih.display(),
                opts.reports.display(),
                opts.val_percent
            ),
        )
    };
    let vocab = Vocab::build(
        train_reports.iter().map(|t| t.text.as_str()),
        opts.min_count,
    );
    for t in train_reports.iter_mut().chain(val_reports.iter_mut()) {
        t.tokens = vocab.encode(&t.text);
    }
    let train_pool = ReportPool::new(&train_reports.iter().map(|t| t.mask).collect::<Vec<_>>());
    let val_pool = ReportPool::new(&val_reports.iter().map(|t| t.mask).collect::<Vec<_>>());
    if train.is_empty() || val.is_empty() || train_pool.is_empty() || val_pool.is_empty() {
        bail!(
            "not enough data: {} train / {} val images, {} train / {} val reports",
            train.len(),
            val.len(),
            train_reports.len(),
            val_reports.len()
        );
    }
    Ok(Dataset {
        train,
        val,
        train_reports,
        val_reports,
        train_pool,
        val_pool,
        vocab,
        true_pairs,
        provenance,
    })
}

/// Decode and preprocess images once into `[N, 1, S, S]`, cached on disk under
/// `cache_dir` keyed by the file list and the options, so epochs and later runs do
/// not re-decode PNGs.
pub fn image_tensor(
    samples: &[Sample],
    opts: &PreprocessOptions,
    cache_dir: Option<&Path>,
) -> Result<Tensor> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(opts)?);
    for s in samples {
        h.update(s.path.to_string_lossy().as_bytes());
    }
    let key = hex::encode(&h.finalize()[..8]);
    let cache = cache_dir.map(|d| d.join(format!("images-{key}.pt")));
    if let Some(c) = cache.as_ref().filter(|c| c.exists()) {
        if let Ok(t) = Tensor::load(c) {
            return Ok(t);
        }
    }
    let s = opts.size;
    let mut buf = vec![0f32; samples.len() * s * s];
    for (chunk, sample) in buf.chunks_mut(s * s).zip(samples) {
        let img = image::open(&sample.path)
            .with_context(|| format!("decoding {}", sample.path.display()))?;
        opts.apply_into(&cxr_edge::preprocess::to_gray16(&img), chunk);
    }
    let t = Tensor::from_slice(&buf).view([samples.len() as i64, 1, s as i64, s as i64]);
    if let Some(c) = cache {
        std::fs::create_dir_all(c.parent().unwrap())?;
        let tmp = c.with_extension("tmp");
        t.save(&tmp)?;
        std::fs::rename(&tmp, &c)?;
    }
    Ok(t.to_kind(Kind::Float))
}

/// Pad token sequences into `[B, T]` with BOS … EOS.
pub fn batch_tokens(seqs: &[&[u32]], bos: u32, eos: u32) -> Tensor {
    let t = seqs.iter().map(|s| s.len() + 2).max().unwrap_or(2);
    let mut buf = vec![0i64; seqs.len() * t];
    for (row, s) in buf.chunks_mut(t).zip(seqs) {
        row[0] = bos as i64;
        for (o, &w) in row[1..].iter_mut().zip(s.iter()) {
            *o = w as i64;
        }
        row[s.len() + 1] = eos as i64;
    }
    Tensor::from_slice(&buf).view([seqs.len() as i64, t as i64])
}
