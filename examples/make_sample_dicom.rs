//! Make the committed sample DICOM from a sample PNG: a 12-bit MONOCHROME1 CR
//! with pixel spacing and a PA chest header, as a CR unit would send it, in
//! Deflated Explicit VR Little Endian to stay small.
//!
//! ```text
//! cargo run --example make_sample_dicom -- samples/nih_00001638_000_normal.png \
//!     samples/nih_00001638_000_normal.dcm [original width, default 2048]
//! ```
//! The UIDs derive from the file name, so rerunning gives the same instance.

use std::path::PathBuf;

use anyhow::{bail, Context};
use cxr_edge::input::synth::{SynthCr, DEFLATED_EXPLICIT_VR_LE};

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (png, out, original_width) = match args.as_slice() {
        [png, out] => (png, out, 2048.0),
        [png, out, w] => (png, out, w.to_string_lossy().parse::<f64>()?),
        _ => bail!("usage: make_sample_dicom <in.png> <out.dcm> [original width]"),
    };
    let grey = image::open(png)
        .with_context(|| format!("reading {}", png.display()))?
        .to_luma8();
    let (w, h) = grey.dimensions();
    let stem = png
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let uid = |role: &str| cxr_edge::output::derived_uid(&["cxr-edge sample", &stem, role]);
    let mut cr = SynthCr::new(0, h as u16, w as u16);
    cr.sop_instance_uid = uid("instance");
    cr.study_instance_uid = uid("study");
    cr.series_instance_uid = uid("series");
    cr.patient_id = stem.clone();
    cr.patient_name = "SAMPLE^NIH".into();
    // NIH's originals have about 0.143 mm pixels at their original width
    // (`orig_width` in labels.csv); the sample PNGs are downsampled to 512.
    cr.pixel_spacing_mm = 0.143 * original_width / w as f64;
    cr.transfer_syntax = DEFLATED_EXPLICIT_VR_LE;
    let cr = cr.with_grey8(w as u16, h as u16, grey.as_raw());
    let bytes = cr.to_bytes();
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {w}×{h}, {} bytes, SOP Instance UID {}",
        out.display(),
        bytes.len(),
        cr.sop_instance_uid
    );
    Ok(())
}
