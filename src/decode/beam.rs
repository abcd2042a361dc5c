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
    let s = encoded.h0.len();
    let mut live: heapless::Vec<Hyp, MAX_BEAM> = heapless::Vec::new();
    let _ = live.push(Hyp {
        tokens: Tokens::new(),
        score: 0.0,
        eos: false,
    });
    let mut finished: heapless::Vec<(Hyp, usize), MAX_BEAM> = heapless::Vec::new();
    let mut cur = Slots::new(width, s, 0, opts.max_len);
    cur.states[..s].copy_from_slice(&encoded.h0);
    let mut next = Slots::new(width, s, 0, opts.max_len);
    // Outputs of this step's decoder calls, one slot per live parent.
    let mut step_states = vec![0f32; width * s];
    let mut step_attn: Vec<f32> = Vec::new();
    let mut done = Slots::new(width, 0, 0, opts.max_len);
    let mut vocab = None;
    let mut steps = 0;

    while !live.is_empty() && live[0].tokens.len() < opts.max_len {
        let mut cands: heapless::Vec<Cand, { MAX_BEAM * MAX_BEAM }> = heapless::Vec::new();
        let mut stuck: heapless::Vec<usize, MAX_BEAM> = heapless::Vec::new();
        for (b, hyp) in live.iter().enumerate() {
            let token = hyp.tokens.last().copied().unwrap_or(opts.bos);
            let mut out = runtime
                .step(token, cur.state(b), encoded)
                .map_err(|source| DecodeError::Runtime {
                    step: steps,
                    source,
                })?;
            vocab = Some(check_logits(steps, out.logits.len(), vocab)?);
            if out.state.len() != s {
                return Err(DecodeError::State {
                    step: steps,
                    expected: s,
                    got: out.state.len(),
                });
            }
            steps += 1;
            if steps == 1 && !out.attn.is_empty() {
                let row = out.attn.len();
                for slots in [&mut cur, &mut next, &mut done] {
                    *slots = Slots::new(width, slots.state, row, opts.max_len);
                }
                cur.states[..s].copy_from_slice(&encoded.h0);
                step_attn = vec![0.0; width * row];
            }
            step_states[b * s..(b + 1) * s].copy_from_slice(&out.state);
            let row = cur.row;
            if row > 0 && out.attn.len() == row {
                step_attn[b * row..(b + 1) * row].copy_from_slice(&out.attn);
            }
            constrain(&mut out.logits, &hyp.tokens, opts);
            let Some(lse) = log_sum_exp(&out.logits) else {
                let _ = stuck.push(b);
                continue;
            };
            for (logit, t) in top_k(&out.logits, width) {
                let _ = cands.push(Cand {
                    parent: b,
                    token: t,
                    score: hyp.score + logit - lse,
                });
            }
        }
        // A hypothesis with no allowed token ends where it is.
        for &b in &stuck {
            let slot = finished.len();
            finish(&mut done, slot, &cur, b, live[b].tokens.len());
            let _ = finished.push((live[b].clone(), slot));
        }
        cands.sort_unstable_by(rank);
        let keep = width.saturating_sub(finished.len());
        let mut children: heapless::Vec<Hyp, MAX_BEAM> = heapless::Vec::new();
        for c in cands.iter().take(keep) {
            let parent = &live[c.parent];
            let len = parent.tokens.len();
            if c.token == opts.eos {
                let slot = finished.len();
                finish(&mut done, slot, &cur, c.parent, len);
                let _ = finished.push((
                    Hyp {
                        tokens: parent.tokens.clone(),
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
            next.states[j * s..(j + 1) * s]
                .copy_from_slice(&step_states[c.parent * s..(c.parent + 1) * s]);
            let row = next.row;
            if row > 0 {
                let base = j * next.rows * row;
                next.history[base..base + len * row].copy_from_slice(cur.history(c.parent, len));
                next.history[base + len * row..base + (len + 1) * row]
                    .copy_from_slice(&step_attn[c.parent * row..(c.parent + 1) * row]);
            }
            let _ = children.push(Hyp {
                tokens,
                score: c.score,
                eos: false,
            });
        }
        live = children;
        std::mem::swap(&mut cur, &mut next);
    }
    // Hypotheses cut at the maximum length compete with the finished ones.
    for (b, hyp) in live.iter().enumerate() {
        let slot = finished.len();
        finish(&mut done, slot, &cur, b, hyp.tokens.len());
        let _ = finished.push((hyp.clone(), slot));
    }
    let normalised = |h: &Hyp| {
        let len = (h.tokens.len() + h.eos as usize).max(1) as f32;
        h.score / len.powf(opts.length_penalty)
    };
    let best = finished
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| normalised(&a.0).total_cmp(&normalised(&b.0)).then(j.cmp(i)))
        .map(|(_, h)| h.clone());
    let Some((hyp, slot)) = best else {
        return Ok(Decoded {
            tokens: Vec::new(),
            score: 0.0,
            finished: false,
            attention: Vec::new(),
            cells: 0,
            steps,
        });
    };
    let cells = if hyp.tokens.is_empty() { 0 } else { done.row };
    Ok(Decoded {
        tokens: hyp.tokens.to_vec(),
        score: hyp.score,
        finished: hyp.eos,
        attention: done.history(slot, hyp.tokens.len()).to_vec(),
        cells,
        steps,
    })
}

/// Copy the attention history of live slot `from` (`len` rows) into `done`'s `slot`.
fn finish(done: &mut Slots, slot: usize, cur: &Slots, from: usize, len: usize) {
    let row = done.row;
    if row == 0 {
        return;
    }
    let base = slot * done.rows * row;
    done.history[base..base + len * row].copy_from_slice(cur.history(from, len));
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
