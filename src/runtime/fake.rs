//! A scripted [`Runtime`] for tests: hand-written logits per generated prefix.
//!
//! The decoder state it hands out *is* the prefix (a count followed by the tokens
//! fed so far), so the logits it returns depend only on the sequence a hypothesis
//! has produced. That makes it a real check of the decode policy's bookkeeping:
//! a beam search that gave a child its sibling's state would get the wrong logits.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{EncoderOutput, Runtime, RuntimeError, StepOutput};
use crate::model_config::ModelConfig;
use crate::Observation;

/// Tokens a fake state can hold.
const STATE_TOKENS: usize = 256;

/// Logit of tokens a script line does not mention.
pub const FLOOR: f32 = -20.0;

#[derive(Debug)]
pub struct FakeRuntime {
    input_size: usize,
    vocab: usize,
    cells: usize,
    channels: usize,
    findings: Vec<f32>,
    default: Vec<f32>,
    rules: Vec<(Vec<u32>, Vec<f32>)>,
    attention: Vec<(Vec<u32>, Vec<f32>)>,
    fail_at: Option<usize>,
    steps: AtomicUsize,
    encodes: AtomicUsize,
}

impl FakeRuntime {
    /// A fake for `config`'s input size, vocabulary and grid. Until scripted, every
    /// prefix gets all-equal logits and findings logits of 0.
    pub fn new(config: &ModelConfig) -> FakeRuntime {
        FakeRuntime {
            input_size: config.input_size,
            vocab: config.vocab_size,
            cells: config.grid_cells(),
            channels: config.grid_channels(),
            findings: vec![0.0; Observation::COUNT],
            default: vec![0.0; config.vocab_size],
            rules: Vec::new(),
            attention: Vec::new(),
            fail_at: None,
            steps: AtomicUsize::new(0),
            encodes: AtomicUsize::new(0),
        }
    }

    /// A small config for policy tests: `vocab` tokens, a 2×2 grid, 8×8 input.
    pub fn config(vocab: usize) -> ModelConfig {
        ModelConfig {
            input_size: 8,
            channels: vec![4, 4],
            encoder: Default::default(),
            vocab_size: vocab,
            max_len: 16,
            ..ModelConfig::default()
        }
    }

    fn logits(&self, pairs: &[(u32, f32)]) -> Vec<f32> {
        let mut l = vec![FLOOR; self.vocab];
        for &(t, v) in pairs {
            l[t as usize] = v;
        }
        l
    }

    /// After generating `prefix` (BOS excluded), the next logits are `pairs`
    /// (token, logit) and [`FLOOR`] elsewhere.
    pub fn after(mut self, prefix: &[u32], pairs: &[(u32, f32)]) -> Self {
        let l = self.logits(pairs);
        self.rules.push((prefix.to_vec(), l));
        self
    }

    /// Like [`after`](Self::after) with probabilities; unlisted tokens get ~0.
    pub fn after_probs(self, prefix: &[u32], probs: &[(u32, f32)]) -> Self {
        let pairs: Vec<(u32, f32)> = probs.iter().map(|&(t, p)| (t, p.ln())).collect();
        self.after(prefix, &pairs)
    }

    /// Logits for every prefix no rule names.
    pub fn otherwise(mut self, pairs: &[(u32, f32)]) -> Self {
        self.default = self.logits(pairs);
        self
    }

    /// Attention returned by the step that follows `prefix` (default: all of it on
    /// cell `prefix.len() % cells`).
    pub fn attend(mut self, prefix: &[u32], weights: Vec<f32>) -> Self {
        self.attention.push((prefix.to_vec(), weights));
        self
    }

    /// Findings logits returned by the encoder.
    pub fn with_findings(mut self, logits: &[f32]) -> Self {
        self.findings = logits.to_vec();
        self
    }

    /// Make decoder step number `step` (counting from 0 over the fake's life) fail.
    pub fn failing_at(mut self, step: usize) -> Self {
        self.fail_at = Some(step);
        self
    }

    /// Decoder steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps.load(Ordering::Relaxed)
    }

    /// Encoder passes so far.
    pub fn encodes(&self) -> usize {
        self.encodes.load(Ordering::Relaxed)
    }
}

impl Runtime for FakeRuntime {
    fn encode(&self, image: &[f32]) -> Result<EncoderOutput, RuntimeError> {
        let expected = self.input_size * self.input_size;
        if image.len() != expected {
            return Err(RuntimeError::InputSize {
                expected,
                got: image.len(),
            });
        }
        self.encodes.fetch_add(1, Ordering::Relaxed);
        Ok(EncoderOutput {
            grid: vec![0.0; self.cells * self.channels],
            grid_proj: Vec::new(),
            pooled: Vec::new(),
            findings: self.findings.clone(),
            h0: vec![0.0; STATE_TOKENS + 1],
        })
    }

    fn step(
        &self,
        token: u32,
        state: &[f32],
        _encoded: &EncoderOutput,
    ) -> Result<StepOutput, RuntimeError> {
        let step = self.steps.fetch_add(1, Ordering::Relaxed);
        if self.fail_at == Some(step) {
            return Err(RuntimeError::Inference(format!(
                "scripted failure at step {step}"
            )));
        }
        if state.len() != STATE_TOKENS + 1 {
            return Err(RuntimeError::InputSize {
                expected: STATE_TOKENS + 1,
                got: state.len(),
            });
        }
        let fed = state[0] as usize;
        if fed >= STATE_TOKENS {
            return Err(RuntimeError::Inference("fake state is full".into()));
        }
        let mut new_state = state.to_vec();
        new_state[0] = (fed + 1) as f32;
        new_state[1 + fed] = token as f32;
        // The first token fed is BOS; the prefix is what came after it.
        let prefix: Vec<u32> = new_state[2..2 + fed].iter().map(|&t| t as u32).collect();
        let logits = self
            .rules
            .iter()
            .find(|(p, _)| *p == prefix)
            .map_or(&self.default, |(_, l)| l)
            .clone();
        let attn = match self.attention.iter().find(|(p, _)| *p == prefix) {
            Some((_, a)) => a.clone(),
            None => {
                let mut a = vec![0.0; self.cells];
                if self.cells > 0 {
                    a[prefix.len() % self.cells] = 1.0;
                }
                a
            }
        };
        Ok(StepOutput {
            logits,
            state: new_state,
            attn,
        })
    }
}
