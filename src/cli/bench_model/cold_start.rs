//! The cold start over fresh processes: what a unit pays at boot is the first
//! `Reporter::open` of a process (verify every hash, build tract's NNEF reader,
//! load and plan both graphs), and only a new process pays it again. The
//! first sample is this process's own first open; each further one is a child
//! process of this binary that opens the bundle once, prints its timings as one
//! JSON line and exits.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use cxr_edge::reporter::{Reporter, ReporterOptions};
use serde::{Deserialize, Serialize};

use super::Spread;

/// One process's first open, milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Sample {
    total_ms: f64,
    files_and_model_ms: f64,
    encoder_ms: f64,
    decoder_ms: f64,
    other_files_ms: f64,
    rest_ms: f64,
}

/// The cold start over `processes` fresh processes, with where it went.
#[derive(Debug, Serialize)]
pub(super) struct ColdStart {
    pub(super) total_ms: Spread,
    /// Check every file, load and plan both graphs (three threads at once).
    pub(super) files_and_model_ms: Spread,
    pub(super) encoder_ms: Spread,
    pub(super) decoder_ms: Spread,
    pub(super) other_files_ms: Spread,
    /// Vocabulary, view check, sentence bank.
    pub(super) rest_ms: Spread,
}

/// This process's first open of the bundle in `dir`.
pub(super) fn this_process(dir: &Path) -> anyhow::Result<Sample> {
    let t = Instant::now();
    let reporter = Reporter::open(dir, &ReporterOptions::default())
        .with_context(|| format!("cannot load the model bundle {}", dir.display()))?;
    let total_ms = t.elapsed().as_secs_f64() * 1e3;
    let o = reporter.open_timings().unwrap_or_default();
    Ok(Sample {
        total_ms,
        files_and_model_ms: o.files_and_model_ms,
        encoder_ms: o.parts.encoder_ms,
        decoder_ms: o.parts.decoder_ms,
        other_files_ms: o.parts.check_other_files_ms,
        rest_ms: o.rest_ms,
    })
}

/// The child's side: open the bundle once and print the timings.
pub(super) fn print_one(dir: &Path) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(&this_process(dir)?)?);
    Ok(())
}

/// `first` (this process's own first open), then `processes - 1` children,
/// one after another. (Under qemu-user, which cannot start a foreign binary
/// without binfmt_misc, only `--cold-starts 1` works.)
pub(super) fn measure(dir: &Path, processes: usize, first: Sample) -> anyhow::Result<ColdStart> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut samples = vec![first];
    for _ in 1..processes {
        let out = Command::new(&exe)
            .arg("bench-model")
            .arg("--model")
            .arg(dir)
            .arg("--cold-start-once")
            .output()
            .with_context(|| format!("cannot run {} for a cold start", exe.display()))?;
        if !out.status.success() {
            bail!(
                "the cold-start process failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let sample: Sample = serde_json::from_str(line.trim())
            .with_context(|| format!("unexpected cold-start output: {line}"))?;
        samples.push(sample);
    }
    let spread = |f: fn(&Sample) -> f64| Spread::over(&samples, f);
    Ok(ColdStart {
        total_ms: spread(|s| s.total_ms),
        files_and_model_ms: spread(|s| s.files_and_model_ms),
        encoder_ms: spread(|s| s.encoder_ms),
        decoder_ms: spread(|s| s.decoder_ms),
        other_files_ms: spread(|s| s.other_files_ms),
        rest_ms: spread(|s| s.rest_ms),
    })
}
