//! Plain-text and Markdown renderings of [`Scores`], shared by `cxr-train score`,
//! the baselines and the evaluation reports so that every table has the same columns.

use std::fmt::Write;

use super::Scores;

/// Column names of [`Scores::to_markdown_row`].
const COLUMNS: [&str; 12] = [
    "system",
    "n",
    "distinct",
    "BLEU-1",
    "BLEU-2",
    "BLEU-3",
    "BLEU-4",
    "ROUGE-L",
    "ROUGE-L (rouge-score)",
    "CIDEr-D",
    "CE micro F1",
    "CE macro F1",
];

impl Scores {
    /// Markdown table header (two lines) matching [`Scores::to_markdown_row`].
    pub fn markdown_header() -> String {
        format!(
            "| {} |\n|{}",
            COLUMNS.join(" | "),
            ["---|"; COLUMNS.len()].concat()
        )
    }

    /// One Markdown table row for a named system.
    pub fn to_markdown_row(&self, system: &str) -> String {
        let cells = [
            system.replace('|', "\\|"),
            self.n.to_string(),
            self.distinct_candidates.to_string(),
            format!("{:.4}", self.bleu[0]),
            format!("{:.4}", self.bleu[1]),
            format!("{:.4}", self.bleu[2]),
            format!("{:.4}", self.bleu[3]),
            format!("{:.4}", self.rouge_l),
            format!("{:.4}", self.rouge_l_rouge_score),
            format!("{:.4}", self.cider_d),
            format!("{:.4}", self.clinical.micro.f1),
            format!("{:.4}", self.clinical.macro_avg.f1),
        ];
        format!("| {} |", cells.join(" | "))
    }

    /// Every metric with its definition, and the per-finding clinical table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let preset = match self.preset {
            Some(p) => format!("{p:?}").to_lowercase(),
            None => "none".into(),
        };
        let _ = writeln!(s, "pairs                  {}", self.n);
        let _ = writeln!(
            s,
            "distinct candidates    {} ({:.1}% of pairs)",
            self.distinct_candidates,
            100.0 * self.distinct_candidates as f64 / self.n.max(1) as f64
        );
        let _ = writeln!(s, "normalisation preset   {preset}");
        for (i, b) in self.bleu.iter().enumerate() {
            let _ = writeln!(
                s,
                "BLEU-{}                 {b:.6}   (NLTK corpus_bleu, no smoothing)",
                i + 1
            );
        }
        let _ = writeln!(
            s,
            "ROUGE-L                {:.6}   (pycocoevalcap, beta 1.2)",
            self.rouge_l
        );
        let _ = writeln!(
            s,
            "ROUGE-L (rouge-score)  {:.6}   (rouge-score rougeL F1, mean over pairs)",
            self.rouge_l_rouge_score
        );
        let _ = writeln!(
            s,
            "CIDEr-D                {:.6}   (pycocoevalcap Cider)",
            self.cider_d
        );
        let c = &self.clinical;
        let _ = writeln!(s, "\nClinical efficacy: {}", c.convention);
        let _ = writeln!(
            s,
            "{:<18} {:>5} {:>5} {:>5} {:>5} {:>9} {:>7} {:>6}",
            "finding", "tp", "fp", "fn", "tn", "precision", "recall", "f1"
        );
        for o in &c.per_observation {
            let _ = writeln!(
                s,
                "{:<18} {:>5} {:>5} {:>5} {:>5} {:>9.4} {:>7.4} {:>6.4}",
                o.observation.key(),
                o.tp,
                o.fp,
                o.fn_,
                o.tn,
                o.prf.precision,
                o.prf.recall,
                o.prf.f1
            );
        }
        for (name, p) in [("micro", c.micro), ("macro", c.macro_avg)] {
            let _ = writeln!(
                s,
                "{name:<18} {:>5} {:>5} {:>5} {:>5} {:>9.4} {:>7.4} {:>6.4}",
                "", "", "", "", p.precision, p.recall, p.f1
            );
        }
        s
    }
}

/// A whole Markdown table, one row per named system.
pub fn markdown_table(rows: &[(&str, &Scores)]) -> String {
    let mut s = Scores::markdown_header();
    for (name, scores) in rows {
        s.push('\n');
        s.push_str(&scores.to_markdown_row(name));
    }
    s.push('\n');
    s
}
