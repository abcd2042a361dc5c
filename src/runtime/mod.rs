//! The model seam: everything above this trait is tract-free.

pub mod fake;
pub mod profile;
pub mod tract;

use thiserror::Error;

/// What the encoder returns for one image (shapes in [`crate::model_config`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncoderOutput {
    /// `[N, C]` row-major.
    pub grid: Vec<f32>,
    /// `[N, A]` for attention decoders, `[H]` for the merge decoder.
    pub grid_proj: Vec<f32>,
    /// `[C]`.
    pub pooled: Vec<f32>,
    /// `[Observation::COUNT]` findings logits in [`crate::Observation::ALL`] order.
    pub findings: Vec<f32>,
    /// Decoder start state.
    pub h0: Vec<f32>,
}

/// What one decoder step returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepOutput {
    /// `[V]` unnormalised scores of the next token.
    pub logits: Vec<f32>,
    /// New decoder state.
    pub state: Vec<f32>,
    /// `[N]` attention weights over the grid (zeros for the merge decoder).
    pub attn: Vec<f32>,
}

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("model input has {got} values, expected {expected}")]
    InputSize { expected: usize, got: usize },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// A model that can encode an image and take single decoder steps.
pub trait Runtime {
    /// Run the encoder on a preprocessed `S × S` image.
    fn encode(&self, image: &[f32]) -> Result<EncoderOutput, RuntimeError>;

    /// Run one decoder step from `state` after emitting `token`.
    fn step(
        &self,
        token: u32,
        state: &[f32],
        encoded: &EncoderOutput,
    ) -> Result<StepOutput, RuntimeError>;
}
