//! The encoder–decoder in libtorch, following the spec in
//! `cxr_edge::model_config` exactly (parameter names, shapes, step equations), so
//! the exporter can rebuild it from the saved safetensors.

use cxr_edge::model_config::EncoderKind;
use cxr_edge::{DecoderKind, ModelConfig, Observation};

use crate::mobilenet::MobileNetV2;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Train or eval: dropout and batch-norm statistics depend on it, so it is
/// always passed explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

impl Mode {
    fn train(self) -> bool {
        self == Mode::Train
    }
}

struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(p: &nn::Path, j: usize, cin: i64, cout: i64, stride: i64) -> ConvBn {
        let cfg = nn::ConvConfig {
            stride,
            padding: 1,
            bias: false,
            ..Default::default()
        };
        let bn_cfg = nn::BatchNormConfig {
            eps: cxr_edge::model_config::BN_EPS,
            ..Default::default()
        };
        ConvBn {
            conv: nn::conv2d(p / format!("conv{j}"), cin, cout, 3, cfg),
            bn: nn::batch_norm2d(p / format!("bn{j}"), cout, bn_cfg),
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        self.bn.forward_t(&x.apply(&self.conv), mode.train()).relu()
    }
}

/// Encoder outputs for a batch.
pub struct Encoded {
    /// `[B, N, C]`
    pub grid: Tensor,
    /// `[B, N, A]` (attention) or `[B, H]` (merge)
    pub grid_proj: Tensor,
    /// `[B, C]`
    pub pooled: Tensor,
    /// `[B, 10]`
    pub findings: Tensor,
    /// `[B, state]`
    pub h0: Tensor,
}

/// One decoder step's outputs for a batch.
pub struct Step {
    pub logits: Tensor,
    pub state: Tensor,
    pub attn: Tensor,
}

enum Decoder {
    Attention {
        init_h: nn::Linear,
        att_grid: nn::Linear,
        att_h: nn::Linear,
        att_v: nn::Linear,
        gru_ih: nn::Linear,
        gru_hh: nn::Linear,
    },
    Merge {
        img: nn::Linear,
        lstm_ih: nn::Linear,
        lstm_hh: nn::Linear,
    },
}

/// The image encoder's convolutional part.
enum Backbone {
    Plain(Vec<(ConvBn, ConvBn)>),
    MobileNetV2(MobileNetV2),
}

/// Optimizer parameter group of a pretrained backbone (its learning rate can
/// be set apart from the rest's, group 0).
pub const BACKBONE_GROUP: usize = 1;

pub struct CxrModel {
    pub config: ModelConfig,
    backbone: Backbone,
    head: nn::Linear,
    emb: nn::Embedding,
    decoder: Decoder,
    out: nn::Linear,
    /// Decision thresholds for findings conditioning (`dec.flag_thresholds`,
    /// not trained; set from validation data before a checkpoint is saved).
    thresholds: Option<Tensor>,
    dropout: f64,
    /// In training, the text loss does not reach the encoder: the decoder reads a
    /// detached grid, so only the findings loss shapes the image features.
    pub detach_text: bool,
}

impl CxrModel {
    pub fn new(root: &nn::Path, config: &ModelConfig, dropout: f64) -> CxrModel {
        let enc = root / "enc";
        let dec = root / "dec";
        let backbone = match config.encoder {
            EncoderKind::Plain => {
                let mut stages = Vec::new();
                let mut cin = 1i64;
                for (i, &c) in config.channels.iter().enumerate() {
                    let p = &enc / format!("s{i}");
                    let c = c as i64;
                    stages.push((ConvBn::new(&p, 0, cin, c, 2), ConvBn::new(&p, 1, c, c, 1)));
                    cin = c;
                }
                Backbone::Plain(stages)
            }
            EncoderKind::MobileNetV2 { blocks } => Backbone::MobileNetV2(MobileNetV2::new(
                &(&enc / "mb").set_group(BACKBONE_GROUP),
                blocks,
                1,
            )),
        };
        let c = config.grid_channels() as i64;
        let (e, h, a, v) = (
            config.embed_dim as i64,
            config.hidden as i64,
            config.attn_dim as i64,
            config.vocab_size as i64,
        );
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        let head = nn::linear(
            &enc / "head",
            c,
            Observation::COUNT as i64,
            Default::default(),
        );
        let thresholds = config.findings_conditioned.then(|| {
            let t = dec.ones_no_train("flag_thresholds", &[Observation::COUNT as i64]);
            let _ = tch::no_grad(|| t.shallow_clone().fill_(0.5));
            t
        });
        let cond = config.cond_size() as i64;
        let emb = nn::embedding(&dec / "emb", v, e, Default::default());
        let (decoder, out) = match config.decoder {
            DecoderKind::Attention => (
                Decoder::Attention {
                    init_h: nn::linear(&dec / "init_h", cond, h, Default::default()),
                    att_grid: nn::linear(&dec / "att_grid", c, a, Default::default()),
                    att_h: nn::linear(&dec / "att_h", h, a, no_bias),
                    att_v: nn::linear(&dec / "att_v", a, 1, no_bias),
                    gru_ih: nn::linear(&dec / "gru_ih", e + c, 3 * h, Default::default()),
                    gru_hh: nn::linear(&dec / "gru_hh", h, 3 * h, Default::default()),
                },
                nn::linear(&dec / "out", h + c, v, Default::default()),
            ),
            DecoderKind::Merge => (
                Decoder::Merge {
                    img: nn::linear(&dec / "img", cond, h, Default::default()),
                    lstm_ih: nn::linear(&dec / "lstm_ih", e, 4 * h, Default::default()),
                    lstm_hh: nn::linear(&dec / "lstm_hh", h, 4 * h, Default::default()),
                },
                nn::linear(&dec / "out", h, v, Default::default()),
            ),
        };
        CxrModel {
            config: config.clone(),
            backbone,
            head,
            emb,
            decoder,
            out,
            thresholds,
            dropout,
            detach_text: false,
        }
    }

    /// The word embedding matrix `[V, E]` (`dec.emb.weight`).
    pub fn embedding_weight(&self) -> &Tensor {
        &self.emb.ws
    }

    /// Keep the stem and the first `n` blocks of a MobileNetV2 backbone as
    /// loaded (no-op for the plain encoder).
    pub fn freeze_backbone_prefix(&self, n: usize) {
        if let Backbone::MobileNetV2(net) = &self.backbone {
            net.freeze_prefix(n);
        }
    }

    /// Set the findings-conditioning thresholds (no-op for unconditioned models).
    pub fn set_thresholds(&self, t: &[f32; Observation::COUNT]) {
        if let Some(th) = &self.thresholds {
            tch::no_grad(|| {
                th.shallow_clone()
                    .copy_(&Tensor::from_slice(t).to_device(th.device()))
            });
        }
    }

    /// Encode a batch of preprocessed images `[B, 1, S, S]`. For findings-
    /// conditioned models, `flags` `[B, 10]` overrides the head's own decisions
    /// (teacher forcing in training).
    pub fn encode(&self, images: &Tensor, mode: Mode) -> Encoded {
        self.encode_with(images, mode, None)
    }

    pub fn encode_with(&self, images: &Tensor, mode: Mode, flags: Option<&Tensor>) -> Encoded {
        let x = match &self.backbone {
            Backbone::Plain(stages) => {
                let mut x = images.shallow_clone();
                for (a, b) in stages {
                    x = b.forward(&a.forward(&x, mode), mode);
                }
                x
            }
            Backbone::MobileNetV2(net) => net.forward(images),
        };
        let (bsz, c, _, _) = x.size4().expect("4-d feature map");
        let grid = x.view([bsz, c, -1]).transpose(1, 2).contiguous();
        let pooled = grid.mean_dim(1, false, Kind::Float);
        let findings = pooled.dropout(self.dropout, mode.train()).apply(&self.head);
        let (grid, pooled) = if self.detach_text && mode.train() {
            (grid.detach(), pooled.detach())
        } else {
            (grid, pooled)
        };
        let cond = match &self.thresholds {
            Some(t) => {
                let f = match flags {
                    Some(f) => f.to_kind(Kind::Float),
                    None => findings.sigmoid().ge_tensor(t).to_kind(Kind::Float),
                };
                Tensor::cat(&[&pooled, &f], 1)
            }
            None => pooled.shallow_clone(),
        };
        let (grid_proj, h0) = match &self.decoder {
            Decoder::Attention {
                init_h, att_grid, ..
            } => (grid.apply(att_grid), cond.apply(init_h).tanh()),
            Decoder::Merge { img, .. } => (
                cond.apply(img),
                Tensor::zeros(
                    [bsz, self.config.state_size() as i64],
                    (Kind::Float, images.device()),
                ),
            ),
        };
        Encoded {
            grid,
            grid_proj,
            pooled,
            findings,
            h0,
        }
    }

    /// One decoder step for a batch of tokens `[B]` (i64) from `state`.
    pub fn step(&self, tokens: &Tensor, state: &Tensor, enc: &Encoded, mode: Mode) -> Step {
        let e = tokens.apply(&self.emb).dropout(self.dropout, mode.train());
        match &self.decoder {
            Decoder::Attention {
                att_h,
                att_v,
                gru_ih,
                gru_hh,
                ..
            } => {
                let h = state;
                let score = (&enc.grid_proj + h.apply(att_h).unsqueeze(1))
                    .tanh()
                    .apply(att_v)
                    .squeeze_dim(-1);
                let alpha = score.softmax(-1, Kind::Float);
                let ctx = alpha.unsqueeze(1).bmm(&enc.grid).squeeze_dim(1);
                let x = Tensor::cat(&[&e, &ctx], 1);
                let gi = x.apply(gru_ih).chunk(3, 1);
                let gh = h.apply(gru_hh).chunk(3, 1);
                let r = (&gi[0] + &gh[0]).sigmoid();
                let z = (&gi[1] + &gh[1]).sigmoid();
                let n = (&gi[2] + &r * &gh[2]).tanh();
                let h_new = (1.0 - &z) * &n + &z * h;
                let logits = Tensor::cat(&[&h_new, &ctx], 1)
                    .dropout(self.dropout, mode.train())
                    .apply(&self.out);
                Step {
                    logits,
                    state: h_new,
                    attn: alpha,
                }
            }
            Decoder::Merge {
                lstm_ih, lstm_hh, ..
            } => {
                let hs = state.chunk(2, 1);
                let (h, c) = (&hs[0], &hs[1]);
                let g = (e.apply(lstm_ih) + h.apply(lstm_hh)).chunk(4, 1);
                let c_new = g[1].sigmoid() * c + g[0].sigmoid() * g[2].tanh();
                let h_new = g[3].sigmoid() * c_new.tanh();
                let logits = (&enc.grid_proj + &h_new)
                    .relu()
                    .dropout(self.dropout, mode.train())
                    .apply(&self.out);
                let bsz = tokens.size()[0];
                let n = enc.grid.size()[1];
                Step {
                    logits,
                    state: Tensor::cat(&[&h_new, &c_new], 1),
                    attn: Tensor::zeros([bsz, n], (Kind::Float, tokens.device())),
                }
            }
        }
    }

    /// Teacher-forced token loss over `tokens` `[B, T]` (BOS … EOS, PAD = 0):
    /// mean cross-entropy over non-PAD targets.
    pub fn text_loss(&self, enc: &Encoded, tokens: &Tensor, mode: Mode) -> Tensor {
        let t = tokens.size()[1];
        let mut state = enc.h0.shallow_clone();
        let mut total = Tensor::zeros([], (Kind::Float, tokens.device()));
        let mask = tokens.narrow(1, 1, t - 1).ne(0).to_kind(Kind::Float);
        for i in 0..t - 1 {
            let step = self.step(&tokens.select(1, i), &state, enc, mode);
            let target = tokens.select(1, i + 1);
            let logp = step.logits.log_softmax(-1, Kind::Float);
            let nll = -logp.gather(1, &target.unsqueeze(1), false).squeeze_dim(1);
            total += (nll * mask.select(1, i)).sum(Kind::Float);
            state = step.state;
        }
        total / mask.sum(Kind::Float).clamp_min(1.0)
    }

    /// Batched greedy decoding; returns token ids per image (without BOS, cut at EOS)
    /// and the mean attention over generated words `[B, N]`.
    pub fn greedy(&self, enc: &Encoded, bos: i64, eos: i64) -> (Vec<Vec<u32>>, Tensor) {
        let bsz = enc.pooled.size()[0];
        let device = enc.pooled.device();
        let mut tokens = Tensor::full([bsz], bos, (Kind::Int64, device));
        let mut state = enc.h0.shallow_clone();
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); bsz as usize];
        let mut done = vec![false; bsz as usize];
        let mut attn_sum = Tensor::zeros_like(&enc.grid.select(2, 0));
        for _ in 0..self.config.max_len {
            let step = self.step(&tokens, &state, enc, Mode::Eval);
            let next = step.logits.argmax(-1, false);
            let ids: Vec<i64> = Vec::<i64>::try_from(&next).expect("token ids");
            let live: Vec<f32> = done.iter().map(|&d| if d { 0.0 } else { 1.0 }).collect();
            attn_sum += step.attn * Tensor::from_slice(&live).to_device(device).unsqueeze(1);
            for (b, &id) in ids.iter().enumerate() {
                if done[b] {
                    continue;
                }
                if id == eos {
                    done[b] = true;
                } else {
                    out[b].push(id as u32);
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
            tokens = next;
            state = step.state;
        }
        let lens: Vec<f32> = out.iter().map(|o| o.len().max(1) as f32).collect();
        let attn = attn_sum / Tensor::from_slice(&lens).to_device(device).unsqueeze(1);
        (out, attn)
    }
}
