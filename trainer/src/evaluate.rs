//! Validation: generate impressions for held-out images and score them with the
//! shared metrics, plus AUROC of the findings head.

use anyhow::Result;
use cxr_edge::labeller::Mention;
use cxr_edge::metrics::{self, Options, Scores};
use cxr_edge::text::Vocab;
use cxr_edge::Observation;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::data::{Dataset, Sample, Target};
use crate::model::{CxrModel, Mode};
use cxr_edge::corpus::pairing::ReportPool;

/// Everything measured on the validation images in one pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    /// Text metrics against the paired (findings-matched or true) reports.
    pub text: Scores,
    /// Clinical efficacy of the generated text against the images' own labels.
    pub clinical_vs_labels: metrics::ClinicalScores,
    /// AUROC of the findings head per observation (`None`: one class only).
    pub auroc: Vec<(Observation, Option<f64>)>,
    /// Mean AUROC over the nine findings that have both classes.
    pub mean_auroc: f64,
    /// Per-observation findings scores (sigmoid), for threshold selection.
    #[serde(skip)]
    pub scores: Vec<[f32; Observation::COUNT]>,
    /// Generated impressions, in validation order.
    pub generated: Vec<String>,
}

/// The report each validation image is scored against: its own report for true
/// pairs, else a deterministic findings-matched pick from the validation reports.
pub fn val_references<'a>(
    samples: &[Sample],
    reports: &'a [Target],
    pool: &ReportPool,
    seed: u64,
) -> Vec<&'a Target> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    samples
        .iter()
        .map(|s| match s.own_report {
            Some(i) => &reports[i],
            None => {
                let (i, _) = pool
                    .pick(cxr_edge::corpus::pairing::mask_from_labels(&s.labels), &mut rng)
                    .expect("non-empty validation pool");
                &reports[i]
            }
        })
        .collect()
}

/// Encode and greedily decode `images` (`[N, 1, S, S]`) in batches.
pub fn generate(
    model: &CxrModel,
    vocab: &Vocab,
    images: &Tensor,
    batch: i64,
    text: bool,
) -> (Vec<String>, Vec<[f32; Observation::COUNT]>) {
    let _guard = tch::no_grad_guard();
    let n = images.size()[0];
    let mut texts = Vec::with_capacity(n as usize);
    let mut scores = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let enc = model.encode(&images.narrow(0, start, len), Mode::Eval);
        let probs: Vec<f32> = Vec::try_from(
            enc.findings
                .sigmoid()
                .to_kind(Kind::Float)
                .contiguous()
                .view([-1]),
        )
        .expect("findings scores");
        for row in probs.chunks(Observation::COUNT) {
            let mut a = [0f32; Observation::COUNT];
            a.copy_from_slice(row);
            scores.push(a);
        }
        if text {
            let (tokens, _) = model.greedy(&enc, Vocab::BOS as i64, Vocab::EOS as i64);
            texts.extend(tokens.iter().map(|t| vocab.decode(t)));
        }
        start += len;
    }
    (texts, scores)
}

/// Run the full validation.
pub fn validate(
    model: &CxrModel,
    data: &Dataset,
    images: &Tensor,
    batch: i64,
) -> Result<Validation> {
    // Thresholds first (chosen on these validation scores, as the bundle does),
    // so a findings-conditioned decoder writes from the flags the device shows.
    let (_, scores) = generate(model, &data.vocab, images, batch, false);
    model.set_thresholds(&choose_thresholds(&scores, &data.val));
    let (generated, _) = generate(model, &data.vocab, images, batch, true);
    let (text, clinical_vs_labels) = score_texts(data, &generated)?;
    let auroc: Vec<(Observation, Option<f64>)> = Observation::ALL
        .iter()
        .map(|&o| {
            let s: Vec<f32> = scores.iter().map(|r| r[o.index()]).collect();
            let l: Vec<bool> = data.val.iter().map(|x| x.labels[o.index()]).collect();
            (o, metrics::auroc(&s, &l))
        })
        .collect();
    let finite: Vec<f64> = auroc
        .iter()
        .filter(|(o, _)| *o != Observation::NoFinding)
        .filter_map(|(_, a)| *a)
        .collect();
    let mean_auroc = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
    Ok(Validation {
        text,
        clinical_vs_labels,
        auroc,
        mean_auroc,
        scores,
        generated,
    })
}

/// Score generated texts for the validation images: text metrics against the
/// paired reports, clinical efficacy against the images' own labels.
pub fn score_texts(
    data: &Dataset,
    generated: &[String],
) -> Result<(Scores, metrics::ClinicalScores)> {
    let refs = val_references(&data.val, &data.val_reports, &data.val_pool, 7);
    let ref_texts: Vec<String> = refs.iter().map(|t| t.text.clone()).collect();
    let opts = Options::default();
    let text = metrics::evaluate_with(generated, &ref_texts, &opts)?;
    let given: Vec<metrics::FindingMentions> = data
        .val
        .iter()
        .map(|s| {
            let mut m = [Mention::Negative; 9];
            for (i, o) in Observation::FINDINGS.iter().enumerate() {
                if s.labels[o.index()] {
                    m[i] = Mention::Positive;
                }
            }
            m
        })
        .collect();
    let clinical = metrics::evaluate_with_labels(generated, &ref_texts, &given, &opts)?.clinical;
    Ok((text, clinical))
}

/// The floors for image-conditioned generation on the validation images:
/// the most frequent training impression for every image, and the impression
/// paired with the nearest training image (cosine on 32×32 thumbnails).
pub fn image_baselines(
    data: &Dataset,
    train_images: &Tensor,
    val_images: &Tensor,
) -> Result<Vec<(String, Scores, metrics::ClinicalScores)>> {
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for t in &data.train_reports {
        *counts.entry(t.text.as_str()).or_default() += 1;
    }
    let most = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(t, _)| t.to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    let frequent = vec![most; data.val.len()];
    let (s, c) = score_texts(data, &frequent)?;
    out.push(("most frequent impression".to_string(), s, c));

    let _g = tch::no_grad_guard();
    let thumb = |x: &Tensor| {
        let t = x.adaptive_avg_pool2d([32, 32]).flatten(1, -1);
        let t = &t - t.mean_dim(1, true, Kind::Float);
        &t / t.norm_scalaropt_dim(2, [1], true).clamp_min(1e-6)
    };
    let sim = thumb(val_images).matmul(&thumb(train_images).transpose(0, 1));
    let nearest: Vec<i64> = Vec::try_from(sim.argmax(1, false)).expect("indices");
    let train_refs = val_references(&data.train, &data.train_reports, &data.train_pool, 11);
    let nn: Vec<String> = nearest
        .iter()
        .map(|&i| train_refs[i as usize].text.clone())
        .collect();
    let (s, c) = score_texts(data, &nn)?;
    out.push(("nearest training image (32 px cosine)".to_string(), s, c));
    Ok(out)
}

/// Per-observation threshold maximising F1 on validation scores (0.5 when an
/// observation has no positives).
pub fn choose_thresholds(
    scores: &[[f32; Observation::COUNT]],
    samples: &[Sample],
) -> [f32; Observation::COUNT] {
    let mut out = [0.5f32; Observation::COUNT];
    for o in Observation::ALL {
        let i = o.index();
        let pos = samples.iter().filter(|s| s.labels[i]).count();
        if pos == 0 {
            continue;
        }
        let mut best = (0f64, 0.5f32);
        for step in 1..100 {
            let t = step as f32 / 100.0;
            let (mut tp, mut fp) = (0usize, 0usize);
            for (s, x) in scores.iter().zip(samples) {
                if s[i] >= t {
                    if x.labels[i] {
                        tp += 1;
                    } else {
                        fp += 1;
                    }
                }
            }
            let f1 = 2.0 * tp as f64 / (2 * tp + fp + (pos - tp)) as f64;
            if f1 > best.0 {
                best = (f1, t);
            }
        }
        out[i] = best.1;
    }
    out
}
