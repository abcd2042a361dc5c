//! Text-only floors for report generation, scored on the validation split by study:
//! what a model must beat before its image features can be said to help.
//!
//! - **most frequent**: every validation study gets the training set's most common
//!   (seed-normalised) impression;
//! - **random**: a uniformly drawn training impression, over several seeds, averaged;
//! - **nearest indication**: the impression of the training study whose indication
//!   text is closest by TF-IDF cosine (studies without an indication, or with no
//!   shared word, fall back to the most frequent impression).

use std::collections::HashMap;

use cxr_edge::metrics::{self, Scores};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One study as the baselines see it: raw indication and impression.
#[derive(Debug, Clone)]
pub struct Item {
    pub uid: String,
    pub indication: String,
    pub impression: String,
}

/// The training impression that occurs most often after seed normalisation (ties:
/// the alphabetically first), returned in normalised form.
pub fn most_frequent(train: &[Item]) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in train {
        *counts
            .entry(cxr_edge::text::normalize(&t.impression, Default::default()))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(t, _)| !t.is_empty())
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(t, _)| t)
        .unwrap_or_default()
}

/// One random training impression per validation study.
pub fn random(train: &[Item], n: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| train[rng.gen_range(0..train.len())].impression.clone())
        .collect()
}

/// TF-IDF over seed-normalised indication words: raw term counts, smoothed idf
/// `ln((1 + N) / (1 + df)) + 1` (scikit-learn's default), L2-normalised vectors.
pub struct TfIdf {
    idf: HashMap<String, f64>,
    docs: Vec<Vec<(String, f64)>>,
}

impl TfIdf {
    pub fn fit(texts: &[&str]) -> Self {
        let tokenised: Vec<Vec<String>> = texts.iter().map(|t| words(t)).collect();
        let mut df: HashMap<String, usize> = HashMap::new();
        for doc in &tokenised {
            let mut seen: Vec<&String> = doc.iter().collect();
            seen.sort();
            seen.dedup();
            for w in seen {
                *df.entry(w.clone()).or_default() += 1;
            }
        }
        let n = tokenised.len() as f64;
        let idf = df
            .into_iter()
            .map(|(w, d)| (w, ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0))
            .collect();
        let mut model = Self {
            idf,
            docs: Vec::new(),
        };
        model.docs = tokenised.iter().map(|d| model.vector(d)).collect();
        model
    }

    fn vector(&self, doc: &[String]) -> Vec<(String, f64)> {
        let mut tf: HashMap<&str, f64> = HashMap::new();
        for w in doc {
            if self.idf.contains_key(w) {
                *tf.entry(w).or_default() += 1.0;
            }
        }
        let mut v: Vec<(String, f64)> = tf
            .into_iter()
            .map(|(w, c)| (w.to_string(), c * self.idf[w]))
            .collect();
        // Sorting before the sum fixes its order: a norm that varied with hash-map
        // order in the last bit broke exact ties between identical indications.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
        for (_, x) in &mut v {
            *x /= norm;
        }
        v
    }

    /// Index of the most similar fitted document and its cosine; `None` when the
    /// query shares no word with any of them. Ties go to the lowest index.
    pub fn nearest(&self, query: &str) -> Option<(usize, f64)> {
        let q = self.vector(&words(query));
        let mut best: Option<(usize, f64)> = None;
        for (i, d) in self.docs.iter().enumerate() {
            let s = dot(&q, d);
            if s > 0.0 && best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best
    }
}

fn words(text: &str) -> Vec<String> {
    cxr_edge::text::tokenize(text, Default::default())
}

/// Dot product of two vectors sorted by word.
fn dot(a: &[(String, f64)], b: &[(String, f64)]) -> f64 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// Nearest-indication candidates and how many fell back to `fallback`.
pub fn nearest_indication(train: &[Item], val: &[Item], fallback: &str) -> (Vec<String>, usize) {
    let texts: Vec<&str> = train.iter().map(|t| t.indication.as_str()).collect();
    let model = TfIdf::fit(&texts);
    let mut fallbacks = 0;
    let out = val
        .iter()
        .map(|v| match model.nearest(&v.indication) {
            Some((i, _)) => train[i].impression.clone(),
            None => {
                fallbacks += 1;
                fallback.to_string()
            }
        })
        .collect();
    (out, fallbacks)
}

/// Field-wise mean of several score sets of the same references (the random
/// baseline over seeds); confusion counts are rounded means.
pub fn average(runs: &[Scores]) -> Scores {
    let k = runs.len() as f64;
    let mean = |f: &dyn Fn(&Scores) -> f64| runs.iter().map(f).sum::<f64>() / k;
    let mut avg = runs[0].clone();
    avg.distinct_candidates = mean(&|s| s.distinct_candidates as f64).round() as usize;
    for n in 0..4 {
        avg.bleu[n] = mean(&|s| s.bleu[n]);
    }
    avg.rouge_l = mean(&|s| s.rouge_l);
    avg.rouge_l_rouge_score = mean(&|s| s.rouge_l_rouge_score);
    avg.cider_d = mean(&|s| s.cider_d);
    let c = &mut avg.clinical;
    for (o, obs) in c.per_observation.iter_mut().enumerate() {
        let at =
            |f: fn(&metrics::ObservationScore) -> f64| mean(&|s| f(&s.clinical.per_observation[o]));
        obs.tp = at(|x| x.tp as f64).round() as usize;
        obs.fp = at(|x| x.fp as f64).round() as usize;
        obs.fn_ = at(|x| x.fn_ as f64).round() as usize;
        obs.tn = at(|x| x.tn as f64).round() as usize;
        obs.prf.precision = at(|x| x.prf.precision);
        obs.prf.recall = at(|x| x.prf.recall);
        obs.prf.f1 = at(|x| x.prf.f1);
    }
    let avg_prf = |get: fn(&Scores) -> &metrics::Prf| metrics::Prf {
        precision: mean(&|s| get(s).precision),
        recall: mean(&|s| get(s).recall),
        f1: mean(&|s| get(s).f1),
    };
    c.micro = avg_prf(|s| &s.clinical.micro);
    c.macro_avg = avg_prf(|s| &s.clinical.macro_avg);
    avg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(uid: &str, indication: &str, impression: &str) -> Item {
        Item {
            uid: uid.into(),
            indication: indication.into(),
            impression: impression.into(),
        }
    }

    #[test]
    fn most_frequent_counts_normalised_text() {
        let train = [
            item("1", "", "No acute disease."),
            item("2", "", "no acute disease"),
            item("3", "", "Cardiomegaly."),
        ];
        assert_eq!(most_frequent(&train), "no acute disease");
    }

    #[test]
    fn nearest_indication_prefers_rare_shared_words() {
        let train = [
            item("1", "chest pain", "No acute disease."),
            item("2", "shortness of breath and chest pain", "Mild edema."),
            item("3", "positive tb test", "Calcified granuloma."),
        ];
        let val = [
            item("4", "PPD positive, TB screening", ""),
            item("5", "dyspnea", ""),
            item("6", "Breath shortness", ""),
        ];
        let (out, fallbacks) = nearest_indication(&train, &val, "fallback");
        assert_eq!(out, ["Calcified granuloma.", "fallback", "Mild edema."]);
        assert_eq!(fallbacks, 1);
        let m = TfIdf::fit(&["chest pain", "chest pain"]);
        assert_eq!(
            m.nearest("chest pain").map(|(i, _)| i),
            Some(0),
            "ties → first"
        );
        let (_, cos) = m.nearest("pain chest").unwrap();
        assert!((cos - 1.0).abs() < 1e-12);
    }

    #[test]
    fn exact_ties_always_go_to_the_first_study() {
        // Two indications with the same words in different orders, plus documents
        // that give the words different idf weights: the cosine must tie exactly,
        // whatever order a hash map visits the words in.
        let words: Vec<String> = (0..40)
            .map(|i| format!("w{}", char::from(b'a' + i % 26)) + &"x".repeat(i as usize / 26))
            .collect();
        let forward = words.join(" ");
        let backward = words.iter().rev().cloned().collect::<Vec<_>>().join(" ");
        let mut docs = vec![forward.clone(), backward];
        for k in 1..words.len() {
            docs.push(words[..k].join(" "));
        }
        let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
        for _ in 0..200 {
            let m = TfIdf::fit(&docs);
            assert_eq!(m.nearest(&forward).map(|(i, _)| i), Some(0));
        }
    }

    #[test]
    fn random_is_seeded() {
        let train: Vec<Item> = (0..50)
            .map(|i| item("", "", &format!("text {i}")))
            .collect();
        assert_eq!(random(&train, 20, 3), random(&train, 20, 3));
        assert_ne!(random(&train, 20, 3), random(&train, 20, 4));
    }

    #[test]
    fn average_of_identical_runs_is_the_run() {
        let c = vec!["no acute disease".to_string(), "mild cardiomegaly".into()];
        let r = vec!["no acute disease".to_string(), "cardiomegaly".into()];
        let s = metrics::evaluate(&c, &r).unwrap();
        assert_eq!(average(&[s.clone(), s.clone()]), s);
    }
}
