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

/// Which image encoder a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// Conv-BN-ReLU stages of [`ModelConfig::channels`] (trained from scratch).
    #[default]
    Plain,
    /// The first `blocks` inverted-residual blocks of MobileNetV2 1.0 (see
    /// [`MOBILENET_V2`]); `channels` is then unused.
    #[serde(rename = "mobilenet_v2")]
    MobileNetV2 { blocks: usize },
}

/// One inverted-residual block of MobileNetV2 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvertedResidual {
    pub cin: usize,
    /// Channels after the 1×1 expansion (`None`: no expansion, t = 1).
    pub expand: Option<usize>,
    pub cout: usize,
    pub stride: usize,
}

impl InvertedResidual {
    /// Channels of the depthwise convolution.
    pub fn hidden(&self) -> usize {
        self.expand.unwrap_or(self.cin)
    }

    /// The block adds its input to its output.
    pub fn residual(&self) -> bool {
        self.stride == 1 && self.cin == self.cout
    }
}

/// MobileNetV2 1.0 as (expansion t, channels c, repeats n, first stride s), after
/// a 3×3 stride-2 stem convolution to [`MOBILENET_V2_STEM`] channels. Every
/// convolution has a bias (batch norm folded in), expansions and depthwise
/// convolutions end in ReLU6, projections are linear, and padding is TFLite's
/// "same" (output side `ceil(in / stride)`, the odd row and column of padding at
/// the bottom and right).
///
/// Parameter names: `enc.mb.stem.{weight,bias}` (`[32, 1, 3, 3]`: the grey image's
/// one channel), and per block `i` `enc.mb.b{i}.expand` (1×1, absent for block 0),
/// `enc.mb.b{i}.dw` (3×3 depthwise, `[hidden, 1, 3, 3]`), `enc.mb.b{i}.project`
/// (1×1), each `.weight` and `.bias`.
pub const MOBILENET_V2: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Output channels of MobileNetV2's stem convolution.
pub const MOBILENET_V2_STEM: usize = 32;

/// The 17 blocks of [`MOBILENET_V2`], in order.
pub fn mobilenet_v2_blocks() -> Vec<InvertedResidual> {
    let mut out = Vec::new();
    let mut cin = MOBILENET_V2_STEM;
    for (t, c, n, s) in MOBILENET_V2 {
        for r in 0..n {
            out.push(InvertedResidual {
                cin,
                expand: (t != 1).then_some(cin * t),
                cout: c,
                stride: if r == 0 { s } else { 1 },
            });
            cin = c;
        }
    }
    out
}

/// TFLite "same" padding of one axis: (before, after).
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// Architecture hyper-parameters. Everything needed to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Square input side in pixels.
    pub input_size: usize,
    /// The image encoder (absent in older configs: [`EncoderKind::Plain`]).
    #[serde(default)]
    pub encoder: EncoderKind,
    /// Output channels per encoder stage (each stage halves the resolution;
    /// plain encoder only).
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
            encoder: EncoderKind::Plain,
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
        match self.encoder {
            EncoderKind::Plain => {
                for _ in &self.channels {
                    s = s.div_ceil(2);
                }
            }
            EncoderKind::MobileNetV2 { blocks } => {
                s = s.div_ceil(2);
                for b in mobilenet_v2_blocks().iter().take(blocks) {
                    s = s.div_ceil(b.stride);
                }
            }
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
        match self.encoder {
            EncoderKind::Plain => *self.channels.last().expect("at least one encoder stage"),
            EncoderKind::MobileNetV2 { blocks } => mobilenet_v2_blocks()
                .get(blocks.max(1) - 1)
                .map_or(MOBILENET_V2_STEM, |b| b.cout),
        }
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
        if let EncoderKind::MobileNetV2 { blocks } = self.encoder {
            return self.mobilenet_macs(blocks);
        }
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

    fn mobilenet_macs(&self, blocks: usize) -> u64 {
        let mut side = (self.input_size as u64).div_ceil(2);
        let mut macs = side * side * MOBILENET_V2_STEM as u64 * 9;
        for b in mobilenet_v2_blocks().iter().take(blocks) {
            let (cin, hid, cout) = (b.cin as u64, b.hidden() as u64, b.cout as u64);
            if b.expand.is_some() {
                macs += side * side * cin * hid;
            }
            side = side.div_ceil(b.stride as u64);
            macs += side * side * hid * 9 + side * side * hid * cout;
        }
        macs + self.grid_channels() as u64 * crate::Observation::COUNT as u64
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

    #[test]
    fn mobilenet_v2_matches_its_published_shape() {
        let blocks = mobilenet_v2_blocks();
        assert_eq!(blocks.len(), 17);
        assert_eq!(blocks.iter().filter(|b| b.residual()).count(), 10);
        let c = ModelConfig {
            encoder: EncoderKind::MobileNetV2 { blocks: 17 },
            ..ModelConfig::default()
        };
        assert_eq!((c.grid_side(), c.grid_channels()), (7, 320));
        // 300 M MACs published for the whole network at 224, of which the last
        // 1×1 convolution (320 → 1280 at 7×7) and the classifier are ~21 M.
        let macs = c.encoder_macs();
        assert!((270_000_000..290_000_000).contains(&macs), "{macs}");
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(7, 3, 1), (1, 1));
    }
}
