//! Checkpoint → bundle in one call: export ONNX, compile NNEF, copy the
//! vocabulary, record parity outputs, hash everything, write the manifest and
//! re-open the result through the same checks the device runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{
    compile, sha256_hex, Artefact, Bundle, BundleError, EncoderValues, FileEntry, Manifest,
    ObservationThreshold, Parity, Precision, VocabEntry, MANIFEST, SCHEMA_VERSION, TRACT_VERSION,
};
use crate::export::{self, quant};
use crate::model_config::ModelConfig;
use crate::preprocess::PreprocessOptions;
use crate::runtime::tract::{TractOptions, TractRuntime};
use crate::runtime::Runtime;
use crate::text::Vocab;
use prost::Message;

/// File names of the int8 encoder (its decoder is the fp32 one).
pub(super) const INT8_ONNX: &str = "encoder.int8.onnx";
pub(super) const INT8_NNEF: &str = "encoder.int8.nnef.tar";

/// Everything a bundle needs besides the checkpoint and the vocabulary file.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub model_id: String,
    pub preprocess: PreprocessOptions,
    pub bos_id: u32,
    pub eos_id: u32,
    /// Decision thresholds on the sigmoid score, at most one per observation.
    pub thresholds: Vec<ObservationThreshold>,
    pub provenance: serde_json::Value,
    pub metrics: serde_json::Value,
    /// A preprocessed image for `parity.json`; `None` uses a fixed synthetic one.
    pub parity_image: Option<Vec<f32>>,
    /// Greedy decoder steps recorded in `parity.json`.
    pub parity_steps: usize,
    /// Preprocessed images to calibrate an int8 encoder on; empty: fp32 only.
    pub calibration_images: Vec<Vec<f32>>,
    /// CPU architectures whose default artefact is the int8 one; empty: the
    /// int8 artefact is only run on request (`--precision int8`).
    pub int8_targets: Vec<String>,
}

impl BuildOptions {
    pub fn new(model_id: impl Into<String>, bos_id: u32, eos_id: u32) -> BuildOptions {
        BuildOptions {
            model_id: model_id.into(),
            preprocess: PreprocessOptions::default(),
            bos_id,
            eos_id,
            thresholds: Vec::new(),
            provenance: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            parity_image: None,
            parity_steps: 4,
            calibration_images: Vec::new(),
            int8_targets: Vec::new(),
        }
    }
}

/// A deterministic, smooth test image in the normalised input range.
pub fn synthetic_image(size: usize) -> Vec<f32> {
    let s = size as f32;
    (0..size * size)
        .map(|i| {
            let (y, x) = ((i / size) as f32 / s, (i % size) as f32 / s);
            (6.0 * x).sin() * (4.0 * y).cos() + 0.5 * (x - y)
        })
        .collect()
}

/// Build a bundle in `out_dir` from the checkpoint in `checkpoint_dir`
/// (`config.json` + `model.safetensors`) and the tokenizer file `vocab`
/// ([`Vocab::save`] format, as many tokens as the model's vocabulary).
pub fn build(
    checkpoint_dir: &Path,
    vocab: &Path,
    options: &BuildOptions,
    out_dir: &Path,
) -> Result<Bundle, BundleError> {
    let exported = export::export_checkpoint(checkpoint_dir)?;
    let config = &exported.config;
    check_options(checkpoint_dir, config, options)?;
    let table = load_vocab(vocab, config)?;

    std::fs::create_dir_all(out_dir).map_err(BundleError::io(out_dir))?;
    let (enc_onnx, dec_onnx) = exported.write(out_dir)?;
    compile(&enc_onnx, &out_dir.join("encoder.nnef.tar"))?;
    compile(&dec_onnx, &out_dir.join("decoder.nnef.tar"))?;
    let mut artefacts = vec![Artefact {
        precision: Precision::Fp32,
        targets: vec!["x86_64".into(), "aarch64".into()],
        encoder: "encoder.nnef.tar".into(),
        decoder: "decoder.nnef.tar".into(),
    }];
    let mut names = vec![
        "encoder.onnx",
        "decoder.onnx",
        "encoder.nnef.tar",
        "decoder.nnef.tar",
        "vocab.json",
        "parity.json",
    ];
    if !options.calibration_images.is_empty() {
        add_int8(&exported, options, out_dir, &mut artefacts)?;
        names.extend([INT8_ONNX, INT8_NNEF]);
    }
    let vocab_out = out_dir.join("vocab.json");
    std::fs::copy(vocab, &vocab_out).map_err(BundleError::io(vocab))?;
    write_parity(config, options, (&enc_onnx, &dec_onnx), out_dir)?;

    let files = names
        .into_iter()
        .map(|name| Ok((name.to_string(), file_entry(out_dir, name)?)))
        .collect::<Result<BTreeMap<_, _>, BundleError>>()?;
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        model_id: options.model_id.clone(),
        created_by: format!("cxr-edge {}", env!("CARGO_PKG_VERSION")),
        tract_version: TRACT_VERSION.into(),
        model: config.clone(),
        preprocess: options.preprocess.clone(),
        vocab: VocabEntry {
            file: "vocab.json".into(),
            sha256: table.hash(),
            bos_id: options.bos_id,
            eos_id: options.eos_id,
        },
        max_len: config.max_len,
        observations: options.thresholds.clone(),
        artefacts,
        onnx_encoder: "encoder.onnx".into(),
        onnx_decoder: "decoder.onnx".into(),
        parity: "parity.json".into(),
        view_check: None,
        impression_bank: None,
        files,
        provenance: options.provenance.clone(),
        metrics: options.metrics.clone(),
    };
    write_manifest(out_dir, &manifest)?;
    Bundle::open(out_dir)
}

/// The options against the exported model: preprocessing size, special
/// tokens inside the vocabulary, thresholds in [0, 1] and one per observation.
fn check_options(
    checkpoint_dir: &Path,
    config: &ModelConfig,
    options: &BuildOptions,
) -> Result<(), BundleError> {
    let invalid = |message: String| BundleError::Invalid {
        path: checkpoint_dir.to_owned(),
        message,
    };
    if options.preprocess.size != config.input_size {
        return Err(invalid(format!(
            "preprocess size {} differs from the model input size {}",
            options.preprocess.size, config.input_size
        )));
    }
    for id in [options.bos_id, options.eos_id] {
        if id as usize >= config.vocab_size {
            return Err(invalid(format!(
                "special token {id} outside the vocabulary of {}",
                config.vocab_size
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for t in &options.thresholds {
        if !(0.0..=1.0).contains(&t.threshold) || !seen.insert(t.observation) {
            return Err(invalid(format!(
                "bad or repeated threshold for {}",
                t.observation.key()
            )));
        }
    }
    Ok(())
}

/// The tokenizer file, which must hold exactly the model's vocabulary.
fn load_vocab(vocab: &Path, config: &ModelConfig) -> Result<Vocab, BundleError> {
    let invalid = |message: String| BundleError::Invalid {
        path: vocab.to_owned(),
        message,
    };
    let table = Vocab::load(vocab).map_err(|e| invalid(e.to_string()))?;
    if table.len() != config.vocab_size {
        return Err(invalid(format!(
            "{} tokens, the model has a vocabulary of {}",
            table.len(),
            config.vocab_size
        )));
    }
    Ok(table)
}

/// Calibrate and quantize the encoder, write its ONNX and NNEF, and list the
/// int8 artefact: first where it is some CPU's default, after fp32 (opt-in
/// only) otherwise, since the device runs the first artefact listing its CPU.
fn add_int8(
    exported: &export::Exported,
    options: &BuildOptions,
    out_dir: &Path,
    artefacts: &mut Vec<Artefact>,
) -> Result<(), BundleError> {
    let cal = quant::calibrate(
        &exported.encoder,
        exported.config.input_size,
        &options.calibration_images,
    )?;
    let int8 = quant::quantize_encoder(&exported.encoder, &cal)?;
    let q_onnx = out_dir.join(INT8_ONNX);
    std::fs::write(&q_onnx, int8.encode_to_vec()).map_err(BundleError::io(&q_onnx))?;
    compile(&q_onnx, &out_dir.join(INT8_NNEF))?;
    let int8 = Artefact {
        precision: Precision::Int8,
        targets: options.int8_targets.clone(),
        encoder: INT8_NNEF.into(),
        decoder: "decoder.nnef.tar".into(),
    };
    if options.int8_targets.is_empty() {
        artefacts.push(int8);
    } else {
        artefacts.insert(0, int8);
    }
    Ok(())
}

/// Write `parity.json`: the expected outputs come from the ONNX graphs, so
/// the NNEF artefacts are checked against the form they were compiled from
/// (and the int8 encoder's, where the bundle has one, from its ONNX).
fn write_parity(
    config: &ModelConfig,
    options: &BuildOptions,
    (enc_onnx, dec_onnx): (&Path, &Path),
    out_dir: &Path,
) -> Result<(), BundleError> {
    let reference = TractRuntime::from_files(config, enc_onnx, dec_onnx, &TractOptions::default())?;
    let image = match &options.parity_image {
        Some(image) => image.clone(),
        None => synthetic_image(config.input_size),
    };
    let mut parity = Parity::generate(&reference, image, options.bos_id, options.parity_steps)
        .map_err(|e| BundleError::Invalid {
            path: enc_onnx.to_owned(),
            message: format!("parity run failed: {e}"),
        })?;
    if !options.calibration_images.is_empty() {
        parity.int8 = Some(int8_parity(
            config,
            &out_dir.join(INT8_ONNX),
            dec_onnx,
            &parity.image,
        )?);
    }
    parity.write(&out_dir.join("parity.json"))
}

/// The manifest entry (size and sha256) of the file `name` in `dir`.
fn file_entry(dir: &Path, name: &str) -> Result<FileEntry, BundleError> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(BundleError::io(&path))?;
    Ok(FileEntry {
        sha256: sha256_hex(&bytes),
        bytes: bytes.len() as u64,
    })
}

pub(super) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), BundleError> {
    let path = dir.join(MANIFEST);
    let text = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    std::fs::write(&path, text).map_err(BundleError::io(&path))
}

/// The int8 encoder at `q_onnx` (with the fp32 decoder at `dec_onnx`) run on the
/// parity image: the values `parity.json` holds for it.
pub(super) fn int8_parity(
    config: &ModelConfig,
    q_onnx: &Path,
    dec_onnx: &Path,
    image: &[f32],
) -> Result<EncoderValues, BundleError> {
    let rt = TractRuntime::from_files(config, q_onnx, dec_onnx, &TractOptions::default())?;
    Ok(rt
        .encode(image)
        .map_err(|e| BundleError::Invalid {
            path: q_onnx.to_path_buf(),
            message: format!("int8 parity run failed: {e}"),
        })?
        .into())
}

/// Recompile a bundle's NNEF artefacts from its ONNX graphs with this build's
/// tract (NNEF is tied to the tract version), then rewrite the hashes and the
/// tract version in the manifest. The bundle must verify before and after.
pub fn recompile(dir: &Path) -> Result<Bundle, BundleError> {
    let bundle = Bundle::open(dir)?;
    let mut manifest = bundle.manifest().clone();
    let fp32 = manifest
        .fp32()
        .cloned()
        .ok_or_else(|| BundleError::Invalid {
            path: dir.join(MANIFEST),
            message: "no fp32 artefact".into(),
        })?;
    compile(&dir.join(&manifest.onnx_encoder), &dir.join(&fp32.encoder))?;
    compile(&dir.join(&manifest.onnx_decoder), &dir.join(&fp32.decoder))?;
    if manifest.files.contains_key(INT8_ONNX) {
        compile(&dir.join(INT8_ONNX), &dir.join(INT8_NNEF))?;
    } else {
        manifest
            .artefacts
            .retain(|a| a.precision == Precision::Fp32);
    }
    let keep: BTreeSet<String> = manifest
        .referenced_files()
        .iter()
        .map(|s| s.to_string())
        .collect();
    manifest
        .files
        .retain(|name, _| keep.contains(name) || name == INT8_ONNX);
    for (name, entry) in manifest.files.iter_mut() {
        *entry = file_entry(dir, name)?;
    }
    manifest.tract_version = TRACT_VERSION.into();
    write_manifest(dir, &manifest)?;
    Bundle::open(dir)
}

/// Add (or replace) a bundle's view check: write `view_check.safetensors`,
/// name it in the manifest with its hash, and re-open the bundle through the
/// device's checks.
pub fn attach_view_check(
    dir: &Path,
    check: &crate::view_check::ViewCheck,
) -> Result<Bundle, BundleError> {
    attach(dir, crate::view_check::FILE, &check.to_bytes(), |m| {
        &mut m.view_check
    })
}

/// Add (or replace) a bundle's impression sentence bank, as
/// [`attach_view_check`] does.
pub fn attach_impression_bank(
    dir: &Path,
    bank: &crate::impression::SentenceBank,
) -> Result<Bundle, BundleError> {
    let bytes = serde_json::to_vec_pretty(bank).expect("sentence bank serialises");
    attach(dir, crate::impression::bank::FILE, &bytes, |m| {
        &mut m.impression_bank
    })
}

/// Write `bytes` as `name` into the bundle, point the manifest `slot` at it
/// (removing the file it named before, if another), hash it, re-open.
fn attach(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    slot: impl Fn(&mut Manifest) -> &mut Option<String>,
) -> Result<Bundle, BundleError> {
    let bundle = Bundle::open(dir)?;
    let mut manifest = bundle.manifest().clone();
    if let Some(old) = slot(&mut manifest).take().filter(|old| old != name) {
        manifest.files.remove(&old);
        let path = dir.join(&old);
        std::fs::remove_file(&path).map_err(BundleError::io(&path))?;
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(BundleError::io(&path))?;
    manifest.files.insert(
        name.into(),
        FileEntry {
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        },
    );
    *slot(&mut manifest) = Some(name.into());
    write_manifest(dir, &manifest)?;
    Bundle::open(dir)
}
