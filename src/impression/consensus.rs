//! How typical a wording is of what radiologists write for the same findings.
//!
//! A candidate impression or sentence is scored by its mean ROUGE-L (the
//! COCO form the metrics report, [`crate::metrics::rouge::rouge_l_coco_pair`]) against
//! the training impressions whose labeller findings are the same set
//! ([`pairing::mask_from_text`]): the wording most like the others is the one
//! a reader of such a film most expects, so the bank ranks by it (a consensus,
//! or minimum-Bayes-risk, choice). Both sides are compared in the seed
//! normalisation, as the metrics are.

use std::collections::BTreeMap;

use crate::corpus::pairing::{self, Mask};
use crate::metrics::rouge::rouge_l_coco_pair;
use crate::text::{self, Preset};

/// Fewest impressions a set of findings needs for its consensus to count.
const MIN_POOL: usize = 3;

/// Training impressions by the findings they state, normalised.
#[derive(Debug, Default)]
pub struct Consensus {
    by_mask: BTreeMap<Mask, Vec<String>>,
}

impl Consensus {
    pub fn build<'a>(impressions: impl IntoIterator<Item = &'a str>) -> Consensus {
        let mut by_mask: BTreeMap<Mask, Vec<String>> = BTreeMap::new();
        for imp in impressions {
            let normal = text::normalize(imp, Preset::Seed);
            if !normal.is_empty() {
                by_mask
                    .entry(pairing::mask_from_text(imp))
                    .or_default()
                    .push(normal);
            }
        }
        Consensus { by_mask }
    }

    /// Mean ROUGE-L of `candidate` against the impressions stating exactly
    /// `mask`; 0 when fewer than [`MIN_POOL`] do.
    pub fn score(&self, candidate: &str, mask: Mask) -> f32 {
        let pool = self.by_mask.get(&mask).map_or(&[][..], Vec::as_slice);
        if pool.len() < MIN_POOL {
            return 0.0;
        }
        let c = text::normalize(candidate, Preset::Seed);
        let sum: f64 = pool.iter().map(|r| rouge_l_coco_pair(&c, r)).sum();
        (sum / pool.len() as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typical_wording_scores_highest() {
        let c = Consensus::build([
            "No acute cardiopulmonary abnormality.",
            "No acute cardiopulmonary disease.",
            "No acute cardiopulmonary process.",
            "No active disease.",
            "Cardiomegaly.",
        ]);
        let typical = c.score("No acute cardiopulmonary abnormality.", 0);
        let odd = c.score("Normal chest.", 0);
        assert!(typical > 0.5 && odd == 0.0, "{typical} {odd}");
        // Cardiomegaly alone rests on one impression: too few.
        let cardio = pairing::mask_from_text("Cardiomegaly.");
        assert_eq!(c.score("Cardiomegaly.", cardio), 0.0);
    }
}
