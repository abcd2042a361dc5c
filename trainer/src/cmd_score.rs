//! `cxr-train score`: every report metric for any pair of text files, so that any
//! system can be scored the same way.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cxr_edge::metrics::{self, Options, UncertainPolicy};
use cxr_edge::text::Preset;

#[derive(clap::Args)]
pub struct Args {
    /// Generated texts, one per line.
    candidates: PathBuf,
    /// Reference texts, one per line, in the same order.
    references: PathBuf,
    /// Score clinical efficacy against these labels (CSV with a header of
    /// observation keys, one row per reference; 1 / 0 / -1 / empty) instead of the
    /// labeller's reading of the references.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Normalisation before the n-gram metrics.
    #[arg(long, value_enum, default_value_t = PresetArg::Seed)]
    preset: PresetArg,
    /// How an "uncertain" finding counts in clinical efficacy.
    #[arg(long, value_enum, default_value_t = UncertainArg::Negative)]
    uncertain: UncertainArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PresetArg {
    Seed,
    R2gen,
    /// Score the texts as given (whitespace tokens).
    None,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum UncertainArg {
    /// R2Gen convention.
    Negative,
    Positive,
}

impl Args {
    fn options(&self) -> Options {
        Options {
            preset: match self.preset {
                PresetArg::Seed => Some(Preset::Seed),
                PresetArg::R2gen => Some(Preset::R2gen),
                PresetArg::None => None,
            },
            uncertain: match self.uncertain {
                UncertainArg::Negative => UncertainPolicy::AsNegative,
                UncertainArg::Positive => UncertainPolicy::AsPositive,
            },
        }
    }
}

/// One text per line; a final newline does not make an extra empty text.
fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        bail!("{} is empty: expected one text per line", path.display());
    }
    Ok(lines)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let options = a.options();
    let candidates = read_lines(&a.candidates)?;
    let references = read_lines(&a.references)?;
    if candidates.len() != references.len() {
        bail!(
            "{} has {} lines but {} has {}: candidates and references must pair up line by line",
            a.candidates.display(),
            candidates.len(),
            a.references.display(),
            references.len()
        );
    }
    let scores = match &a.labels {
        Some(path) => {
            let labels = metrics::read_labels_csv(path)?;
            if labels.len() != references.len() {
                bail!(
                    "{} has {} label rows but {} has {} references",
                    path.display(),
                    labels.len(),
                    a.references.display(),
                    references.len()
                );
            }
            metrics::evaluate_with_labels(&candidates, &references, &labels, &options)?
        }
        None => metrics::evaluate_with(&candidates, &references, &options)?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
    } else {
        println!("{} vs {}\n", a.candidates.display(), a.references.display());
        print!("{}", scores.to_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, cands: &str, refs: &str, labels: Option<&str>) -> Args {
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        Args {
            candidates: write("cands.txt", cands),
            references: write("refs.txt", refs),
            labels: labels.map(|l| write("labels.csv", l)),
            json: true,
            preset: PresetArg::Seed,
            uncertain: UncertainArg::Negative,
        }
    }

    #[test]
    fn scores_files_and_names_the_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let ok = args(
            dir.path(),
            "no acute disease\nheart is enlarged\n",
            "no acute disease\ncardiomegaly\n",
            None,
        );
        run(ok).unwrap();

        let short = args(dir.path(), "no acute disease\n", "a\nb\n", None);
        let e = format!("{:#}", run(short).unwrap_err());
        assert!(
            e.contains("cands.txt has 1 lines") && e.contains("refs.txt has 2"),
            "{e}"
        );

        let keys: Vec<&str> = cxr_edge::Observation::FINDINGS
            .iter()
            .map(|o| o.key())
            .collect();
        let one_row = format!("{}\n1,0,0,0,0,0,0,0,0\n", keys.join(","));
        let rows = args(dir.path(), "a\nb\n", "a\nb\n", Some(&one_row));
        let e = format!("{:#}", run(rows).unwrap_err());
        assert!(e.contains("labels.csv has 1 label rows"), "{e}");

        let bad = args(dir.path(), "a\n", "a\n", Some("heart\n1\n"));
        let e = format!("{:#}", run(bad).unwrap_err());
        assert!(
            e.contains("labels.csv") && e.contains("unknown column \"heart\""),
            "{e}"
        );
    }
}
