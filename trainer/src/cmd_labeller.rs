//! `cxr-train labeller eval`: how far the findings labeller can be trusted.
//!
//! Two measures: (a) agreement with the hand-checked sentences of the committed
//! fixture, per observation; (b) precision, recall and F1 against the human-coded
//! MeSH terms of every report in a collection, with each disagreement written to
//! a TSV file for review.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use cxr_edge::labeller::{eval, mesh};
use cxr_edge::{corpus, Observation};

const DEFAULT_DATA: &str = "../shared/data/iu-xray/ecgen-radiology";
const DEFAULT_FIXTURE: &str = "tests/fixtures/labeller_sentences.tsv";

#[derive(Subcommand)]
pub enum LabellerCommand {
    /// Score the labeller on the hand-checked sentences and against MeSH terms.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// Report collection (`ecgen-radiology/` folder, its `.tgz`, or the Kaggle
    /// CSV); default ../shared/data/iu-xray/ecgen-radiology when it exists.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Hand-checked sentences (TSV); default tests/fixtures/labeller_sentences.tsv.
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// Where to write the MeSH disagreements.
    #[arg(long, default_value = "labeller_disagreements.tsv")]
    disagreements: PathBuf,
    /// Also list every fixture mistake.
    #[arg(long)]
    show_mistakes: bool,
}

pub fn run(c: LabellerCommand) -> anyhow::Result<()> {
    match c {
        LabellerCommand::Eval(a) => run_eval(a),
    }
}

fn run_eval(a: EvalArgs) -> anyhow::Result<()> {
    let fixture = a.fixture.clone().unwrap_or_else(|| DEFAULT_FIXTURE.into());
    fixture_report(&fixture, a.show_mistakes)?;
    let data = match a.data {
        Some(d) => d,
        None if Path::new(DEFAULT_DATA).exists() => DEFAULT_DATA.into(),
        None => {
            println!("\nno --data given and {DEFAULT_DATA} is absent: MeSH agreement skipped");
            return Ok(());
        }
    };
    mesh_report(&data, &a.disagreements)
}

fn fixture_report(path: &Path, show_mistakes: bool) -> anyhow::Result<()> {
    let cases = eval::read_fixture(path)?;
    let s = eval::score_fixture(&cases);
    println!(
        "Fixture {} ({} hand-checked sentences)",
        path.display(),
        s.sentences
    );
    println!(
        "{:<18} {:>9} {:>16} {:>11} {:>10}",
        "observation", "accuracy", "when mentioned", "laterality", "severity"
    );
    let rows = Observation::FINDINGS.iter().zip(&s.per_observation);
    for (o, g) in rows
        .map(|(o, g)| (o.key(), g))
        .chain([("overall", &s.overall)])
    {
        println!(
            "{:<18} {:>9.3} {:>9.3} ({:>3}) {:>6}/{:<4} {:>5}/{:<4}",
            o,
            g.accuracy(),
            g.mentioned_accuracy(),
            g.mentioned,
            g.laterality_correct,
            g.laterality_checked,
            g.severity_correct,
            g.severity_checked
        );
    }
    println!("{} disagreement(s) with the fixture", s.mistakes.len());
    if show_mistakes {
        for m in &s.mistakes {
            println!(
                "  {} {}: expected {}, got {}{}  | {}",
                m.source,
                m.observation.key(),
                m.expected.code(),
                m.got.code(),
                m.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                m.sentence
            );
        }
    }
    Ok(())
}

fn mesh_report(data: &Path, out: &Path) -> anyhow::Result<()> {
    let collection =
        corpus::load(data).with_context(|| format!("loading reports from {}", data.display()))?;
    let studies: Vec<mesh::MeshStudy> = collection
        .studies
        .iter()
        .map(|st| mesh::MeshStudy {
            uid: &st.uid,
            text: [st.findings.as_deref(), st.impression.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n"),
            terms: &st.mesh_major,
        })
        .collect();
    let n = studies.len();
    let t0 = Instant::now();
    let s = mesh::score(studies);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "\nMeSH agreement on {} ({} reports indexed, {} without MeSH indexing, {} skipped while loading)",
        data.display(),
        s.studies,
        s.unindexed,
        collection.skipped.len()
    );
    println!("Text labelled: findings + impression. MeSH truth: major terms (mapping in src/labeller/mesh.rs).");
    println!(
        "{:<18} {:>6} | {:>6} {:>6} {:>6} (uncertain = positive) | {:>6} {:>6} {:>6} (uncertain = negative)",
        "observation", "MeSH+", "P", "R", "F1", "P", "R", "F1"
    );
    for o in Observation::ALL {
        let (u, v) = (
            &s.uncertain_positive[o.index()],
            &s.uncertain_negative[o.index()],
        );
        println!(
            "{:<18} {:>6} | {:>6.3} {:>6.3} {:>6.3}                        | {:>6.3} {:>6.3} {:>6.3}",
            o.key(),
            u.tp + u.fn_,
            u.precision(),
            u.recall(),
            u.f1(),
            v.precision(),
            v.recall(),
            v.f1()
        );
    }
    write_disagreements(out, &s.disagreements)?;
    println!(
        "{} disagreement(s) (uncertain = positive) written to {}",
        s.disagreements.len(),
        out.display()
    );
    println!(
        "labelled {n} reports in {:.3} s ({:.0} reports/s)",
        secs,
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn write_disagreements(path: &Path, rows: &[mesh::Disagreement]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    writeln!(w, "uid\tobservation\tmesh\tlabeller\tevidence\tmesh_terms")?;
    for d in rows {
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}\t{}",
            d.uid,
            d.observation.key(),
            if d.mesh { "yes" } else { "no" },
            d.label.code(),
            clean(d.evidence.as_deref().unwrap_or("")),
            clean(&d.mesh_terms)
        )?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
