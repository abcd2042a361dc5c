//! Reduced-precision artefacts added to a bundle that is already built, from
//! its own ONNX graphs (no trainer checkpoint needed): an int8 encoder under a
//! chosen [`Scheme`] with the fp32 decoder, or an f16 encoder and decoder. The
//! artefact is listed for `targets` (the CPUs that run it by default; none:
//! only on request), replacing any artefact of the same precision, and the
//! manifest's hashes, `parity.json` (int8 encoder outputs) included, are
//! rewritten; the bundle is then re-opened through the device's checks.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::ModelProto;

use super::build::{int8_parity, write_manifest, INT8_NNEF, INT8_ONNX};
use super::{compile, sha256_hex, Artefact, Bundle, BundleError, FileEntry, Precision};
use crate::export::{equalize, quant, quant::Scheme};

/// File names of the f16 artefact.
const F16_ENCODER: &str = "encoder.f16.nnef.tar";
const F16_DECODER: &str = "decoder.f16.nnef.tar";

/// Equalisation passes before [`Scheme::I8PerTensor`] (ranges settle in a few).
const EQUALIZE_SWEEPS: usize = 4;

/// What to add.
#[derive(Debug, Clone)]
pub enum Reduced {
    /// int8 encoder calibrated on `images` (preprocessed films), fp32 decoder.
    Int8 {
        scheme: Scheme,
        images: Vec<Vec<f32>>,
    },
    /// f16 encoder and decoder.
    F16,
}

impl Reduced {
    pub fn precision(&self) -> Precision {
        match self {
            Reduced::Int8 { .. } => Precision::Int8,
            Reduced::F16 => Precision::F16,
        }
    }
}

/// Add `reduced` to the bundle in `dir` for `targets` (see the module doc).
pub fn add_reduced(
    dir: &Path,
    reduced: &Reduced,
    targets: &[String],
) -> Result<Bundle, BundleError> {
    let bundle = Bundle::open(dir)?;
    let mut manifest = bundle.manifest().clone();
    let enc_onnx = bundle.path(&manifest.onnx_encoder);
    let mut written = vec!["parity.json".to_string()];
    let artefact = match reduced {
        Reduced::F16 => {
            compile::compile_f16(&enc_onnx, &dir.join(F16_ENCODER))?;
            compile::compile_f16(&bundle.path(&manifest.onnx_decoder), &dir.join(F16_DECODER))?;
            written.extend([F16_ENCODER.into(), F16_DECODER.into()]);
            (F16_ENCODER, F16_DECODER)
        }
        Reduced::Int8 { scheme, images } => {
            add_int8(&bundle, *scheme, images)?;
            written.extend([INT8_ONNX.into(), INT8_NNEF.into()]);
            let fp32 = manifest.fp32().ok_or_else(|| BundleError::Invalid {
                path: dir.join(super::MANIFEST),
                message: "no fp32 artefact".into(),
            })?;
            (INT8_NNEF, fp32.decoder.as_str())
        }
    };
    let artefact = Artefact {
        precision: reduced.precision(),
        targets: targets.to_vec(),
        encoder: artefact.0.to_string(),
        decoder: artefact.1.to_string(),
    };
    manifest
        .artefacts
        .retain(|a| a.precision != artefact.precision);
    // The device runs the first artefact that fits its CPU: a default goes
    // first, an opt-in one last.
    if targets.is_empty() {
        manifest.artefacts.push(artefact);
    } else {
        manifest.artefacts.insert(0, artefact);
    }
    for name in written {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).map_err(BundleError::io(&path))?;
        manifest.files.insert(
            name,
            FileEntry {
                sha256: sha256_hex(&bytes),
                bytes: bytes.len() as u64,
            },
        );
    }
    write_manifest(dir, &manifest)?;
    Bundle::open(dir)
}

/// Write the int8 encoder (ONNX and NNEF) and its parity outputs.
fn add_int8(bundle: &Bundle, scheme: Scheme, images: &[Vec<f32>]) -> Result<(), BundleError> {
    let m = bundle.manifest();
    let enc_onnx = bundle.path(&m.onnx_encoder);
    let bytes = std::fs::read(&enc_onnx).map_err(BundleError::io(&enc_onnx))?;
    let encoder = ModelProto::decode(bytes.as_slice()).map_err(|e| BundleError::Invalid {
        path: enc_onnx.clone(),
        message: format!("not an ONNX model: {e}"),
    })?;
    let base = match scheme {
        Scheme::U8PerChannel => encoder,
        Scheme::I8PerTensor => equalize::equalize(&encoder, EQUALIZE_SWEEPS),
    };
    let cal = quant::calibrate(&base, m.model.input_size, images)?;
    let int8 = quant::quantize_encoder_with(&base, &cal, scheme)?;
    let q_onnx = bundle.path(INT8_ONNX);
    std::fs::write(&q_onnx, int8.encode_to_vec()).map_err(BundleError::io(&q_onnx))?;
    compile(&q_onnx, &bundle.path(INT8_NNEF))?;
    let dec_onnx = bundle.path(&m.onnx_decoder);
    let mut parity = bundle.parity()?;
    parity.int8 = Some(int8_parity(&m.model, &q_onnx, &dec_onnx, &parity.image)?);
    parity.write(&bundle.path("parity.json"))
}
