//! The decode policy: turns single decoder steps of a [`Runtime`] into a token
//! sequence, greedily, by seeded sampling or by beam search.
//!
//! The policy is pure: given the same runtime outputs and [`DecodeOptions`] (seed
//! included) it returns the same [`Decoded`], so it is tested with hand-written
//! logits (`runtime::fake`) and no model. The step loop keeps its hypotheses in
//! fixed-capacity `heapless` buffers and copies decoder states and attention rows
//! into flat buffers sized once before the loop, so the policy itself does not
//! allocate per step (the runtime's own outputs are the only per-step allocation).
//!
//! Order of the constraints applied to each step's logits, before choosing:
//! 1. the BOS token and the `suppress` list are never generated;
//! 2. EOS is forbidden while fewer than `min_len` tokens have been generated;
//! 3. the repetition guard forbids any token that would repeat an n-gram of size
//!    `no_repeat_ngram` already in the hypothesis (0 turns it off);
//! 4. log-softmax; greedy takes the argmax (lowest id on ties), sampling draws from
//!    `softmax(logits / temperature)`, beam keeps the `width` best continuations.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use crate::runtime::{EncoderOutput, Runtime, RuntimeError};

mod beam;

/// Longest sequence the fixed buffers hold (tokens after BOS, EOS included).
pub const MAX_LEN: usize = 128;
/// Widest beam the fixed buffers hold.
pub const MAX_BEAM: usize = 8;

type Tokens = heapless::Vec<u32, MAX_LEN>;

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// The most likely token at every step.
    Greedy,
    /// Draw from the softmax at `temperature`, with a seeded generator.
    Sample { temperature: f32, seed: u64 },
    /// Keep the `width` best partial sequences (width 1 is greedy).
    Beam { width: usize },
}

/// What to decode and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    pub strategy: Strategy,
    pub bos: u32,
    pub eos: u32,
    /// Maximum tokens generated after BOS, EOS included (at most [`MAX_LEN`]).
    pub max_len: usize,
    /// EOS is not allowed before this many tokens.
    pub min_len: usize,
    /// Forbid repeating any n-gram of this size (0 = off).
    pub no_repeat_ngram: usize,
    /// Beam hypotheses are ranked by `score / len^length_penalty` (0 = raw sum).
    pub length_penalty: f32,
    /// Token ids never generated (e.g. padding, unknown).
    pub suppress: Vec<u32>,
}

impl DecodeOptions {
    /// Greedy decoding with the repetition guard on, as the device runs by default.
    pub fn new(bos: u32, eos: u32, max_len: usize) -> DecodeOptions {
        DecodeOptions {
            strategy: Strategy::Greedy,
            bos,
            eos,
            max_len,
            min_len: 1,
            no_repeat_ngram: 3,
            length_penalty: 1.0,
            suppress: Vec::new(),
        }
    }

    pub fn with_strategy(mut self, strategy: Strategy) -> DecodeOptions {
        self.strategy = strategy;
        self
    }
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("maximum length {0} is outside 1..={MAX_LEN}")]
    MaxLen(usize),
    #[error("beam width {0} is outside 1..={MAX_BEAM}")]
    BeamWidth(usize),
    #[error("sampling temperature {0} is not a positive number")]
    Temperature(f32),
    #[error("decoder returned {got} logits at step {step}, expected {expected}")]
    Logits {
        step: usize,
        expected: usize,
        got: usize,
    },
    #[error("decoder returned a state of {got} values at step {step}, expected {expected}")]
    State {
        step: usize,
        expected: usize,
        got: usize,
    },
    #[error("decoder step {step}: {source}")]
    Runtime {
        step: usize,
        #[source]
        source: RuntimeError,
    },
}

/// The chosen sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Generated ids, without BOS and EOS.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the chosen tokens (EOS included).
    pub score: f32,
    /// Whether the sequence ended with EOS (false: stopped at the maximum length).
    pub finished: bool,
    /// One attention row per token of `tokens` (the step that produced it),
    /// row-major `tokens.len() × cells`; empty when the decoder gives none.
    pub attention: Vec<f32>,
    /// Cells per attention row.
    pub cells: usize,
    /// Decoder steps run (all beams together).
    pub steps: usize,
}

impl Decoded {
    /// Mean attention over the generated words, or `None` if there is none.
    pub fn mean_attention(&self) -> Option<Vec<f32>> {
        if self.cells == 0 || self.tokens.is_empty() {
            return None;
        }
        let mut mean = vec![0f32; self.cells];
        for row in self.attention.chunks_exact(self.cells) {
            for (m, a) in mean.iter_mut().zip(row) {
                *m += a;
            }
        }
        let n = self.tokens.len() as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        Some(mean)
    }
}

/// Decode from an encoded image.
pub fn decode(
    runtime: &dyn Runtime,
    encoded: &EncoderOutput,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    if opts.max_len == 0 || opts.max_len > MAX_LEN {
        return Err(DecodeError::MaxLen(opts.max_len));
    }
    match opts.strategy {
        Strategy::Greedy => single(runtime, encoded, opts, None),
        Strategy::Sample { temperature, seed } => {
            if !(temperature > 0.0 && temperature.is_finite()) {
                return Err(DecodeError::Temperature(temperature));
            }
            let rng = StdRng::seed_from_u64(seed);
            single(runtime, encoded, opts, Some((temperature, rng)))
        }
        Strategy::Beam { width } => {
            if width == 0 || width > MAX_BEAM {
                return Err(DecodeError::BeamWidth(width));
            }
            beam::search(runtime, encoded, opts, width)
        }
    }
}

/// Apply constraints 1–3 to `logits` for a hypothesis that has produced `prefix`.
fn constrain(logits: &mut [f32], prefix: &[u32], opts: &DecodeOptions) {
    let mut ban = |t: u32| {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = f32::NEG_INFINITY;
        }
    };
    ban(opts.bos);
    opts.suppress.iter().for_each(|&t| ban(t));
    if prefix.len() < opts.min_len {
        ban(opts.eos);
    }
    let n = opts.no_repeat_ngram;
    if n > 0 && prefix.len() >= n {
        // The last n-1 tokens followed by t must not match any earlier n-gram.
        let tail = &prefix[prefix.len() + 1 - n..];
        for start in 0..=prefix.len() - n {
            if &prefix[start..start + n - 1] == tail {
                ban(prefix[start + n - 1]);
            }
        }
    }
    for l in logits.iter_mut() {
        if l.is_nan() {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// `log Σ exp(logits)`, or `None` when every token is forbidden.
fn log_sum_exp(logits: &[f32]) -> Option<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    Some(max + sum.ln())
}

/// Index of the largest value, the lowest index on ties.
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

fn check_logits(step: usize, got: usize, expected: Option<usize>) -> Result<usize, DecodeError> {
    match expected {
        Some(e) if e != got => Err(DecodeError::Logits {
            step,
            expected: e,
            got,
        }),
        _ if got == 0 => Err(DecodeError::Logits {
            step,
            expected: 1,
            got,
        }),
        _ => Ok(got),
    }
}

/// Greedy or sampled decoding of one hypothesis.
fn single(
    runtime: &dyn Runtime,
    encoded: &EncoderOutput,
    opts: &DecodeOptions,
    mut sampler: Option<(f32, StdRng)>,
) -> Result<Decoded, DecodeError> {
    let mut tokens = Tokens::new();
    let mut state = encoded.h0.clone();
    let mut attention: Vec<f32> = Vec::new();
    let mut cells = None;
    let mut vocab = None;
    let mut token = opts.bos;
    let mut score = 0f32;
    let mut finished = false;
    let mut steps = 0;
    while tokens.len() < opts.max_len {
        let mut out =
            runtime
                .step(token, &state, encoded)
                .map_err(|source| DecodeError::Runtime {
                    step: steps,
                    source,
                })?;
        vocab = Some(check_logits(steps, out.logits.len(), vocab)?);
        steps += 1;
        let cells = *cells.get_or_insert_with(|| {
            attention.reserve_exact(opts.max_len * out.attn.len());
            out.attn.len()
        });
        constrain(&mut out.logits, &tokens, opts);
        let Some(lse) = log_sum_exp(&out.logits) else {
            break;
        };
        token = match sampler.as_mut() {
            None => argmax(&out.logits) as u32,
            Some((temperature, rng)) => sample(&out.logits, *temperature, rng),
        };
        score += out.logits[token as usize] - lse;
        if token == opts.eos {
            finished = true;
            break;
        }
        // Capacity: max_len ≤ MAX_LEN was checked, and the loop stops at max_len.
        let _ = tokens.push(token);
        if out.attn.len() == cells {
            attention.extend_from_slice(&out.attn);
        }
        state = out.state;
    }
    let mut cells = cells.unwrap_or(0);
    if tokens.is_empty() || attention.len() != tokens.len() * cells {
        attention.clear();
        cells = 0;
    }
    Ok(Decoded {
        tokens: tokens.to_vec(),
        score,
        finished,
        attention,
        cells,
        steps,
    })
}

/// Draw a token from `softmax(logits / temperature)`; forbidden tokens have
/// probability 0.
fn sample(logits: &[f32], temperature: f32, rng: &mut StdRng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weight = |l: f32| ((l - max) / temperature).exp();
    let total: f32 = logits.iter().map(|&l| weight(l)).sum();
    let mut u = rng.gen::<f32>() * total;
    let mut last = argmax(logits);
    for (i, &l) in logits.iter().enumerate() {
        let w = weight(l);
        if w > 0.0 {
            last = i;
            if u < w {
                return i as u32;
            }
            u -= w;
        }
    }
    last as u32
}
