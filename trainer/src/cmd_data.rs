//! `cxr-train data …`: look at a report collection before training on it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use cxr_edge::corpus::{self, CorpusStats};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Print counts, missing sections (per report and per image), the most frequent
    /// impressions, length distributions and vocabulary sizes.
    Stats {
        /// `ecgen-radiology/` folder, its `.tgz`, or the Kaggle CSV folder.
        path: PathBuf,
        /// How many of the most frequent impressions to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Also write the numbers as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// List every skipped file with its reason.
        #[arg(long)]
        show_skipped: bool,
    },
    /// Write the NIH patient-level split (train / validation / test) as CSV:
    /// `image_file,patient_id,split`, one row per film of `labels.csv`.
    NihSplit {
        /// NIH layout (`labels.csv` + images).
        nih: PathBuf,
        #[arg(long, default_value_t = cxr_edge::nih::HELD_OUT_PERCENT)]
        val_percent: u8,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the train/validation split by study (uid lists, JSON).
    Split {
        path: PathBuf,
        #[arg(long, default_value_t = 10)]
        val_percent: u8,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(c: DataCommand) -> anyhow::Result<()> {
    match c {
        DataCommand::NihSplit {
            nih,
            val_percent,
            out,
        } => {
            let mut csv = String::from("image_file,patient_id,split\n");
            let mut counts = std::collections::BTreeMap::new();
            for i in cxr_edge::nih::read_labels(&nih)? {
                let split = cxr_edge::nih::Holdout::of_patient(&i.patient, val_percent);
                *counts.entry(split).or_insert(0usize) += 1;
                let file = i.path.strip_prefix(&nih).unwrap_or(&i.path);
                let name = format!("{split:?}").to_lowercase();
                csv.push_str(&format!("{},{},{name}\n", file.display(), i.patient));
            }
            std::fs::write(&out, csv).with_context(|| format!("writing {}", out.display()))?;
            println!("{counts:?} → {}", out.display());
            Ok(())
        }
        DataCommand::Stats {
            path,
            top,
            json,
            show_skipped,
        } => {
            let collection = corpus::load(&path)?;
            let stats = CorpusStats::of(&collection, top);
            print!("{}", stats.render());
            let limit = if show_skipped { usize::MAX } else { 10 };
            if !collection.skipped.is_empty() {
                println!("\nskipped");
                for s in collection.skipped.iter().take(limit) {
                    println!("  {}: {}", s.source, s.reason);
                }
                if collection.skipped.len() > limit {
                    println!(
                        "  … {} more (--show-skipped)",
                        collection.skipped.len() - limit
                    );
                }
            }
            if let Some(out) = json {
                let text = serde_json::to_string_pretty(&stats)?;
                std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            }
            Ok(())
        }
        DataCommand::Split {
            path,
            val_percent,
            out,
        } => {
            let collection = corpus::load(&path)?;
            let split = corpus::write_split(&collection, val_percent, &out)?;
            println!(
                "{} train / {} validation studies → {}",
                split.train.len(),
                split.val.len(),
                out.display()
            );
            Ok(())
        }
    }
}
