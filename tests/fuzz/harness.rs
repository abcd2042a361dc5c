//! Runs one target over its corpus and a fixed number of mutated cases, one case
//! at a time, and fails on a panic, a broken invariant, a case over the heap
//! bound, or a hang. Every failing case is written to a file and printed with
//! the command that replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use super::alloc;
use super::mutate::{self, Grammar, Rng};

/// One input format under test.
pub struct Target {
    /// Also the corpus folder (`tests/fuzz/corpus/<name>/`) and the test's name.
    pub name: &'static str,
    /// Extension of saved failing cases.
    pub ext: &'static str,
    pub grammar: Grammar,
    /// Feeds one input through the real code path. `Ok(true)`: accepted,
    /// `Ok(false)`: refused with a proper error, `Err`: an invariant broke.
    pub run: fn(&[u8]) -> Result<bool, String>,
}

/// Mutated cases per format and run, unless `FUZZ_CASES` says otherwise.
pub const DEFAULT_CASES: u64 = 10_000;
/// The same under an emulator (`CXR_TEST_RUNNER`, set by
/// `scripts/setup-aarch64.sh` for the aarch64 run under qemu): the host run has
/// done the 10 000; this one checks the aarch64 build's decoders with fewer.
pub const EMULATED_CASES: u64 = 2_000;
/// The run seed, unless `FUZZ_SEED` says otherwise: CI runs the same cases every time.
pub const DEFAULT_SEED: u64 = 13;
/// A case running longer than this is a hang (`FUZZ_TIMEOUT_S`). Cases take
/// milliseconds; the margin is for a loaded 2-core CI machine, not for slow code.
pub const DEFAULT_TIMEOUT_S: u64 = 30;
/// Failures collected before a run stops early.
const MAX_FAILURES: usize = 10;

/// One case at a time in the whole binary, so the allocator's high-water mark
/// belongs to the case being run.
static RUN_LOCK: Mutex<()> = Mutex::new(());

/// The case now running, for the watchdog and the allocator's ceiling report.
struct Active {
    name: &'static str,
    ext: &'static str,
    seed: u64,
    case: u64,
    started: Instant,
    bytes: Vec<u8>,
}

static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
/// Whether a case is running: its panics are recorded, not printed.
static IN_CASE: AtomicBool = AtomicBool::new(false);

struct Settings {
    cases: u64,
    seed: u64,
    timeout: Duration,
    trace: bool,
    /// `FUZZ_CASE=<format>:<n>`: only this case.
    only_case: Option<u64>,
    /// `FUZZ_REPLAY=<format>:<file>`: only this file.
    replay: Option<PathBuf>,
}

impl Settings {
    fn from_env(name: &str) -> Settings {
        let num = |var: &str, default: u64| match std::env::var(var) {
            Ok(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("{var}={v}: not a number")),
            Err(_) => default,
        };
        // `FORMAT:VALUE`: the value if FORMAT is this target's name.
        let mine = |var: &str| {
            let v = std::env::var(var).ok()?;
            let (format, value) = v
                .split_once(':')
                .unwrap_or_else(|| panic!("{var}={v}: expected <format>:<value>"));
            (format == name).then(|| value.to_string())
        };
        Settings {
            cases: num("FUZZ_CASES", default_cases()),
            seed: num("FUZZ_SEED", DEFAULT_SEED),
            timeout: Duration::from_secs(num("FUZZ_TIMEOUT_S", DEFAULT_TIMEOUT_S)),
            trace: std::env::var_os("FUZZ_TRACE").is_some(),
            only_case: mine("FUZZ_CASE").map(|n| n.parse().expect("FUZZ_CASE=<format>:<number>")),
            replay: mine("FUZZ_REPLAY").map(PathBuf::from),
        }
    }
}

fn default_cases() -> u64 {
    match std::env::var("CXR_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => EMULATED_CASES,
        _ => DEFAULT_CASES,
    }
}

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(name)
}

fn read_corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let corpus: Vec<_> = files
        .into_iter()
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            (file, std::fs::read(&p).unwrap())
        })
        .collect();
    assert!(!corpus.is_empty(), "{}: empty corpus", dir.display());
    corpus
}

/// Case numbers with their bytes, made lazily.
type Cases<'a> = Box<dyn Iterator<Item = (u64, Vec<u8>)> + Send + 'a>;

/// What one run saw, for the closing line.
#[derive(Default)]
struct Tally {
    cases: u64,
    accepted: u64,
    peak: (usize, u64),
    slowest: (Duration, u64),
    failures: Vec<String>,
}

/// Run `target`'s corpus, then its mutated cases; panics listing every failure.
pub fn run(target: &Target, max_heap: usize) {
    let _one_at_a_time = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    install_hooks();
    let settings = Settings::from_env(target.name);
    let corpus = read_corpus(target.name);
    let seeds: Vec<Vec<u8>> = corpus.iter().map(|(_, b)| b.clone()).collect();
    let max_len = seeds.iter().map(Vec::len).max().unwrap() * 2 + 4096;
    let n_corpus = corpus.len() as u64;
    // Case n < n_corpus is corpus file n as it is; later cases are mutations.
    let make = |n: u64| -> Vec<u8> {
        if n < n_corpus {
            return seeds[n as usize].clone();
        }
        let mut rng = Rng::for_case(settings.seed, target.name, n);
        mutate::case(&seeds, &target.grammar, &mut rng, max_len)
    };
    let cases: Cases<'_> = match (&settings.replay, settings.only_case) {
        (Some(file), _) => Box::new(std::iter::once((u64::MAX, std::fs::read(file).unwrap()))),
        (None, Some(n)) => Box::new(std::iter::once((n, make(n)))),
        (None, None) => Box::new((0..n_corpus + settings.cases).map(|n| (n, make(n)))),
    };
    let start = Instant::now();
    let tally = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name(format!("fuzz-{}", target.name))
            // As much stack as `serve`'s main thread has (Linux default).
            .stack_size(8 << 20)
            .spawn_scoped(s, || run_cases(target, &settings, cases, max_heap))
            .unwrap();
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            watch_for_hang(settings.timeout);
        }
        worker.join().unwrap()
    });
    println!(
        "fuzz {}: {} cases ({} corpus files + mutations, seed {}) in {:.1} s; {} accepted, \
         {} refused; peak heap {:.1} MiB (case {}); slowest case {} ms (case {})",
        target.name,
        tally.cases,
        n_corpus,
        settings.seed,
        start.elapsed().as_secs_f64(),
        tally.accepted,
        tally.cases - tally.accepted - tally.failures.len() as u64,
        tally.peak.0 as f64 / (1 << 20) as f64,
        tally.peak.1,
        tally.slowest.0.as_millis(),
        tally.slowest.1,
    );
    assert!(
        tally.failures.is_empty(),
        "fuzz {}: {} failing case(s):\n{}",
        target.name,
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

fn run_cases(target: &Target, settings: &Settings, cases: Cases<'_>, max_heap: usize) -> Tally {
    let mut tally = Tally::default();
    for (n, bytes) in cases {
        if settings.trace {
            eprintln!("fuzz {}: case {n}", target.name);
        }
        set_active(target, settings.seed, n, &bytes);
        LAST_PANIC.lock().unwrap().clear();
        let base = alloc::reset_peak();
        let started = Instant::now();
        IN_CASE.store(true, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&bytes)));
        IN_CASE.store(false, Ordering::Relaxed);
        let took = started.elapsed();
        let heap = alloc::peak().saturating_sub(base);
        *ACTIVE.lock().unwrap() = None;
        tally.cases += 1;
        tally.peak = tally.peak.max((heap, n));
        tally.slowest = tally.slowest.max((took, n));
        let problem = match outcome {
            Err(_) => Some(format!("panicked: {}", LAST_PANIC.lock().unwrap())),
            Ok(Err(broken)) => Some(broken),
            Ok(Ok(_)) if heap > max_heap => Some(format!(
                "peak heap {:.1} MiB over the bound of {} MiB",
                heap as f64 / (1 << 20) as f64,
                max_heap >> 20
            )),
            Ok(Ok(accepted)) => {
                tally.accepted += accepted as u64;
                None
            }
        };
        if let Some(problem) = problem {
            let saved = save(target.name, target.ext, settings.seed, n, &bytes);
            tally.failures.push(format!(
                "  case {n}: {problem}\n    {}",
                replay_hint(target.name, &saved)
            ));
            if tally.failures.len() >= MAX_FAILURES {
                break;
            }
        }
    }
    tally
}

fn set_active(target: &Target, seed: u64, case: u64, bytes: &[u8]) {
    let mut active = ACTIVE.lock().unwrap();
    let a = active.get_or_insert_with(|| Active {
        name: target.name,
        ext: target.ext,
        seed,
        case,
        started: Instant::now(),
        bytes: Vec::new(),
    });
    a.case = case;
    a.bytes.clear();
    a.bytes.extend_from_slice(bytes);
    a.started = Instant::now();
}

/// Save a failing case under the target folder's `tmp/fuzz-failures/<format>/`.
fn save(name: &str, ext: &str, seed: u64, case: u64, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("seed{seed}-case{case}.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn replay_hint(name: &str, saved: &Path) -> String {
    format!(
        "saved as {}; replay: FUZZ_REPLAY={name}:{} cargo test --test fuzz {name}",
        saved.display(),
        saved.display()
    )
}

/// Called from the watchdog: a case past the timeout ends the process, named.
fn watch_for_hang(timeout: Duration) {
    let active = ACTIVE.lock().unwrap();
    if let Some(a) = active.as_ref().filter(|a| a.started.elapsed() > timeout) {
        let saved = save(a.name, a.ext, a.seed, a.case, &a.bytes);
        eprintln!(
            "fuzz {}: case {} still running after {} s (hang)\n  {}",
            a.name,
            a.case,
            timeout.as_secs(),
            replay_hint(a.name, &saved)
        );
        std::process::exit(1);
    }
}

/// The panic hook keeps the message with its location (the payload alone has
/// no location); the allocator's ceiling report names the case.
fn install_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CASE.load(Ordering::Relaxed) {
                return default(info);
            }
            let thread = std::thread::current();
            let msg = format!("{info} (thread {})", thread.name().unwrap_or("?"));
            if let Ok(mut last) = LAST_PANIC.lock() {
                if last.is_empty() {
                    *last = msg;
                }
            }
        }));
        alloc::on_ceiling(ceiling_breached);
    });
}

fn ceiling_breached(size: usize) -> ! {
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    match active.as_ref() {
        Some(a) => {
            let saved = save(a.name, a.ext, a.seed, a.case, &a.bytes);
            eprintln!(
                "fuzz {}: case {} asked for {size} bytes, past the {} MiB heap ceiling\n  {}",
                a.name,
                a.case,
                alloc::HARD_CEILING >> 20,
                replay_hint(a.name, &saved)
            );
        }
        None => eprintln!(
            "fuzz: an allocation of {size} bytes outside any case passed the heap ceiling"
        ),
    }
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that panics on `P`, allocates 4 MiB on `A`, breaks an
    /// invariant on `E`, and accepts anything else.
    fn faulty(bytes: &[u8]) -> Result<bool, String> {
        match bytes.first() {
            Some(b'P') => panic!("boom"),
            Some(b'A') => Ok(std::hint::black_box(vec![1u8; 4 << 20]).len() > 1),
            Some(b'E') => Err("broken".into()),
            _ => Ok(true),
        }
    }

    #[test]
    fn panics_heap_and_broken_invariants_are_caught_and_named() {
        let _one_at_a_time = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        install_hooks();
        let target = Target {
            name: "self-test",
            ext: "bin",
            grammar: Grammar {
                fields: mutate::no_fields,
                dictionary: &[b""],
                fixup: None,
            },
            run: faulty,
        };
        let settings = Settings::from_env("self-test");
        let inputs = [&b"ok"[..], b"P", b"A", b"E", b"fine"];
        let cases: Cases<'_> = Box::new(
            inputs
                .into_iter()
                .map(|b| b.to_vec())
                .enumerate()
                .map(|(n, b)| (n as u64, b)),
        );
        let tally = run_cases(&target, &settings, cases, 1 << 20);
        assert_eq!((tally.cases, tally.accepted), (5, 2));
        let failures = tally.failures.join("\n");
        assert_eq!(tally.failures.len(), 3, "{failures}");
        assert!(
            tally.failures[0].contains("case 1: panicked") && failures.contains("boom"),
            "{failures}"
        );
        assert!(
            tally.failures[1].contains("case 2: peak heap 4.0 MiB over the bound of 1 MiB"),
            "{failures}"
        );
        assert!(tally.failures[2].contains("case 3: broken"), "{failures}");
        assert!(
            failures.contains("replay: FUZZ_REPLAY=self-test:"),
            "{failures}"
        );
    }
}
