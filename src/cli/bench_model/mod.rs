//! `bench-model`: the bundle's artefacts side by side, in one run.
//!
//! Prints the artefact sizes (fp32 and int8), the time to load each graph from
//! ONNX and from NNEF (parse + optimise + plan, on this CPU), and the latency of
//! the encoder, of one decoder step and of a whole study's model time (the
//! encoder, then the decoder once per token of the sequence it decodes from the
//! parity image, the state threaded through) in tract (fp32 NNEF, int8 NNEF
//! where the bundle has it, and the ONNX graphs) and in onnxruntime on the same
//! ONNX graphs (`ort.rs`), at the same thread count, with the ratios. Inputs
//! are the bundle's parity inputs, so both runtimes compute the same thing.
//!
//! The runtimes take turns: each of `--rounds` rounds times every tract route
//! and then onnxruntime, so a busy spell of the machine falls on all of them
//! rather than on one. Every figure is the median over all rounds' timed runs
//! with its interquartile range ([`Spread`]); a ratio's range runs from the
//! quartiles that bound it ([`Ratio`]), and the study ratio is also given per
//! round.

mod cold_start;
mod nodes;
mod ort;
mod table;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use cxr_edge::bundle::{self, Bundle, Parity, Precision};
use cxr_edge::decode::{self, DecodeOptions};
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::runtime::tract::{ModelSource, TractOptions, TractRuntime};
use cxr_edge::runtime::Runtime;
use serde::Serialize;
use tract_core::prelude::RunOptions;

use super::spread::{Ratio, Spread};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Bundle folder; default as for `report`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Thread counts to compare (tract and onnxruntime alike).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub threads: Vec<usize>,
    /// Timed encoder runs per artefact and round (after one warm-up run).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Timed decoder steps per artefact and round.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Timed whole studies (encoder + every decoder step) per artefact and round.
    #[arg(long, default_value_t = 30)]
    pub studies: usize,
    /// Rounds in which tract and onnxruntime take turns.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Loads per graph and format for the load-time figures.
    #[arg(long, default_value_t = 5)]
    pub loads: usize,
    /// Processes for the cold-start figure: this one's first open, then fresh
    /// ones that each open the bundle once and exit (only a new process pays
    /// the whole cold start).
    #[arg(long, default_value_t = 7)]
    pub cold_starts: usize,
    /// Open the bundle once, print the timings as JSON and exit (what each of
    /// the `--cold-starts` processes runs).
    #[arg(long, hide = true)]
    pub cold_start_once: bool,
    /// Time only this NNEF artefact's encoder and decoder step in tract (no
    /// ONNX, no onnxruntime): e.g. for instruction counts under qemu, where two
    /// runs differing only in `--runs` give the cost of one encoder run.
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Print the N slowest nodes of this CPU's encoder and decoder step (and
    /// the time per operator), then stop.
    #[arg(long, value_name = "N")]
    pub nodes: Option<usize>,
    /// Python interpreter with the `onnxruntime` package.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip onnxruntime.
    #[arg(long)]
    pub no_onnxruntime: bool,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Sizes {
    fp32_bytes: u64,
    int8_bytes: Option<u64>,
    onnx_bytes: u64,
    folder_bytes: u64,
}

#[derive(Debug, Serialize)]
struct LoadTimes {
    /// First `Reporter::open` of a process, over `--cold-starts` fresh
    /// processes: verify every hash, load and plan both graphs of this CPU's
    /// artefact (what a unit pays at boot), and where it went.
    cold_start: cold_start::ColdStart,
    /// `Reporter::open` again, `--loads` times (what is built once per
    /// process, such as tract's operator registries, is not paid again).
    reopen_ms: Spread,
    onnx_encoder_ms: Spread,
    onnx_decoder_ms: Spread,
    nnef_encoder_ms: Spread,
    nnef_decoder_ms: Spread,
    nnef_int8_encoder_ms: Option<Spread>,
}

/// One route's timed runs, milliseconds.
#[derive(Debug, Default, Serialize)]
struct RouteTimes {
    encoder_ms: Spread,
    step_ms: Spread,
    study_ms: Spread,
}

/// onnxruntime's figures (`scripts/ort-bench.py`).
#[derive(Debug, Serialize)]
struct OrtTimes {
    version: String,
    encoder_ms: Spread,
    step_ms: Spread,
    study_ms: Spread,
    encoder_int8_ms: Option<Spread>,
}

#[derive(Debug, Serialize)]
struct Ratios {
    /// tract fp32 NNEF over onnxruntime, whole study (the figure that counts).
    study: Option<Ratio>,
    encoder: Option<Ratio>,
    step: Option<Ratio>,
    /// The study ratio of each round's medians.
    study_per_round: Vec<f64>,
    /// tract fp32 NNEF over tract's ONNX route, whole study (the device's
    /// artefact should be no slower than any other route through tract).
    nnef_over_onnx_study: Option<Ratio>,
}

#[derive(Debug, Serialize)]
struct Latency {
    threads: usize,
    /// Decoder steps in one study (the tokens fed, BOS first).
    study_steps: usize,
    tract_fp32: RouteTimes,
    tract_onnx: RouteTimes,
    tract_int8_encoder_ms: Option<Spread>,
    onnxruntime: Option<OrtTimes>,
    /// Why there are no onnxruntime figures.
    onnxruntime_error: Option<String>,
    ratios: Ratios,
}

#[derive(Debug, Serialize)]
struct Results {
    model_id: String,
    arch: &'static str,
    build_profile: &'static str,
    rounds: usize,
    sizes: Sizes,
    load: LoadTimes,
    latency: Vec<Latency>,
}

/// `n` timed calls of `f` after one warm-up call, in milliseconds.
fn samples(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
    f()?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

fn spread_of(n: usize, f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Spread> {
    Ok(Spread::of(samples(n, f)?))
}

fn file_bytes(b: &Bundle, name: &str) -> anyhow::Result<u64> {
    let p = b.path(name);
    Ok(std::fs::metadata(&p)
        .with_context(|| format!("reading {}", p.display()))?
        .len())
}

fn sizes(b: &Bundle) -> anyhow::Result<Sizes> {
    let m = b.manifest();
    let pair = |p: Precision| -> anyhow::Result<Option<u64>> {
        match m.artefacts.iter().find(|a| a.precision == p) {
            Some(a) => Ok(Some(
                file_bytes(b, &a.encoder)? + file_bytes(b, &a.decoder)?,
            )),
            None => Ok(None),
        }
    };
    let mut folder = 0;
    for entry in std::fs::read_dir(b.dir())? {
        folder += entry?.metadata()?.len();
    }
    Ok(Sizes {
        fp32_bytes: pair(Precision::Fp32)?.context("the bundle has no fp32 artefact")?,
        int8_bytes: pair(Precision::Int8)?,
        onnx_bytes: file_bytes(b, &m.onnx_encoder)? + file_bytes(b, &m.onnx_decoder)?,
        folder_bytes: folder,
    })
}

fn load_times(
    b: &Bundle,
    args: &Args,
    cold_start: cold_start::ColdStart,
) -> anyhow::Result<LoadTimes> {
    let m = b.manifest();
    let options = RunOptions::default();
    let fp32 = m.fp32().context("the bundle has no fp32 artefact")?;
    let loads = args.loads;
    let onnx = |name: &str| {
        let p = b.path(name);
        spread_of(loads, || Ok(bundle::load_onnx(&p, &options).map(drop)?))
    };
    let nnef = |name: &str| {
        let p = b.path(name);
        spread_of(loads, || Ok(bundle::load_nnef(&p, &options).map(drop)?))
    };
    let int8 = m.artefacts.iter().find(|a| a.precision == Precision::Int8);
    Ok(LoadTimes {
        cold_start,
        reopen_ms: spread_of(loads, || {
            Ok(Reporter::open(b.dir(), &ReporterOptions::default()).map(drop)?)
        })?,
        onnx_encoder_ms: onnx(&m.onnx_encoder)?,
        onnx_decoder_ms: onnx(&m.onnx_decoder)?,
        nnef_encoder_ms: nnef(&fp32.encoder)?,
        nnef_decoder_ms: nnef(&fp32.decoder)?,
        nnef_int8_encoder_ms: int8.map(|a| nnef(&a.encoder)).transpose()?,
    })
}

/// The tokens a study feeds the decoder: BOS, then what greedy decoding (as
/// the device runs it) generates from the parity image, one per step run.
fn study_tokens(b: &Bundle, rt: &TractRuntime, parity: &Parity) -> anyhow::Result<Vec<u32>> {
    let m = b.manifest();
    let encoded = rt.encode(&parity.image)?;
    let options = DecodeOptions::new(m.vocab.bos_id, m.vocab.eos_id, m.max_len);
    let decoded = decode::decode(rt, &encoded, &options)?;
    let mut fed = vec![m.vocab.bos_id];
    fed.extend(&decoded.tokens);
    fed.truncate(decoded.steps);
    Ok(fed)
}

/// One study's model time: the encoder, then one step per token of `fed`.
fn study(rt: &TractRuntime, image: &[f32], fed: &[u32]) -> anyhow::Result<()> {
    let encoded = rt.encode(image)?;
    let mut h = encoded.h0.clone();
    for &token in fed {
        h = rt.step(token, &h, &encoded)?.state;
    }
    Ok(())
}

/// One round's timed runs of one loaded runtime, added to `into`.
fn time_route(
    rt: &TractRuntime,
    parity: &Parity,
    fed: &[u32],
    args: &Args,
    into: &mut [Vec<f64>; 3],
) -> anyhow::Result<()> {
    let image = &parity.image;
    let encoded = rt.encode(image)?;
    let token = fed.first().copied().unwrap_or(0);
    into[0].extend(samples(args.runs, || Ok(rt.encode(image).map(drop)?))?);
    into[1].extend(samples(args.steps, || {
        Ok(rt.step(token, &encoded.h0, &encoded).map(drop)?)
    })?);
    into[2].extend(samples(args.studies, || study(rt, image, fed))?);
    Ok(())
}

fn route_times(s: [Vec<f64>; 3]) -> RouteTimes {
    let [encoder, step, study] = s;
    RouteTimes {
        encoder_ms: Spread::of(encoder),
        step_ms: Spread::of(step),
        study_ms: Spread::of(study),
    }
}

/// Everything at one thread count, the runtimes taking turns each round.
fn latency(b: &Bundle, parity: &Parity, threads: usize, args: &Args) -> anyhow::Result<Latency> {
    let load = |source, precision| {
        TractRuntime::load_with(
            b,
            &TractOptions {
                threads,
                source,
                precision,
            },
        )
    };
    let nnef = load(ModelSource::Nnef, Some(Precision::Fp32))?;
    let onnx = load(ModelSource::Onnx, None)?;
    let has_int8 = b
        .manifest()
        .artefacts
        .iter()
        .any(|a| a.precision == Precision::Int8);
    let int8 = has_int8
        .then(|| load(ModelSource::Nnef, Some(Precision::Int8)))
        .transpose()?;
    let fed = study_tokens(b, &nnef, parity)?;
    let (mut fp32_s, mut onnx_s, mut int8_s) = (
        <[Vec<f64>; 3]>::default(),
        <[Vec<f64>; 3]>::default(),
        Vec::new(),
    );
    let mut ort_rounds = Vec::new();
    let mut ort_error = args
        .no_onnxruntime
        .then(|| "skipped (--no-onnxruntime)".to_string());
    let mut per_round = Vec::new();
    for _ in 0..args.rounds {
        let before = fp32_s[2].len();
        time_route(&nnef, parity, &fed, args, &mut fp32_s)?;
        let tract_round = Spread::of(fp32_s[2][before..].to_vec()).median;
        time_route(&onnx, parity, &fed, args, &mut onnx_s)?;
        if let Some(rt) = &int8 {
            int8_s.extend(samples(args.runs, || {
                Ok(rt.encode(&parity.image).map(drop)?)
            })?);
        }
        if ort_error.is_some() {
            continue;
        }
        let counts = (args.runs, args.steps, args.studies);
        match ort::run(&args.python, b.dir(), threads, counts, &fed) {
            Ok(v) => {
                let ort_round = Spread::of(ort::samples(&v, "study_ms")).median;
                if ort_round > 0.0 {
                    per_round.push(tract_round / ort_round);
                }
                ort_rounds.push(v);
            }
            Err(e) => ort_error = Some(e),
        }
    }
    let (tract_fp32, tract_onnx) = (route_times(fp32_s), route_times(onnx_s));
    let ort =
        (ort_error.is_none() && !ort_rounds.is_empty()).then(|| ort_times(&ort_rounds, has_int8));
    let ratios = ratios(&tract_fp32, &tract_onnx, ort.as_ref(), per_round);
    Ok(Latency {
        threads,
        study_steps: fed.len(),
        tract_fp32,
        tract_onnx,
        tract_int8_encoder_ms: int8.is_some().then(|| Spread::of(int8_s)),
        onnxruntime: ort,
        onnxruntime_error: ort_error,
        ratios,
    })
}

/// onnxruntime's figures, every round's runs pooled.
fn ort_times(rounds: &[serde_json::Value], has_int8: bool) -> OrtTimes {
    OrtTimes {
        version: rounds[0]
            .get("onnxruntime")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string(),
        encoder_ms: ort::pooled(rounds, "encoder_ms"),
        step_ms: ort::pooled(rounds, "decoder_step_ms"),
        study_ms: ort::pooled(rounds, "study_ms"),
        encoder_int8_ms: has_int8.then(|| ort::pooled(rounds, "encoder_int8_ms")),
    }
}

fn ratios(
    fp32: &RouteTimes,
    onnx: &RouteTimes,
    ort: Option<&OrtTimes>,
    per_round: Vec<f64>,
) -> Ratios {
    let vs_ort = |f: fn(&RouteTimes) -> &Spread, g: fn(&OrtTimes) -> &Spread| {
        ort.and_then(|o| Ratio::of(f(fp32), g(o)))
    };
    Ratios {
        study: vs_ort(|t| &t.study_ms, |o| &o.study_ms),
        encoder: vs_ort(|t| &t.encoder_ms, |o| &o.encoder_ms),
        step: vs_ort(|t| &t.step_ms, |o| &o.step_ms),
        study_per_round: if ort.is_some() { per_round } else { Vec::new() },
        nnef_over_onnx_study: Ratio::of(&fp32.study_ms, &onnx.study_ms),
    }
}

/// `--precision`: one NNEF artefact's encoder and decoder step in tract alone.
fn one_artefact(b: &Bundle, parity: &Parity, p: Precision, args: &Args) -> anyhow::Result<()> {
    for &threads in &args.threads {
        let options = TractOptions {
            threads,
            source: ModelSource::Nnef,
            precision: Some(p),
        };
        let rt = TractRuntime::load_with(b, &options)?;
        let fed = [parity.steps.first().map_or(0, |s| s.token)];
        let mut s = <[Vec<f64>; 3]>::default();
        let args = Args {
            studies: 1,
            ..args.clone()
        };
        time_route(&rt, parity, &fed, &args, &mut s)?;
        let t = route_times(s);
        println!(
            "tract {p} NNEF, {threads} thread(s): encoder {} ms, decoder step {} ms (median (p25–p75))",
            t.encoder_ms.show(3),
            t.step_ms.show(3)
        );
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.runs == 0
        || args.steps == 0
        || args.studies == 0
        || args.rounds == 0
        || args.loads == 0
        || args.cold_starts == 0
        || args.threads.contains(&0)
    {
        bail!("--runs, --steps, --studies, --rounds, --loads, --cold-starts and every --threads value must be at least 1");
    }
    let dir = super::resolve_bundle(args.model.as_deref())?;
    if args.cold_start_once {
        return cold_start::print_one(&dir);
    }
    let first_open = cold_start::this_process(&dir)?;
    let b = Bundle::open(&dir)?;
    let parity = b.parity()?;
    if let Some(top) = args.nodes {
        let options = TractOptions {
            threads: args.threads.first().copied().unwrap_or(1),
            precision: args.precision,
            ..TractOptions::default()
        };
        let rt = TractRuntime::load_with(&b, &options)?;
        println!("{}", super::build_note());
        return nodes::print(&rt, &parity, args.runs, top);
    }
    if let Some(p) = args.precision {
        return one_artefact(&b, &parity, p, &args);
    }
    let latency = args
        .threads
        .iter()
        .map(|&threads| latency(&b, &parity, threads, &args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let results = Results {
        model_id: b.manifest().model_id.clone(),
        arch: std::env::consts::ARCH,
        build_profile: super::BUILD_PROFILE,
        rounds: args.rounds,
        sizes: sizes(&b)?,
        load: load_times(
            &b,
            &args,
            cold_start::measure(&dir, args.cold_starts, first_open)?,
        )?,
        latency,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table::table(&results, &dir, &args));
    }
    Ok(())
}
