//! Exploratory numbers of a collection (`cxr-train data stats`), counted both per
//! report and per image. The seed study counted per image (each radiograph with its
//! report's text), which weights multi-image studies more; both views are kept so
//! its figures can be compared with ours.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{Collection, Layout, Study};
use crate::text::{normalize, LengthStats, Preset};

/// Missing-section counts for one unit (reports or images).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SectionGaps {
    pub total: usize,
    pub no_comparison: usize,
    pub no_indication: usize,
    pub no_findings: usize,
    pub no_impression: usize,
    /// Neither findings nor impression.
    pub no_findings_nor_impression: usize,
    /// Findings or impression (or both) missing.
    pub findings_or_impression_missing: usize,
}

impl SectionGaps {
    fn add(&mut self, s: &Study, weight: usize) {
        let (f, i) = (s.findings.is_none(), s.impression.is_none());
        self.total += weight;
        self.no_comparison += weight * usize::from(s.comparison.is_none());
        self.no_indication += weight * usize::from(s.indication.is_none());
        self.no_findings += weight * usize::from(f);
        self.no_impression += weight * usize::from(i);
        self.no_findings_nor_impression += weight * usize::from(f && i);
        self.findings_or_impression_missing += weight * usize::from(f || i);
    }
}

/// Distinct-token counts of findings + impression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VocabSizes {
    /// Whitespace tokens of the raw text, case and punctuation kept.
    pub raw: usize,
    pub seed: usize,
    pub r2gen: usize,
    /// Seed tokens seen at least 3 times (R2Gen's IU threshold).
    pub seed_min3: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusStats {
    pub layout: Layout,
    pub studies: usize,
    pub images: usize,
    pub skipped: usize,
    /// Studies by image count: `(images, studies)`.
    pub images_per_study: Vec<(usize, usize)>,
    pub per_report: SectionGaps,
    pub per_image: SectionGaps,
    /// Most frequent impressions (raw text), with counts.
    pub top_impressions: Vec<(String, usize)>,
    /// Most frequent impressions after the seed normalisation.
    pub top_impressions_seed: Vec<(String, usize)>,
    pub distinct_impressions: usize,
    /// Lengths in seed tokens.
    pub findings_tokens: LengthStats,
    pub impression_tokens: LengthStats,
    pub report_tokens: LengthStats,
    pub vocab: VocabSizes,
    /// Studies whose only major MeSH term is `normal`.
    pub mesh_normal: usize,
}

impl CorpusStats {
    pub fn of(c: &Collection, top: usize) -> Self {
        let mut per_report = SectionGaps::default();
        let mut per_image = SectionGaps::default();
        let mut by_images: BTreeMap<usize, usize> = BTreeMap::new();
        for s in &c.studies {
            per_report.add(s, 1);
            per_image.add(s, s.images.len());
            *by_images.entry(s.images.len()).or_default() += 1;
        }
        let impressions: Vec<&str> = c
            .studies
            .iter()
            .filter_map(|s| s.impression.as_deref())
            .collect();
        let seed_impressions: Vec<String> = impressions
            .iter()
            .map(|t| normalize(t, Preset::Seed))
            .collect();
        let len = |f: fn(&Study) -> Option<&String>| {
            LengthStats::of(
                c.studies
                    .iter()
                    .filter_map(f)
                    .map(|t| normalize(t, Preset::Seed).split_whitespace().count()),
            )
        };
        let reports: Vec<String> = c.studies.iter().map(report_text).collect();
        Self {
            layout: c.layout,
            studies: c.studies.len(),
            images: c.image_count(),
            skipped: c.skipped.len(),
            images_per_study: by_images.into_iter().collect(),
            per_report,
            per_image,
            top_impressions: most_frequent(impressions.iter().copied(), top),
            top_impressions_seed: most_frequent(seed_impressions.iter().map(String::as_str), top),
            distinct_impressions: impressions.iter().collect::<HashSet<_>>().len(),
            findings_tokens: len(|s| s.findings.as_ref()),
            impression_tokens: len(|s| s.impression.as_ref()),
            report_tokens: LengthStats::of(
                reports
                    .iter()
                    .map(|r| normalize(r, Preset::Seed).split_whitespace().count()),
            ),
            vocab: vocab_sizes(&reports),
            mesh_normal: c
                .studies
                .iter()
                .filter(|s| {
                    s.mesh_major.len() == 1 && s.mesh_major[0].eq_ignore_ascii_case("normal")
                })
                .count(),
        }
    }

    /// Plain-text report; contains no paths, so two layouts of one collection print
    /// identically apart from the layout line.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "layout            {:?}", self.layout);
        let _ = writeln!(
            o,
            "studies {}  images {}  skipped {}",
            self.studies, self.images, self.skipped
        );
        let per: Vec<String> = self
            .images_per_study
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        let _ = writeln!(o, "images per study  {}", per.join("  "));
        let _ = writeln!(o, "\nmissing sections       per report   per image");
        let rows = [
            ("total", self.per_report.total, self.per_image.total),
            (
                "no comparison",
                self.per_report.no_comparison,
                self.per_image.no_comparison,
            ),
            (
                "no indication",
                self.per_report.no_indication,
                self.per_image.no_indication,
            ),
            (
                "no findings",
                self.per_report.no_findings,
                self.per_image.no_findings,
            ),
            (
                "no impression",
                self.per_report.no_impression,
                self.per_image.no_impression,
            ),
            (
                "neither",
                self.per_report.no_findings_nor_impression,
                self.per_image.no_findings_nor_impression,
            ),
            (
                "either missing",
                self.per_report.findings_or_impression_missing,
                self.per_image.findings_or_impression_missing,
            ),
        ];
        for (name, r, i) in rows {
            let _ = writeln!(o, "  {name:<20} {r:>10} {i:>11}");
        }
        let _ = writeln!(
            o,
            "\nlengths (seed tokens)   n     min  p50  p90  p95  p99  max   mean"
        );
        for (name, l) in [
            ("findings", &self.findings_tokens),
            ("impression", &self.impression_tokens),
            ("findings+impression", &self.report_tokens),
        ] {
            let _ = writeln!(
                o,
                "  {name:<20} {:>5} {:>4} {:>4} {:>4} {:>4} {:>4} {:>4} {:>6.2}",
                l.count, l.min, l.p50, l.p90, l.p95, l.p99, l.max, l.mean
            );
        }
        let v = &self.vocab;
        let _ = writeln!(
            o,
            "\nvocabulary (findings+impression)  raw {}  seed {}  r2gen {}  seed count>=3 {}",
            v.raw, v.seed, v.r2gen, v.seed_min3
        );
        let _ = writeln!(o, "MeSH major = [normal]  {} studies", self.mesh_normal);
        let _ = writeln!(
            o,
            "\ntop impressions ({} distinct of {})",
            self.distinct_impressions,
            self.studies - self.per_report.no_impression
        );
        for (t, n) in &self.top_impressions {
            let _ = writeln!(o, "  {n:>5}  {t}");
        }
        let _ = writeln!(o, "\ntop impressions, seed-normalised");
        for (t, n) in &self.top_impressions_seed {
            let _ = writeln!(o, "  {n:>5}  {t}");
        }
        o
    }
}

/// Findings then impression, the text a report generator is trained to write.
pub fn report_text(s: &Study) -> String {
    [s.findings.as_deref(), s.impression.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

fn most_frequent<'a>(items: impl Iterator<Item = &'a str>, top: usize) -> Vec<(String, usize)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in items {
        *counts.entry(t).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

fn vocab_sizes(reports: &[String]) -> VocabSizes {
    let distinct = |p: Option<Preset>| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for r in reports {
            let text = p.map_or_else(|| r.clone(), |p| normalize(r, p));
            for t in text.split_whitespace() {
                *counts.entry(t.to_string()).or_default() += 1;
            }
        }
        counts
    };
    let seed = distinct(Some(Preset::Seed));
    VocabSizes {
        raw: distinct(None).len(),
        seed: seed.len(),
        r2gen: distinct(Some(Preset::R2gen)).len(),
        seed_min3: seed.values().filter(|&&n| n >= 3).count(),
    }
}
