//! Checkpoint → ONNX, in Rust and without libtorch.
//!
//! The trainer saves `model.safetensors` (libtorch `VarStore::save`, names from
//! `nn::Path`) and `config.json` (a serialised [`ModelConfig`]) in one folder. This
//! module reads both and writes two ONNX graphs (IR 8, opset 17, initializers as
//! raw little-endian data) exactly as [`crate::model_config`] specifies them:
//! the encoder (batch-norm folded into the convolutions) and the single-step
//! decoder. Their input and output names, in order, are [`ENCODER_INPUTS`],
//! [`ENCODER_OUTPUTS`], [`DECODER_INPUTS`] and [`DECODER_OUTPUTS`]; the merge
//! decoder's graphs leave out the outputs that are constant zeros (`h0`, `attn`)
//! and the decoder's `grid` input, and the runtime supplies the zeros.

mod decoder;
mod encoder;
pub mod equalize;
mod graph;
pub mod quant;
mod weights;

use std::path::{Path, PathBuf};

use prost::Message;
use thiserror::Error;
use tract_onnx::pb::ModelProto;

pub use graph::{IR_VERSION, OPSET};
pub use weights::Weights;

use crate::model_config::{DecoderKind, EncoderKind, ModelConfig};

/// File names the trainer writes into a checkpoint folder.
pub const CHECKPOINT_WEIGHTS: &str = "model.safetensors";
pub const CHECKPOINT_CONFIG: &str = "config.json";

/// Encoder graph inputs and outputs, in graph order.
pub const ENCODER_INPUTS: [&str; 1] = ["image"];
pub const ENCODER_OUTPUTS: [&str; 5] = ["grid", "grid_proj", "pooled", "findings", "h0"];
/// Attention decoder graph inputs and outputs, in graph order.
pub const DECODER_INPUTS: [&str; 4] = ["token", "h", "grid", "grid_proj"];
pub const DECODER_OUTPUTS: [&str; 3] = ["logits", "h_new", "attn"];

/// Names of the graph inputs and outputs for a decoder kind, in graph order.
pub fn interface(kind: DecoderKind) -> GraphInterface {
    match kind {
        DecoderKind::Attention => GraphInterface {
            encoder_outputs: &ENCODER_OUTPUTS,
            decoder_inputs: &DECODER_INPUTS,
            decoder_outputs: &DECODER_OUTPUTS,
        },
        DecoderKind::Merge => GraphInterface {
            encoder_outputs: &ENCODER_OUTPUTS[..4],
            decoder_inputs: &["token", "h", "grid_proj"],
            decoder_outputs: &DECODER_OUTPUTS[..2],
        },
    }
}

/// Input and output names of the exported graphs for one decoder kind.
#[derive(Debug, Clone, Copy)]
pub struct GraphInterface {
    pub encoder_outputs: &'static [&'static str],
    pub decoder_inputs: &'static [&'static str],
    pub decoder_outputs: &'static [&'static str],
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: no float tensor named `{name}` (the model config expects it)")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {got:?}, the model config implies {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("{path}: not a model config: {source}")]
    Config {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("int8 calibration: {0}")]
    Calibration(String),
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
}

/// Both graphs of one model.
#[derive(Debug, Clone)]
pub struct Exported {
    pub config: ModelConfig,
    pub encoder: ModelProto,
    pub decoder: ModelProto,
}

impl Exported {
    /// Write `encoder.onnx` and `decoder.onnx` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), ExportError> {
        let write = |name: &str, model: &ModelProto| -> Result<PathBuf, ExportError> {
            let path = dir.join(name);
            std::fs::write(&path, model.encode_to_vec()).map_err(|source| ExportError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        };
        Ok((
            write("encoder.onnx", &self.encoder)?,
            write("decoder.onnx", &self.decoder)?,
        ))
    }
}

/// Read `config.json` from a checkpoint folder.
pub fn read_config(checkpoint_dir: &Path) -> Result<ModelConfig, ExportError> {
    let path = checkpoint_dir.join(CHECKPOINT_CONFIG);
    let text = std::fs::read(&path).map_err(|source| ExportError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| ExportError::Config { path, source })
}

/// Export the checkpoint in `checkpoint_dir` (`config.json` + `model.safetensors`).
pub fn export_checkpoint(checkpoint_dir: &Path) -> Result<Exported, ExportError> {
    let config = read_config(checkpoint_dir)?;
    let weights = Weights::load(&checkpoint_dir.join(CHECKPOINT_WEIGHTS))?;
    export(&config, &weights)
}

/// Build both graphs from a config and its weights.
pub fn export(config: &ModelConfig, weights: &Weights) -> Result<Exported, ExportError> {
    validate(config)?;
    Ok(Exported {
        config: config.clone(),
        encoder: encoder::build(config, weights)?,
        decoder: decoder::build(config, weights)?,
    })
}

fn validate(config: &ModelConfig) -> Result<(), ExportError> {
    let problem = if let EncoderKind::MobileNetV2 { blocks } = config.encoder {
        (!(1..=17).contains(&blocks)).then_some("MobileNetV2 keeps 1 to 17 blocks")
    } else if config.channels.is_empty() {
        Some("no encoder stages")
    } else {
        None
    };
    let problem = problem.or(if config.input_size == 0 {
        Some("input_size is 0")
    } else if config.vocab_size == 0 {
        Some("vocab_size is 0")
    } else if config.hidden == 0 || config.embed_dim == 0 || config.attn_dim == 0 {
        Some("a zero layer size")
    } else {
        None
    });
    match problem {
        Some(p) => Err(ExportError::InvalidConfig(p.into())),
        None => Ok(()),
    }
}
