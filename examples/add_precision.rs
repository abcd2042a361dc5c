//! Add a reduced-precision artefact to a bundle (a copy: the bundle is rewritten):
//!
//!     add_precision <bundle> <f16|int8-u8|int8-i8> [--films N --nih DIR] [target…]
//!
//! int8 encoders are calibrated on N training-split films of the NIH folder
//! (`models/nih-split.csv`'s rule), through the device's preprocessing. Targets
//! (e.g. `aarch64+fp16`) make it those CPUs' default; none: on request only.

use std::path::{Path, PathBuf};

use cxr_edge::bundle::{add_reduced, Bundle, Reduced};
use cxr_edge::export::quant::Scheme;
use cxr_edge::nih::{self, Holdout, HELD_OUT_PERCENT};

fn films(bundle: &Bundle, nih_dir: &Path, n: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let train: Vec<_> = nih::read_labels(nih_dir)?
        .into_iter()
        .filter(|i| Holdout::of_patient(&i.patient, HELD_OUT_PERCENT) == Holdout::Train)
        .collect();
    anyhow::ensure!(
        !train.is_empty() && n > 0,
        "no training films to calibrate on"
    );
    let validate = cxr_edge::input::ValidateOptions {
        force: true,
        ..Default::default()
    };
    (0..n.min(train.len()))
        .map(|k| {
            let r = cxr_edge::input::decode_file(&train[k * train.len() / n].path, &validate)?;
            Ok(bundle.manifest().preprocess.apply(&r.image))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: add_precision <bundle> <f16|int8-u8|int8-i8> [--films N --nih DIR] [target…]";
    let dir = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let kind = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let (mut n, mut nih_dir, mut targets) =
        (128, PathBuf::from("../shared/data/nih-cxr14"), vec![]);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--films" => n = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?,
            "--nih" => nih_dir = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.into(),
            _ => targets.push(a),
        }
    }
    let bundle = Bundle::open(&dir)?;
    let reduced = match kind.as_str() {
        "f16" => Reduced::F16,
        "int8-u8" | "int8-i8" => Reduced::Int8 {
            scheme: if kind == "int8-u8" {
                Scheme::U8PerChannel
            } else {
                Scheme::I8PerTensor
            },
            images: films(&bundle, &nih_dir, n)?,
        },
        other => anyhow::bail!("{other}: f16, int8-u8 or int8-i8"),
    };
    let b = add_reduced(&dir, &reduced, &targets)?;
    println!("{}", b.describe());
    Ok(())
}
