//! `manifest.json`: what a bundle holds and how the device must run it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model_config::ModelConfig;
use crate::observation::Observation;
use crate::preprocess::PreprocessOptions;

/// Version of the manifest layout; a device refuses any other.
pub const SCHEMA_VERSION: u32 = 1;

/// The tract release the NNEF artefacts were written with. NNEF files are tied
/// to it, so it must equal the version pinned in Cargo.toml (a unit test checks).
pub const TRACT_VERSION: &str = "0.23.9";

/// Numeric precision of an artefact's weights and arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
    Int8,
    /// f16 weights and arithmetic (tract's native f16 kernels need a CPU with
    /// FP16 arithmetic, target `aarch64+fp16`; elsewhere tract emulates it slowly).
    F16,
}

impl Precision {
    /// The name used in the manifest and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
            Precision::F16 => "f16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "int8" => Ok(Precision::Int8),
            "f16" => Ok(Precision::F16),
            other => Err(format!("unknown precision {other:?} (fp32, int8 or f16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A compiled encoder/decoder pair and the CPUs it is meant for: each target is
/// an architecture (`std::env::consts::ARCH`), optionally with CPU features the
/// artefact needs, joined by `+` (`aarch64+fp16`, `aarch64+dotprod`; see
/// [`target_matches`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artefact {
    pub precision: Precision,
    pub targets: Vec<String>,
    /// NNEF tar of the encoder, relative to the bundle folder.
    pub encoder: String,
    /// NNEF tar of the decoder step.
    pub decoder: String,
}

/// The tokenizer vocabulary file and its special tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocabEntry {
    pub file: String,
    /// [`crate::text::Vocab::hash`] of the token table, so reports can name it
    /// (the file's own hash is in `files`).
    pub sha256: String,
    pub bos_id: u32,
    pub eos_id: u32,
}

/// An observation and its decision threshold on the sigmoid score, chosen on
/// validation data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationThreshold {
    pub observation: Observation,
    pub threshold: f32,
    /// Sigmoid score → probability, fitted on validation films (`cxr-edge
    /// calibrate --write`); absent: scores are shown as model scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::calibration::Calibration>,
    /// Score from which a flagged finding is stated without hedging, chosen on
    /// validation films (`cxr-edge consistency --write`); absent: always hedged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definite: Option<f32>,
}

/// A file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub model_id: String,
    /// `cxr-edge <version>` that wrote the bundle.
    pub created_by: String,
    pub tract_version: String,
    pub model: ModelConfig,
    pub preprocess: PreprocessOptions,
    pub vocab: VocabEntry,
    /// Maximum generated length in tokens (without BOS).
    pub max_len: usize,
    pub observations: Vec<ObservationThreshold>,
    /// Compiled artefacts, most specific first: the device runs the first whose
    /// `targets` include its architecture.
    pub artefacts: Vec<Artefact>,
    /// The ONNX graphs the artefacts were compiled from (reference and bench).
    pub onnx_encoder: String,
    pub onnx_decoder: String,
    /// Inputs and expected outputs ([`super::Parity`]).
    pub parity: String,
    /// The pixel-based frontal-chest check ([`crate::view_check`]), if fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_check: Option<String>,
    /// Sentences of real impressions the device states findings with
    /// ([`crate::impression::SentenceBank`]), if built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impression_bank: Option<String>,
    /// Every other file of the bundle, by name.
    pub files: BTreeMap<String, FileEntry>,
    /// Training data provenance (free JSON from the trainer).
    pub provenance: serde_json::Value,
    /// Validation metrics (free JSON from the trainer).
    pub metrics: serde_json::Value,
}

impl Manifest {
    /// The artefact to run on `arch` without any optional CPU feature, or
    /// `None` if no artefact lists it.
    pub fn artefact_for(&self, arch: &str) -> Option<&Artefact> {
        self.artefact_for_cpu(arch, &[])
    }

    /// The artefact to run on a CPU of `arch` with `features` (names as in
    /// [`target_matches`]): the first whose targets include one it satisfies.
    pub fn artefact_for_cpu(&self, arch: &str, features: &[&str]) -> Option<&Artefact> {
        self.artefacts
            .iter()
            .find(|a| a.targets.iter().any(|t| target_matches(t, arch, features)))
    }

    /// The fp32 artefact (always present in a valid bundle).
    pub fn fp32(&self) -> Option<&Artefact> {
        self.artefacts
            .iter()
            .find(|a| a.precision == Precision::Fp32)
    }

    /// The threshold for `observation`, if the trainer chose one.
    pub fn threshold(&self, observation: Observation) -> Option<f32> {
        self.observations
            .iter()
            .find(|o| o.observation == observation)
            .map(|o| o.threshold)
    }

    /// File names the manifest refers to outside `files`, each of which must be
    /// listed in `files` with its hash.
    pub fn referenced_files(&self) -> Vec<&str> {
        let mut names = vec![
            self.vocab.file.as_str(),
            self.onnx_encoder.as_str(),
            self.onnx_decoder.as_str(),
            self.parity.as_str(),
        ];
        for a in &self.artefacts {
            names.push(&a.encoder);
            names.push(&a.decoder);
        }
        if let Some(v) = &self.view_check {
            names.push(v);
        }
        if let Some(b) = &self.impression_bank {
            names.push(b);
        }
        names
    }
}

/// Does the target `arch[+feature…]` fit a CPU of `arch` with `features`?
/// Features: `fp16` (FP16 arithmetic, what tract's f16 kernels need) and
/// `dotprod` (SDOT/UDOT, tract's int8 dot-product kernel). A feature this build
/// does not know is never satisfied, so such an artefact is left to CPUs that
/// report it.
pub fn target_matches(target: &str, arch: &str, features: &[&str]) -> bool {
    let mut parts = target.split('+');
    parts.next() == Some(arch) && parts.all(|f| features.contains(&f))
}

/// The optional CPU features of [`target_matches`] this CPU has, as tract
/// detects them (so an artefact is chosen only where tract runs it natively).
pub fn cpu_features() -> Vec<&'static str> {
    let mut features = Vec::new();
    if tract_linalg::has_fp16() {
        features.push("fp16");
    }
    #[cfg(target_arch = "aarch64")]
    if tract_linalg::arm64::has_dotprod() {
        features.push("dotprod");
    }
    features
}

#[cfg(test)]
mod tests {
    use super::TRACT_VERSION;

    #[test]
    fn targets_match_arch_and_every_named_feature() {
        use super::target_matches;
        assert!(target_matches("aarch64", "aarch64", &[]));
        assert!(target_matches("aarch64", "aarch64", &["fp16"]));
        assert!(target_matches(
            "aarch64+fp16",
            "aarch64",
            &["dotprod", "fp16"]
        ));
        assert!(!target_matches("aarch64+fp16", "aarch64", &["dotprod"]));
        assert!(!target_matches("aarch64+fp16", "x86_64", &["fp16"]));
        assert!(!target_matches(
            "aarch64+sve9",
            "aarch64",
            &["fp16", "dotprod"]
        ));
        assert!(!target_matches("aarch", "aarch64", &[]));
    }

    #[test]
    fn tract_version_matches_the_cargo_pin() {
        let cargo = include_str!("../../Cargo.toml");
        for krate in ["tract-nnef", "tract-onnx", "tract-core"] {
            let pin = format!("{krate} = \"={TRACT_VERSION}\"");
            assert!(cargo.contains(&pin), "Cargo.toml lacks `{pin}`");
        }
    }
}
