//! Beam search with a shrinking beam: each hypothesis that ends with EOS takes one
//! of the `width` slots for good, so the search stops when every slot is finished
//! or the maximum length is reached (the "show, attend and tell" captioning
//! variant, which needs no separate stopping heuristic).
//!
//! Per-beam decoder states and attention histories live in flat buffers allocated
//! once before the loop; each step copies a parent's slices into its children's
//! slots of the second buffer and swaps the two.

use std::cmp::Ordering;

use super::{
    check_logits, constrain, log_sum_exp, DecodeError, DecodeOptions, Decoded, Tokens, MAX_BEAM,
};
use crate::runtime::{EncoderOutput, Runtime};

#[derive(Debug, Clone)]
struct Hyp {
    tokens: Tokens,
    score: f32,
    /// Ended with EOS (the EOS is not in `tokens`).
    eos: bool,
}

#[derive(Debug, Clone, Copy)]
struct Cand {
    parent: usize,
    token: u32,
    score: f32,
}

/// The candidates of one step: up to `width` per live hypothesis.
type Cands = heapless::Vec<Cand, { MAX_BEAM * MAX_BEAM }>;

/// Best first; ties go to the older parent, then the lower token id, so the
/// result never depends on the sort algorithm.
fn rank(a: &Cand, b: &Cand) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.parent.cmp(&b.parent))
        .then(a.token.cmp(&b.token))
}

/// Flat per-slot buffers: decoder states and attention histories.
struct Slots {
    state: usize,
    row: usize,
    rows: usize,
    states: Vec<f32>,
    history: Vec<f32>,
}

impl Slots {
    fn new(width: usize, state: usize, row: usize, rows: usize) -> Slots {
        Slots {
            state,
            row,
            rows,
            states: vec![0.0; width * state],
            history: vec![0.0; width * rows * row],
        }
    }

    fn state(&self, slot: usize) -> &[f32] {
        &self.states[slot * self.state..(slot + 1) * self.state]
    }

    fn history(&self, slot: usize, len: usize) -> &[f32] {
        let start = slot * self.rows * self.row;
        &self.history[start..start + len * self.row]
    }
}

pub(super) fn search(
    runtime: &dyn Runtime,
    encoded: &EncoderOutput,
    opts: &DecodeOptions,
    width: usize,
) -> Result<Decoded, DecodeError> {
    let mut beam = Beam::new(encoded, opts, width);
    while !beam.live.is_empty() && beam.live[0].tokens.len() < opts.max_len {
        let cands = beam.expand(runtime, encoded, opts)?;
        beam.advance(cands, opts);
    }
    Ok(beam.best(opts))
}

/// The search between steps: the live hypotheses with their slots, the
/// finished ones with their attention histories, and the buffers each step
/// fills.
struct Beam {
    width: usize,
    /// Decoder state size.
    s: usize,
    live: heapless::Vec<Hyp, MAX_BEAM>,
    /// Finished hypotheses, each with its slot in `done`.
    finished: heapless::Vec<(Hyp, usize), MAX_BEAM>,
    cur: Slots,
    next: Slots,
    /// Outputs of this step's decoder calls, one slot per live parent.
    step_states: Vec<f32>,
    step_attn: Vec<f32>,
    done: Slots,
    vocab: Option<usize>,
    steps: usize,
}

impl Beam {
    fn new(encoded: &EncoderOutput, opts: &DecodeOptions, width: usize) -> Beam {
        let s = encoded.h0.len();
        let mut live = heapless::Vec::new();
        let _ = live.push(Hyp {
            tokens: Tokens::new(),
            score: 0.0,
            eos: false,
        });
        let mut cur = Slots::new(width, s, 0, opts.max_len);
        cur.states[..s].copy_from_slice(&encoded.h0);
        Beam {
            width,
            s,
            live,
            finished: heapless::Vec::new(),
            cur,
            next: Slots::new(width, s, 0, opts.max_len),
            step_states: vec![0f32; width * s],
            step_attn: Vec::new(),
            done: Slots::new(width, 0, 0, opts.max_len),
            vocab: None,
            steps: 0,
        }
    }

    /// Run the decoder once per live hypothesis and return the candidates: the
    /// `width` best next tokens of each. A hypothesis with no allowed token
    /// ends where it is.
    fn expand(
        &mut self,
        runtime: &dyn Runtime,
        encoded: &EncoderOutput,
        opts: &DecodeOptions,
    ) -> Result<Cands, DecodeError> {
        let mut cands = Cands::new();
        let mut stuck: heapless::Vec<usize, MAX_BEAM> = heapless::Vec::new();
        for b in 0..self.live.len() {
            let mut logits = self.step(runtime, encoded, opts, b)?;
            let hyp = &self.live[b];
            constrain(&mut logits, &hyp.tokens, opts);
            let Some(lse) = log_sum_exp(&logits) else {
                let _ = stuck.push(b);
                continue;
            };
            for (logit, t) in top_k(&logits, self.width) {
                let _ = cands.push(Cand {
                    parent: b,
                    token: t,
                    score: hyp.score + logit - lse,
                });
            }
        }
        for &b in &stuck {
            let len = self.live[b].tokens.len();
            let slot = self.finish(b, len);
            let _ = self.finished.push((self.live[b].clone(), slot));
        }
        Ok(cands)
    }

    /// One decoder call for live hypothesis `b`: its state and attention row go
    /// to `b`'s step slots (the attention buffers are sized at the first call,
    /// once the row length is known); returns the logits.
    fn step(
        &mut self,
        runtime: &dyn Runtime,
        encoded: &EncoderOutput,
        opts: &DecodeOptions,
        b: usize,
    ) -> Result<Vec<f32>, DecodeError> {
        let (s, width, steps) = (self.s, self.width, self.steps);
        let token = self.live[b].tokens.last().copied().unwrap_or(opts.bos);
        let out = runtime
            .step(token, self.cur.state(b), encoded)
            .map_err(|source| DecodeError::Runtime {
                step: steps,
                source,
            })?;
        self.vocab = Some(check_logits(steps, out.logits.len(), self.vocab)?);
        if out.state.len() != s {
            return Err(DecodeError::State {
                step: steps,
                expected: s,
                got: out.state.len(),
            });
        }
        self.steps += 1;
        if self.steps == 1 && !out.attn.is_empty() {
            let row = out.attn.len();
            for slots in [&mut self.cur, &mut self.next, &mut self.done] {
                *slots = Slots::new(width, slots.state, row, opts.max_len);
            }
            self.cur.states[..s].copy_from_slice(&encoded.h0);
            self.step_attn = vec![0.0; width * row];
        }
        self.step_states[b * s..(b + 1) * s].copy_from_slice(&out.state);
        let row = self.cur.row;
        if row > 0 && out.attn.len() == row {
            self.step_attn[b * row..(b + 1) * row].copy_from_slice(&out.attn);
        }
        Ok(out.logits)
    }

    /// Keep the best candidates for the slots not taken by finished
    /// hypotheses: an EOS finishes its parent's hypothesis, any other token
    /// makes a child with the parent's history and this step's state.
    fn advance(&mut self, mut cands: Cands, opts: &DecodeOptions) {
        cands.sort_unstable_by(rank);
        let keep = self.width.saturating_sub(self.finished.len());
        let s = self.s;
        let mut children: heapless::Vec<Hyp, MAX_BEAM> = heapless::Vec::new();
        for c in cands.iter().take(keep) {
            let parent = &self.live[c.parent];
            let len = parent.tokens.len();
            if c.token == opts.eos {
                let tokens = parent.tokens.clone();
                let slot = self.finish(c.parent, len);
                let _ = self.finished.push((
                    Hyp {
                        tokens,
                        score: c.score,
                        eos: true,
                    },
                    slot,
                ));
                continue;
            }
            let j = children.len();
            let mut tokens = parent.tokens.clone();
            let _ = tokens.push(c.token);
            self.next.states[j * s..(j + 1) * s]
                .copy_from_slice(&self.step_states[c.parent * s..(c.parent + 1) * s]);
            let row = self.next.row;
            if row > 0 {
                let base = j * self.next.rows * row;
                self.next.history[base..base + len * row]
                    .copy_from_slice(self.cur.history(c.parent, len));
                self.next.history[base + len * row..base + (len + 1) * row]
                    .copy_from_slice(&self.step_attn[c.parent * row..(c.parent + 1) * row]);
            }
            let _ = children.push(Hyp {
                tokens,
                score: c.score,
                eos: false,
            });
        }
        self.live = children;
        std::mem::swap(&mut self.cur, &mut self.next);
    }

    /// Keep live slot `from`'s attention history (`len` rows) in the next
    /// free `done` slot, which it returns.
    fn finish(&mut self, from: usize, len: usize) -> usize {
        let slot = self.finished.len();
        let row = self.done.row;
        if row > 0 {
            let base = slot * self.done.rows * row;
            self.done.history[base..base + len * row].copy_from_slice(self.cur.history(from, len));
        }
        slot
    }

    /// The best hypothesis by length-normalised score, hypotheses cut at the
    /// maximum length competing with the finished ones.
    fn best(mut self, opts: &DecodeOptions) -> Decoded {
        for b in 0..self.live.len() {
            let len = self.live[b].tokens.len();
            let slot = self.finish(b, len);
            let _ = self.finished.push((self.live[b].clone(), slot));
        }
        let normalised = |h: &Hyp| {
            let len = (h.tokens.len() + h.eos as usize).max(1) as f32;
            h.score / len.powf(opts.length_penalty)
        };
        let best = self
            .finished
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| normalised(&a.0).total_cmp(&normalised(&b.0)).then(j.cmp(i)))
            .map(|(_, h)| h.clone());
        let Some((hyp, slot)) = best else {
            return Decoded {
                tokens: Vec::new(),
                score: 0.0,
                finished: false,
                attention: Vec::new(),
                cells: 0,
                steps: self.steps,
            };
        };
        let cells = if hyp.tokens.is_empty() {
            0
        } else {
            self.done.row
        };
        Decoded {
            tokens: hyp.tokens.to_vec(),
            score: hyp.score,
            finished: hyp.eos,
            attention: self.done.history(slot, hyp.tokens.len()).to_vec(),
            cells,
            steps: self.steps,
        }
    }
}

/// The `k` largest finite logits with their ids, best first (lowest id on ties).
fn top_k(logits: &[f32], k: usize) -> heapless::Vec<(f32, u32), MAX_BEAM> {
    let mut best: heapless::Vec<(f32, u32), MAX_BEAM> = heapless::Vec::new();
    for (i, &l) in logits.iter().enumerate() {
        if l == f32::NEG_INFINITY {
            continue;
        }
        let pos = best.iter().position(|&(b, _)| l > b).unwrap_or(best.len());
        if pos < k {
            if best.len() == k {
                best.pop();
            }
            let _ = best.insert(pos, (l, i as u32));
        }
    }
    best
}
