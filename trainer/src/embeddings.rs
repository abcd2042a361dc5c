//! In-domain word embeddings from the report corpus (GloVe is not reachable
//! here): positive PMI of word co-occurrences in a ±4-word window over the
//! training split's findings and impressions, factorised by SVD (Levy & Goldberg
//! 2014 showed this matches skip-gram on word similarity). `cxr-train embeddings`
//! writes them; `cxr-train train --init-embeddings` copies them into `dec.emb`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cxr_edge::corpus::{self, Split};
use cxr_edge::text::{self, Preset};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Word vectors by word.
#[derive(Debug, Serialize, Deserialize)]
pub struct Embeddings {
    pub dim: usize,
    pub method: String,
    pub words: BTreeMap<String, Vec<f32>>,
}

#[derive(clap::Args)]
pub struct Args {
    /// IU reports (folder, .tgz or Kaggle CSV).
    #[arg(long, default_value = "../shared/data/iu-xray/ecgen-radiology")]
    pub reports: PathBuf,
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    #[arg(long, default_value_t = 3)]
    pub min_count: usize,
    /// Validation percentage: those studies are left out, as in training.
    #[arg(long, default_value_t = 15)]
    pub val_percent: u8,
    #[arg(long, default_value = "runs/embeddings.json")]
    pub out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let c = corpus::load(&a.reports)?;
    let texts: Vec<String> = c
        .studies
        .iter()
        .filter(|s| corpus::split_of(&s.uid, a.val_percent) == Split::Train)
        .map(|s| {
            let raw = format!(
                "{} {}",
                s.findings.as_deref().unwrap_or(""),
                s.impression.as_deref().unwrap_or("")
            );
            text::normalize(&raw, Preset::Seed)
        })
        .collect();
    let e = fit(&texts, a.dim, a.min_count)?;
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, serde_json::to_vec(&e)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{} words × {} dims → {}",
        e.words.len(),
        e.dim,
        a.out.display()
    );
    Ok(())
}

/// PPMI + truncated SVD over normalised texts.
pub fn fit(texts: &[String], dim: usize, min_count: usize) -> Result<Embeddings> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in texts {
        for w in t.split_whitespace() {
            *counts.entry(w).or_default() += 1;
        }
    }
    let words: Vec<&str> = counts
        .iter()
        .filter(|(_, &n)| n >= min_count)
        .map(|(w, _)| *w)
        .collect();
    let v = words.len();
    if v <= dim {
        bail!("only {v} words occur {min_count}+ times: too few for {dim} dimensions");
    }
    let index: BTreeMap<&str, usize> = words.iter().enumerate().map(|(i, w)| (*w, i)).collect();
    let mut co = vec![0f32; v * v];
    for t in texts {
        let ids: Vec<usize> = t
            .split_whitespace()
            .filter_map(|w| index.get(w).copied())
            .collect();
        for (i, &a) in ids.iter().enumerate() {
            for &b in ids.iter().skip(i + 1).take(4) {
                co[a * v + b] += 1.0;
                co[b * v + a] += 1.0;
            }
        }
    }
    let m = Tensor::from_slice(&co).view([v as i64, v as i64]);
    let total = m.sum(Kind::Float);
    let row = m.sum_dim_intlist(1, true, Kind::Float);
    let col = m.sum_dim_intlist(0, true, Kind::Float);
    let pmi = ((&m * &total) / (row * col).clamp_min(1e-12))
        .clamp_min(1e-12)
        .log();
    let ppmi = pmi
        .where_self(&m.gt(0.0), &Tensor::zeros_like(&m))
        .clamp_min(0.0);
    let (u, s, _) = ppmi.svd(true, true);
    let emb = u.narrow(1, 0, dim as i64) * s.narrow(0, 0, dim as i64).sqrt().unsqueeze(0);
    let flat: Vec<f32> = Vec::try_from(emb.contiguous().view([-1]))?;
    Ok(Embeddings {
        dim,
        method: "PPMI (window 4) + SVD, U·sqrt(S)".into(),
        words: words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), flat[i * dim..(i + 1) * dim].to_vec()))
            .collect(),
    })
}

/// Copy the vectors of known words into an embedding matrix `[V, E]` whose rows
/// follow `vocab` order, rescaled to the matrix's current standard deviation.
/// Returns how many rows were initialised.
pub fn init_matrix(weight: &Tensor, vocab_words: &[String], path: &Path) -> Result<usize> {
    let e: Embeddings = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let width = weight.size()[1] as usize;
    if e.dim != width {
        bail!(
            "{}: {} dimensions, the model embeds in {width}",
            path.display(),
            e.dim
        );
    }
    let all: Vec<f32> = e.words.values().flatten().copied().collect();
    let sd = Tensor::from_slice(&all)
        .std(true)
        .double_value(&[])
        .max(1e-8);
    let target = weight.std(true).double_value(&[]);
    let mut n = 0;
    tch::no_grad(|| {
        for (i, w) in vocab_words.iter().enumerate() {
            if let Some(vec) = e.words.get(w) {
                let row = Tensor::from_slice(vec) * (target / sd);
                weight.get(i as i64).copy_(&row.to_device(weight.device()));
                n += 1;
            }
        }
    });
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_sharing_contexts_end_up_closer() {
        let mut texts = Vec::new();
        for _ in 0..30 {
            texts.push("small left pleural effusion is seen".to_string());
            texts.push("small right pleural effusion is seen".to_string());
            texts.push("heart size is normal and lungs are clear".to_string());
        }
        let e = fit(&texts, 4, 1).unwrap();
        let cos = |a: &str, b: &str| {
            let (x, y) = (&e.words[a], &e.words[b]);
            let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
            let n = |v: &Vec<f32>| v.iter().map(|p| p * p).sum::<f32>().sqrt();
            dot / (n(x) * n(y))
        };
        assert!(cos("left", "right") > cos("left", "heart"));
    }
}
