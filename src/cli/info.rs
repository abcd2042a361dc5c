//! `info <bundle>` and `compile <onnx>`: thin wrappers over the bundle module.

use std::path::PathBuf;

use anyhow::Context;
use cxr_edge::bundle::{self, Bundle};

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Bundle folder (holding manifest.json); default: as for `report`.
    pub bundle: Option<PathBuf>,
}

pub fn info(args: InfoArgs) -> anyhow::Result<()> {
    let dir = super::resolve_bundle(args.bundle.as_deref())?;
    let b = Bundle::open(&dir)?;
    let manifest = b.path(bundle::MANIFEST);
    let bytes =
        std::fs::read(&manifest).with_context(|| format!("{}: cannot read", manifest.display()))?;
    println!("{}", b.describe());
    println!("bundle hash {}", bundle::sha256_hex(&bytes));
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
