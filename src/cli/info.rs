//! `info <bundle>` and `compile <onnx>`: thin wrappers over the bundle module.

use std::path::PathBuf;

use anyhow::Context;
use cxr_edge::bundle::{self, Bundle, Precision};
use cxr_edge::runtime::tract::{TractOptions, TractRuntime};

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Bundle folder (holding manifest.json); default: as for `report`.
    pub bundle: Option<PathBuf>,
    /// Also load the artefact this CPU runs and check it against the parity file.
    #[arg(long)]
    pub check: bool,
}

/// Largest |Δ| a parity check accepts, fp32 and int8 alike: the int8 encoder is
/// held to its own recorded outputs, not to fp32's.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// An f16 artefact against the fp32 parity outputs: f16 keeps about three
/// significant digits, and logits reach tens.
pub const F16_PARITY_TOLERANCE: f32 = 5e-2;

pub fn info(args: InfoArgs) -> anyhow::Result<()> {
    let dir = super::resolve_bundle(args.bundle.as_deref())?;
    let b = Bundle::open(&dir)?;
    let manifest = b.path(bundle::MANIFEST);
    let bytes =
        std::fs::read(&manifest).with_context(|| format!("{}: cannot read", manifest.display()))?;
    println!("{}", b.describe());
    println!("bundle hash {}", bundle::sha256_hex(&bytes));
    if args.check {
        let default = TractRuntime::load(&b)?.precision();
        let parity = b.parity()?;
        let mut failed = Vec::new();
        for a in &b.manifest().artefacts {
            let options = TractOptions {
                precision: Some(a.precision),
                ..TractOptions::default()
            };
            let rt = TractRuntime::load_with(&b, &options)?;
            let report = parity.check_precision(&rt, a.precision)?;
            let tolerance = match a.precision {
                Precision::F16 => F16_PARITY_TOLERANCE,
                _ => PARITY_TOLERANCE,
            };
            let ok = report.max_abs_diff <= tolerance && report.tokens_match;
            println!(
                "parity on {}, {} artefact{}: max |Δ| {:.2e} at {}, greedy tokens {}: {}",
                std::env::consts::ARCH,
                a.precision,
                if a.precision == default {
                    " (default here)"
                } else {
                    ""
                },
                report.max_abs_diff,
                report.worst,
                if report.tokens_match {
                    "identical"
                } else {
                    "differ"
                },
                if ok { "ok" } else { "FAILED" }
            );
            if !ok {
                failed.push(a.precision.name());
            }
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{}: {} outputs differ from the parity file beyond their tolerance",
                dir.display(),
                failed.join(" and ")
            );
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct CompileArgs {
    /// ONNX graph (an encoder or a decoder step) with the shapes the device uses.
    pub onnx: PathBuf,
    /// Output NNEF tar; default: the input with `.nnef.tar` for `.onnx`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn compile(args: CompileArgs) -> anyhow::Result<()> {
    let output = args
        .output
        .unwrap_or_else(|| args.onnx.with_extension("nnef.tar"));
    if output == args.onnx {
        anyhow::bail!("{}: output would overwrite the input", output.display());
    }
    bundle::compile(&args.onnx, &output)?;
    let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} → {} ({:.2} MB)",
        args.onnx.display(),
        output.display(),
        size as f64 / 1e6
    );
    Ok(())
}
