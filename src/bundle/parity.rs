//! `parity.json`: inputs with the outputs the model must give for them. Written
//! when a bundle is built, re-run on any runtime (tract here, libtorch in the
//! trainer's tests) and compared element by element.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{BundleError, Precision};
use crate::runtime::{EncoderOutput, Runtime, RuntimeError};

/// Expected encoder outputs of an int8 artefact for the parity image (its
/// decoder is the fp32 one, checked against the fp32 steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderValues {
    pub grid: Vec<f32>,
    pub grid_proj: Vec<f32>,
    pub pooled: Vec<f32>,
    pub findings: Vec<f32>,
    pub h0: Vec<f32>,
}

impl From<EncoderOutput> for EncoderValues {
    fn from(e: EncoderOutput) -> Self {
        EncoderValues {
            grid: e.grid,
            grid_proj: e.grid_proj,
            pooled: e.pooled,
            findings: e.findings,
            h0: e.h0,
        }
    }
}

/// One decoder step: the token fed, the state it starts from (the previous
/// step's `state`, or the encoder's `h0`), and what it must return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityStep {
    pub token: u32,
    pub logits: Vec<f32>,
    pub state: Vec<f32>,
    pub attn: Vec<f32>,
}

/// Inputs and expected outputs of the encoder and a greedy run of decoder steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parity {
    /// Preprocessed `S × S` image, row-major.
    pub image: Vec<f32>,
    pub grid: Vec<f32>,
    pub grid_proj: Vec<f32>,
    pub pooled: Vec<f32>,
    pub findings: Vec<f32>,
    pub h0: Vec<f32>,
    /// Greedy steps from BOS: each next token is the argmax of the step before.
    pub steps: Vec<ParityStep>,
    /// What the int8 encoder gives for `image`, where the bundle has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<EncoderValues>,
}

/// How far a runtime's outputs are from the expected ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityReport {
    /// Largest element-wise |Δ| over all outputs (infinite on a length mismatch).
    pub max_abs_diff: f32,
    /// The output where it occurred, e.g. `step 2 logits`.
    pub worst: String,
    /// Whether the runtime's argmax picks the same token at every step.
    pub tokens_match: bool,
}

impl ParityReport {
    fn update(&mut self, what: &str, got: &[f32], expected: &[f32]) {
        let diff = if got.len() != expected.len() {
            f32::INFINITY
        } else {
            got.iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(
                    0f32,
                    |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
                )
        };
        if diff > self.max_abs_diff || self.worst.is_empty() {
            self.max_abs_diff = diff;
            self.worst = what.into();
        }
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

impl Parity {
    /// Record `runtime`'s outputs for `image` and `steps` greedy decoder steps from `bos`.
    pub fn generate(
        runtime: &dyn Runtime,
        image: Vec<f32>,
        bos: u32,
        steps: usize,
    ) -> Result<Parity, RuntimeError> {
        let enc = runtime.encode(&image)?;
        let mut token = bos;
        let mut state = enc.h0.clone();
        let mut recorded = Vec::with_capacity(steps);
        for _ in 0..steps {
            let out = runtime.step(token, &state, &enc)?;
            let next = argmax(&out.logits);
            recorded.push(ParityStep {
                token,
                logits: out.logits,
                state: out.state.clone(),
                attn: out.attn,
            });
            state = out.state;
            token = next;
        }
        Ok(Parity {
            image,
            grid: enc.grid,
            grid_proj: enc.grid_proj,
            pooled: enc.pooled,
            findings: enc.findings,
            h0: enc.h0,
            steps: recorded,
            int8: None,
        })
    }

    /// Run `runtime` on the recorded inputs. Each step is fed the expected
    /// encoder outputs and previous state, so an error does not compound.
    pub fn check(&self, runtime: &dyn Runtime) -> Result<ParityReport, RuntimeError> {
        self.check_precision(runtime, Precision::Fp32)
    }

    /// [`check`](Self::check) for a runtime of `precision`: an int8 runtime's
    /// encoder is held to the recorded int8 outputs (an error if there are
    /// none), its decoder steps to the fp32 ones.
    pub fn check_precision(
        &self,
        runtime: &dyn Runtime,
        precision: Precision,
    ) -> Result<ParityReport, RuntimeError> {
        let mut report = ParityReport {
            max_abs_diff: 0.0,
            worst: String::new(),
            tokens_match: true,
        };
        let fp32 = EncoderValues {
            grid: self.grid.clone(),
            grid_proj: self.grid_proj.clone(),
            pooled: self.pooled.clone(),
            findings: self.findings.clone(),
            h0: self.h0.clone(),
        };
        // f16 is held to the fp32 outputs (its rounding differs by CPU, so no
        // f16 reference is recorded); callers give it a looser tolerance.
        let want = match precision {
            Precision::Fp32 | Precision::F16 => &fp32,
            Precision::Int8 => self.int8.as_ref().ok_or_else(|| {
                RuntimeError::Inference("the parity file has no int8 encoder outputs".into())
            })?,
        };
        let enc = runtime.encode(&self.image)?;
        report.update("grid", &enc.grid, &want.grid);
        report.update("grid_proj", &enc.grid_proj, &want.grid_proj);
        report.update("pooled", &enc.pooled, &want.pooled);
        report.update("findings", &enc.findings, &want.findings);
        report.update("h0", &enc.h0, &want.h0);
        let expected = EncoderOutput {
            grid: self.grid.clone(),
            grid_proj: self.grid_proj.clone(),
            pooled: self.pooled.clone(),
            findings: self.findings.clone(),
            h0: self.h0.clone(),
        };
        let mut state = &self.h0;
        for (i, step) in self.steps.iter().enumerate() {
            let out = runtime.step(step.token, state, &expected)?;
            report.update(&format!("step {i} logits"), &out.logits, &step.logits);
            report.update(&format!("step {i} state"), &out.state, &step.state);
            report.update(&format!("step {i} attn"), &out.attn, &step.attn);
            if argmax(&out.logits) != argmax(&step.logits) {
                report.tokens_match = false;
            }
            state = &step.state;
        }
        Ok(report)
    }

    pub fn read(path: &Path) -> Result<Parity, BundleError> {
        let text = std::fs::read(path).map_err(BundleError::io(path))?;
        serde_json::from_slice(&text).map_err(|e| BundleError::Invalid {
            path: path.to_owned(),
            message: format!("not a parity file: {e}"),
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let text = serde_json::to_vec(self).expect("parity serialises");
        std::fs::write(path, text).map_err(BundleError::io(path))
    }
}
