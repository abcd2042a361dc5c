//! The decode policy against hand-written logits (candle `generation_tests.rs`
//! style): every expected sequence below is worked out by hand from the script.

use cxr_edge::decode::{decode, DecodeError, DecodeOptions, Decoded, Strategy};
use cxr_edge::runtime::fake::FakeRuntime;
use cxr_edge::runtime::Runtime;
use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

const BOS: u32 = 1;
const EOS: u32 = 2;

fn opts(max_len: usize) -> DecodeOptions {
    DecodeOptions {
        no_repeat_ngram: 0,
        ..DecodeOptions::new(BOS, EOS, max_len)
    }
}

fn run(fake: &FakeRuntime, opts: &DecodeOptions) -> Decoded {
    let image = vec![0.0; 64];
    let encoded = fake.encode(&image).unwrap();
    decode(fake, &encoded, opts).unwrap()
}

fn fake() -> FakeRuntime {
    FakeRuntime::new(&FakeRuntime::config(6))
}

/// Greedy takes 3 (0.6) and is then stuck with 0.35 at best; the path through 4
/// (0.4 × 0.9 = 0.36) is more likely overall.
fn garden_path() -> FakeRuntime {
    fake()
        .after_probs(&[], &[(3, 0.6), (4, 0.4)])
        .after_probs(&[3], &[(4, 0.35), (5, 0.33), (EOS, 0.32)])
        .after_probs(&[4], &[(5, 0.9), (EOS, 0.1)])
        .otherwise(&[(EOS, 0.0)])
}

#[test]
fn greedy_picks_the_argmax_and_stops_at_eos() {
    let f = fake()
        .after(&[], &[(3, 1.0), (4, 2.0), (5, 1.5)])
        .after(&[4], &[(3, 0.5), (5, 3.0)])
        .after(&[4, 5], &[(EOS, 1.0), (3, 0.9)]);
    let d = run(&f, &opts(10));
    assert_eq!(d.tokens, vec![4, 5]);
    assert!(d.finished);
    assert_eq!(d.steps, 3);
    assert_eq!(f.steps(), 3);
    assert!(d.score < 0.0);
}

#[test]
fn beam_finds_the_sequence_greedy_misses() {
    let greedy = run(&garden_path(), &opts(10));
    assert_eq!(greedy.tokens, vec![3, 4]);
    let beam = run(
        &garden_path(),
        &opts(10).with_strategy(Strategy::Beam { width: 2 }),
    );
    assert_eq!(beam.tokens, vec![4, 5]);
    assert!(beam.finished);
    assert!(
        beam.score > greedy.score,
        "{} vs {}",
        beam.score,
        greedy.score
    );
    assert!((beam.score - 0.36f32.ln()).abs() < 1e-3, "{}", beam.score);
    assert!(
        (greedy.score - 0.21f32.ln()).abs() < 1e-3,
        "{}",
        greedy.score
    );
}

#[test]
fn eos_is_held_back_until_min_len() {
    let f = || fake().otherwise(&[(EOS, 2.0), (3, 1.0), (4, 0.5)]);
    let mut o = opts(10);
    o.min_len = 0;
    let d = run(&f(), &o);
    assert!(d.tokens.is_empty() && d.finished);
    assert_eq!(d.steps, 1);
    assert!(d.mean_attention().is_none());
    o.min_len = 2;
    let d = run(&f(), &o);
    assert_eq!(d.tokens, vec![3, 3]);
    assert!(d.finished);
}

#[test]
fn maximum_length_stops_every_strategy() {
    for strategy in [
        Strategy::Greedy,
        Strategy::Beam { width: 3 },
        Strategy::Sample {
            temperature: 1.0,
            seed: 7,
        },
    ] {
        let f = fake().otherwise(&[(3, 5.0), (4, 4.0), (EOS, -5.0)]);
        let d = run(&f, &opts(5).with_strategy(strategy));
        assert_eq!(d.tokens.len(), 5, "{strategy:?}");
        assert!(!d.finished, "{strategy:?}");
        assert!(d.tokens.iter().all(|&t| t != EOS && t != BOS));
    }
}

#[test]
fn repetition_guard_blocks_repeated_ngrams() {
    let f = || fake().otherwise(&[(3, 5.0), (4, 4.0), (EOS, 1.0)]);
    // Off: the loop runs to the maximum length.
    assert_eq!(run(&f(), &opts(6)).tokens, vec![3; 6]);
    // Bigrams: "3 3" once, then 4, then 3; now "3 3" and "3 4" are both taken.
    let mut o = opts(10);
    o.no_repeat_ngram = 2;
    let d = run(&f(), &o);
    assert_eq!(d.tokens, vec![3, 3, 4, 3]);
    assert!(d.finished);
    // Unigrams: no token twice.
    o.no_repeat_ngram = 1;
    assert_eq!(run(&f(), &o).tokens, vec![3, 4]);
    // The same guard applies inside the beam.
    o.strategy = Strategy::Beam { width: 3 };
    o.no_repeat_ngram = 2;
    let d = run(&f(), &o);
    assert!(d.finished);
    for w in 0..d.tokens.len().saturating_sub(1) {
        let pair = &d.tokens[w..w + 2];
        let again = d.tokens[w + 1..].windows(2).any(|p| p == pair);
        assert!(!again, "bigram {pair:?} repeated in {:?}", d.tokens);
    }
}

#[test]
fn suppressed_tokens_are_never_generated() {
    let f = fake().otherwise(&[(0, 9.0), (3, 5.0), (EOS, 1.0)]);
    let mut o = opts(3);
    o.no_repeat_ngram = 1;
    assert_eq!(run(&f, &o).tokens, vec![0, 3]);
    o.suppress = vec![0];
    assert_eq!(run(&f, &o).tokens, vec![3]);
}

#[test]
fn attention_rows_follow_the_chosen_tokens() {
    // The fake attends to cell (prefix length % 4) unless scripted.
    let f = garden_path().attend(&[4], vec![0.0, 0.0, 0.5, 0.5]);
    let d = run(&f, &opts(10).with_strategy(Strategy::Beam { width: 2 }));
    assert_eq!(d.tokens, vec![4, 5]);
    assert_eq!(d.cells, 4);
    assert_eq!(d.attention, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]);
    assert_eq!(d.mean_attention().unwrap(), vec![0.5, 0.0, 0.25, 0.25]);
}

#[test]
fn decoding_is_deterministic_and_sampling_follows_the_seed() {
    let beam = opts(10).with_strategy(Strategy::Beam { width: 3 });
    assert_eq!(run(&garden_path(), &beam), run(&garden_path(), &beam));
    let flat = || fake().otherwise(&[(3, 0.0), (4, 0.0), (5, 0.0), (EOS, -1.0)]);
    let sample = |seed| {
        run(
            &flat(),
            &opts(8).with_strategy(Strategy::Sample {
                temperature: 1.0,
                seed,
            }),
        )
    };
    assert_eq!(sample(42), sample(42));
    let distinct: std::collections::BTreeSet<Vec<u32>> =
        (0..20).map(|s| sample(s).tokens).collect();
    assert!(distinct.len() > 1, "20 seeds gave one sequence");
}

#[test]
fn bad_options_and_runtime_failures_are_errors() {
    let f = garden_path();
    let encoded = f.encode(&[0.0; 64]).unwrap();
    for (o, want) in [
        (opts(0), "maximum length 0"),
        (opts(500), "maximum length 500"),
        (
            opts(5).with_strategy(Strategy::Beam { width: 0 }),
            "beam width 0",
        ),
        (
            opts(5).with_strategy(Strategy::Beam { width: 9 }),
            "beam width 9",
        ),
        (
            opts(5).with_strategy(Strategy::Sample {
                temperature: 0.0,
                seed: 1,
            }),
            "temperature",
        ),
    ] {
        let e = decode(&f, &encoded, &o).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
    let failing = garden_path().failing_at(1);
    let encoded = failing.encode(&[0.0; 64]).unwrap();
    let e = decode(&failing, &encoded, &opts(5)).unwrap_err();
    assert!(matches!(e, DecodeError::Runtime { step: 1, .. }), "{e}");
    let wrong_vocab = FakeRuntime::new(&FakeRuntime::config(0));
    let encoded = wrong_vocab.encode(&[0.0; 64]).unwrap();
    let e = decode(&wrong_vocab, &encoded, &opts(5)).unwrap_err();
    assert!(matches!(e, DecodeError::Logits { got: 0, .. }), "{e}");
}

/// A script over every prefix up to length 3 of tokens 3–5, with logits drawn
/// from `seed`: a random tree to compare strategies on.
fn random_tree(seed: u64) -> FakeRuntime {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) % 1000) as f32 / 250.0
    };
    let mut f = fake();
    let mut prefixes = vec![vec![]];
    for depth in 0..3 {
        let mut longer = Vec::new();
        for p in &prefixes {
            let pairs: Vec<(u32, f32)> = [3, 4, 5, EOS].iter().map(|&t| (t, next())).collect();
            f = f.after(p, &pairs);
            if depth < 2 {
                for t in 3..6 {
                    let mut q = p.clone();
                    q.push(t);
                    longer.push(q);
                }
            }
        }
        prefixes = longer;
    }
    f.otherwise(&[(EOS, 0.0)])
}

proptest! {
    #[test]
    fn beam_of_width_one_is_greedy(seed in any::<u64>(), guard in 0usize..3) {
        let mut o = opts(6);
        o.no_repeat_ngram = guard;
        let greedy = run(&random_tree(seed), &o);
        let beam = run(&random_tree(seed), &o.clone().with_strategy(Strategy::Beam { width: 1 }));
        prop_assert_eq!(&greedy.tokens, &beam.tokens);
        prop_assert!((greedy.score - beam.score).abs() < 1e-5);
        prop_assert_eq!(&greedy.attention, &beam.attention);
        prop_assert_eq!(greedy.finished, beam.finished);
    }
}

/// Counts allocations made by the current thread, so the test below can tell the
/// policy's allocations from those of tests running in parallel.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCS: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn count() {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
    }

    // SAFETY: forwards to `System` unchanged; the counter has no destructor and
    // never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
            count();
            System.realloc(ptr, layout, size)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    pub fn allocations() -> usize {
        ALLOCS.with(Cell::get)
    }
}

#[global_allocator]
static COUNTING: counting::Counting = counting::Counting;

#[test]
fn the_step_loop_allocates_nothing_beyond_the_runtime() {
    // No EOS ever: every run goes to the maximum length.
    let f = fake().otherwise(&[(3, 1.0), (4, 0.9), (5, 0.8)]);
    let encoded = f.encode(&[0.0; 64]).unwrap();
    // What the fake itself allocates per step once the prefix is non-empty.
    let state = f.step(BOS, &encoded.h0, &encoded).unwrap().state;
    let before = counting::allocations();
    drop(f.step(3, &state, &encoded).unwrap());
    let per_step = counting::allocations() - before;
    assert!(per_step > 0, "the counter sees the fake's allocations");
    for strategy in [Strategy::Greedy, Strategy::Beam { width: 3 }] {
        let measure = |max_len| {
            let mut o = opts(max_len).with_strategy(strategy);
            o.no_repeat_ngram = 0;
            let before = counting::allocations();
            let d = decode(&f, &encoded, &o).unwrap();
            (counting::allocations() - before, d.steps)
        };
        let (a10, s10) = measure(10);
        let (a30, s30) = measure(30);
        assert!(s30 > s10);
        assert_eq!(
            a30 - a10,
            per_step * (s30 - s10),
            "{strategy:?}: {a10}/{s10} vs {a30}/{s30} steps"
        );
    }
}
