//! The model's architecture, shared by the trainer (which builds it in libtorch),
//! the exporter (which writes it as ONNX from the checkpoint's safetensors) and the
//! bundle manifest (which tells the device how to run it).
//!
//! # Encoder (image → grid, pooled vector, findings logits, decoder start state)
//! Input `image`: `[1, 1, S, S]` f32, already preprocessed (see [`crate::preprocess`]).
//! For each stage `i` in `0..channels.len()` there are two conv-BN-ReLU layers:
//! `enc.s{i}.conv0` (3×3, stride 2, pad 1, no bias) + `enc.s{i}.bn0`, then
//! `enc.s{i}.conv1` (3×3, stride 1, pad 1, no bias) + `enc.s{i}.bn1`.
//! BatchNorm parameters are `weight`, `bias`, `running_mean`, `running_var`
//! (eps [`BN_EPS`]). The last stage's output `[1, C, h, w]` becomes
//! - `grid`: `[1, N, C]` with `N = h·w` (row-major over h, w),
//! - `pooled`: `[1, C]`, the mean over the grid,
//! - `findings`: `[1, 10]` = `enc.head` Linear(C → 10) of `pooled`, in
//!   [`crate::Observation::ALL`] order (logits; sigmoid gives the score),
//! - `h0`: `[1, state_size]`, the decoder's start state (see below),
//! - `grid_proj`: `[1, N, A]` = `dec.att_grid` Linear(C → A) of `grid` (attention only;
//!   for the merge decoder it is `dec.img` Linear(C → H) of `pooled`, shape `[1, H]`).
//!
//! # Attention decoder step (the default)
//! Inputs: `token` `[1]` i64, `h` `[1, H]`, `grid` `[1, N, C]`, `grid_proj` `[1, N, A]`.
//! ```text
//! e      = dec.emb[token]                                  (E)
//! score  = dec.att_v( tanh(grid_proj + dec.att_h(h)) )     (N)   att_h, att_v: no bias
//! alpha  = softmax(score)                                  (N)
//! ctx    = alpha · grid                                    (C)
//! x      = [e ; ctx]                                       (E + C)
//! gi     = dec.gru_ih(x)  gh = dec.gru_hh(h)              (3H each, chunks r, z, n)
//! r = σ(gi_r + gh_r)  z = σ(gi_z + gh_z)  n = tanh(gi_n + r ⊙ gh_n)
//! h'     = (1 − z) ⊙ n + z ⊙ h
//! logits = dec.out([h' ; ctx])                             (V)
//! ```
//! `h0 = tanh(dec.init_h(pooled))`. Outputs: `logits` `[1, V]`, `h_new` `[1, H]`,
//! `attn` `[1, N]`.
//!
//! # Merge decoder step (the seed study's architecture, for comparison)
//! State is `[h ; c]` of an LSTM (`[1, 2H]`); `h0` is zeros. Inputs: `token`, `h`,
//! `grid_proj` (here the image vector `[1, H]`):
//! ```text
//! e = dec.emb[token];  gates = dec.lstm_ih(e) + dec.lstm_hh(h)  (4H, chunks i, f, g, o)
//! c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g);  h' = σ(o) ⊙ tanh(c')
//! logits = dec.out( relu(grid_proj + h') )
//! ```
//! Outputs: `logits`, `h_new` = `[h' ; c']`, `attn` (zeros, `[1, N]`).
//!
//! # Exported form ([`crate::export`])
//! A checkpoint folder holds `model.safetensors` and `config.json`. Graph inputs and
//! outputs keep the order listed above (encoder: `grid`, `grid_proj`, `pooled`,
//! `findings`, `h0`). The merge model's ONNX graphs leave out what is constant or
//! unused: the encoder has no `h0` output, the decoder no `grid` input and no
//! `attn` output; [`crate::runtime::Runtime`] implementations supply the zeros.

//!
//! # Findings conditioning (`findings_conditioned: true`)
//! The decoder then writes from what the findings head flags, so the text agrees
//! with the flags shown next to it. The checkpoint holds `dec.flag_thresholds`
//! `[10]` (the decision thresholds chosen on validation data) and
//! ```text
//! flags = float(sigmoid(findings) >= dec.flag_thresholds)   (10)
//! cond  = [pooled ; flags]                                   (C + 10)
//! ```
//! replaces `pooled` as the input of `dec.init_h` (attention) or `dec.img` (merge),
//! whose weights are then `[H, C + 10]`. In training the flags are the paired
//! report's own findings (teacher forcing); on the device they come from the head.

use serde::{Deserialize, Serialize};

/// BatchNorm epsilon used by the trainer and by BN folding in the exporter.
pub const BN_EPS: f64 = 1e-5;

/// Which text decoder a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DecoderKind {
    /// GRU with additive attention over the grid at every word.
    #[default]
    Attention,
    /// The seed's merge model: pooled image vector merged with an LSTM of the text.
    Merge,
}

/// Architecture hyper-parameters. Everything needed to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Square input side in pixels.
    pub input_size: usize,
    /// Output channels per encoder stage (each stage halves the resolution).
    pub channels: Vec<usize>,
    pub decoder: DecoderKind,
    /// Word embedding size E.
    pub embed_dim: usize,
    /// Recurrent hidden size H.
    pub hidden: usize,
    /// Attention projection size A.
    pub attn_dim: usize,
    /// Vocabulary size V (including the special tokens).
    pub vocab_size: usize,
    /// Maximum generated length in tokens (without BOS).
    pub max_len: usize,
    /// Condition the decoder on the findings head's decisions (see the module
    /// doc, "Findings conditioning"). Absent in older configs: `false`.
    #[serde(default)]
    pub findings_conditioned: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            input_size: 224,
            channels: vec![16, 32, 64, 96, 128],
            decoder: DecoderKind::Attention,
            embed_dim: 128,
            hidden: 256,
            attn_dim: 128,
            vocab_size: 0,
            max_len: 40,
            findings_conditioned: false,
        }
    }
}

impl ModelConfig {
    /// Side of the feature grid.
    pub fn grid_side(&self) -> usize {
        let mut s = self.input_size;
        for _ in &self.channels {
            s = s.div_ceil(2);
        }
        s
    }

    /// Width of the vector the decoder's start state (or image vector) is made from.
    pub fn cond_size(&self) -> usize {
        self.grid_channels()
            + if self.findings_conditioned {
                crate::Observation::COUNT
            } else {
                0
            }
    }

    /// Number of grid cells N.
    pub fn grid_cells(&self) -> usize {
        self.grid_side() * self.grid_side()
    }

    /// Channels C of the grid.
    pub fn grid_channels(&self) -> usize {
        *self.channels.last().expect("at least one encoder stage")
    }

    /// Size of the decoder state vector.
    pub fn state_size(&self) -> usize {
        match self.decoder {
            DecoderKind::Attention => self.hidden,
            DecoderKind::Merge => 2 * self.hidden,
        }
    }

    /// Multiply-accumulates of one encoder pass (convolutions and head).
    pub fn encoder_macs(&self) -> u64 {
        let mut side = self.input_size as u64;
        let mut cin = 1u64;
        let mut macs = 0u64;
        for &c in &self.channels {
            let c = c as u64;
            side = side.div_ceil(2);
            macs += side * side * c * cin * 9;
            macs += side * side * c * c * 9;
            cin = c;
        }
        macs + cin * crate::Observation::COUNT as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_encoder_fits_the_arm_budget() {
        let c = ModelConfig::default();
        assert_eq!(c.grid_side(), 7);
        assert_eq!(c.grid_cells(), 49);
        let macs = c.encoder_macs();
        assert!(macs < 500_000_000, "{macs}");
        assert!(macs > 50_000_000, "{macs}");
    }
}
