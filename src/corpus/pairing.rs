//! Findings-matched image–report pairs.
//!
//! There are no real image–report pairs on the machines this model was first
//! trained on: the NIH radiographs have finding labels but no report text, the IU
//! reports have text but no images. So each NIH image is paired, per epoch, with an
//! IU training report whose labeller findings (on its IMPRESSION) agree with the
//! image's NIH labels on the nine observations, backing off to the nearest label
//! set (Hamming distance) when no report agrees exactly; NIH "normal" images pair
//! with reports whose findings are all negative or unmentioned. These are
//! FINDINGS-MATCHED pairs, NOT TRUE PAIRS: text metrics against them measure how
//! well the model writes a plausible report for the image's findings, not how well
//! it reproduces a radiologist's report of that image.

use std::collections::BTreeMap;

use crate::labeller::{self, Mention};
use crate::Observation;
use rand::seq::SliceRandom;
use rand::Rng;

/// Nine-bit finding mask in `Observation::FINDINGS` order.
pub type Mask = u16;

/// Mask of an NIH label row (first nine entries of `Observation::ALL` order).
pub fn mask_from_labels(labels: &[bool]) -> Mask {
    Observation::FINDINGS
        .iter()
        .enumerate()
        .filter(|(i, _)| labels[*i])
        .fold(0, |m, (i, _)| m | (1 << i))
}

/// Labels in `Observation::ALL` order from a mask: the nine findings, and
/// "no finding" when none is present.
pub fn labels_from_mask(mask: Mask) -> [bool; Observation::COUNT] {
    let mut l = [false; Observation::COUNT];
    for (i, x) in l.iter_mut().take(9).enumerate() {
        *x = mask & (1 << i) != 0;
    }
    l[9] = mask == 0;
    l
}

/// Mask of a report text: positive or uncertain mentions count as present, so a
/// report that "cannot exclude pneumonia" never pairs with a clean image.
pub fn mask_from_text(text: &str) -> Mask {
    let labels = labeller::label(text);
    Observation::FINDINGS
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(labels.mention(**o), Mention::Positive | Mention::Uncertain))
        .fold(0, |m, (i, _)| m | (1 << i))
}

/// Reports grouped by their finding mask.
pub struct ReportPool {
    by_mask: BTreeMap<Mask, Vec<usize>>,
}

impl ReportPool {
    /// Build from each report's mask (index = report index).
    pub fn new(masks: &[Mask]) -> ReportPool {
        let mut by_mask: BTreeMap<Mask, Vec<usize>> = BTreeMap::new();
        for (i, &m) in masks.iter().enumerate() {
            by_mask.entry(m).or_default().push(i);
        }
        ReportPool { by_mask }
    }

    pub fn is_empty(&self) -> bool {
        self.by_mask.is_empty()
    }

    /// Pick a report for an image with `mask`: uniformly among exact matches, else
    /// among the reports at the smallest Hamming distance. Returns the report index
    /// and the distance.
    pub fn pick(&self, mask: Mask, rng: &mut impl Rng) -> Option<(usize, u32)> {
        let best = self
            .by_mask
            .keys()
            .map(|&m| (m ^ mask).count_ones())
            .min()?;
        let candidates: Vec<usize> = self
            .by_mask
            .iter()
            .filter(|(&m, _)| (m ^ mask).count_ones() == best)
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        candidates.choose(rng).map(|&i| (i, best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    proptest! {
        #[test]
        fn never_contradicts_when_a_consistent_report_exists(
            masks in proptest::collection::vec(0u16..512, 1..60),
            image in 0u16..512,
            seed in any::<u64>(),
        ) {
            let pool = ReportPool::new(&masks);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (i, d) = pool.pick(image, &mut rng).unwrap();
            if masks.contains(&image) {
                prop_assert_eq!(masks[i], image);
                prop_assert_eq!(d, 0);
            } else {
                let best = masks.iter().map(|m| (m ^ image).count_ones()).min().unwrap();
                prop_assert_eq!((masks[i] ^ image).count_ones(), best);
            }
        }
    }

    #[test]
    fn label_mask_follows_finding_order() {
        let mut labels = [false; Observation::COUNT];
        labels[Observation::Cardiomegaly.index()] = true;
        labels[Observation::PleuralEffusion.index()] = true;
        labels[Observation::NoFinding.index()] = true;
        assert_eq!(mask_from_labels(&labels), 1 | (1 << 8));
    }
}
