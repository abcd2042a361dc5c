//! The libtorch model behind the device's `Runtime` seam, so the trainer
//! validates with exactly the decode policies the device runs (greedy or beam,
//! repetition guard, suppressed tokens) — `cxr-train eval --beam N`.

use cxr_edge::runtime::{EncoderOutput, Runtime, RuntimeError, StepOutput};
use cxr_edge::Observation;
use tch::{Kind, Tensor};

use crate::model::{CxrModel, Encoded, Mode};

pub struct TchRuntime<'a> {
    pub model: &'a CxrModel,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>, RuntimeError> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().view([-1]))
        .map_err(|e| RuntimeError::Inference(e.to_string()))
}

impl Runtime for TchRuntime<'_> {
    fn encode(&self, image: &[f32]) -> Result<EncoderOutput, RuntimeError> {
        let s = self.model.config.input_size;
        if image.len() != s * s {
            return Err(RuntimeError::InputSize {
                expected: s * s,
                got: image.len(),
            });
        }
        let _g = tch::no_grad_guard();
        let x = Tensor::from_slice(image).view([1, 1, s as i64, s as i64]);
        let e = self.model.encode(&x, Mode::Eval);
        Ok(EncoderOutput {
            grid: to_vec(&e.grid)?,
            grid_proj: to_vec(&e.grid_proj)?,
            pooled: to_vec(&e.pooled)?,
            findings: to_vec(&e.findings)?,
            h0: to_vec(&e.h0)?,
        })
    }

    fn step(
        &self,
        token: u32,
        state: &[f32],
        encoded: &EncoderOutput,
    ) -> Result<StepOutput, RuntimeError> {
        let _g = tch::no_grad_guard();
        let c = &self.model.config;
        let (n, ch) = (c.grid_cells() as i64, c.grid_channels() as i64);
        let proj_dims: Vec<i64> = match c.decoder {
            cxr_edge::DecoderKind::Attention => vec![1, n, c.attn_dim as i64],
            cxr_edge::DecoderKind::Merge => vec![1, c.hidden as i64],
        };
        let enc = Encoded {
            grid: Tensor::from_slice(&encoded.grid).view([1, n, ch]),
            grid_proj: Tensor::from_slice(&encoded.grid_proj).view(proj_dims.as_slice()),
            pooled: Tensor::from_slice(&encoded.pooled).view([1, ch]),
            findings: Tensor::from_slice(&encoded.findings).view([1, Observation::COUNT as i64]),
            h0: Tensor::from_slice(&encoded.h0).view([1, -1]),
        };
        let st = Tensor::from_slice(state).view([1, -1]);
        let s = self
            .model
            .step(&Tensor::from_slice(&[token as i64]), &st, &enc, Mode::Eval);
        Ok(StepOutput {
            logits: to_vec(&s.logits)?,
            state: to_vec(&s.state)?,
            attn: to_vec(&s.attn)?,
        })
    }
}
