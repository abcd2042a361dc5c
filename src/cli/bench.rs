//! `bench`: where the time of one study goes, and how much memory it needs.
//!
//! Each study runs the whole path `serve` takes for one received film, through a
//! store in a scratch folder: record the attempt, read and decode the film,
//! preprocess, encoder, decoding loop, render the report set (JSON, FHIR, SR)
//! and complete it durably (report directory, `.done` record, end of the
//! attempt). Receiving the film (`Store::accept`) happens before and is not
//! timed. The runtime
//! is wrapped so that time spent inside the model is measured apart from the
//! decoding policy and everything else; "outside" is the share of a study's time
//! not spent in the model. Peak memory is the counting allocator's high-water mark
//! during the study, above what was live before it (only in a binary built with
//! the `heap-stats` feature). The first round is a warm-up
//! and is not counted; each figure is the median over the counted studies with
//! its interquartile range ([`Spread`]), so that a difference can be told from
//! a busy machine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use cxr_edge::input::{self, ValidateOptions};
use cxr_edge::output;
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::runtime::{EncoderOutput, Runtime, RuntimeError, StepOutput};
use cxr_edge::store::{Store, StoreOptions};
use serde::Serialize;

use super::alloc;
use super::spread::Spread;

#[derive(clap::Args)]
pub struct Args {
    /// Radiographs to run; default: the sample radiographs in `samples/`.
    pub files: Vec<PathBuf>,
    /// Bundle folder; default as for `report`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Counted rounds over the files (after one warm-up round).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Thread counts to compare.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Beam width (1 = greedy).
    #[arg(long, default_value_t = ReporterOptions::default().beam)]
    pub beam: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read films even if they do not look like frontal chest radiographs.
    #[arg(long)]
    pub force: bool,
    /// Run this artefact (fp32, int8 or f16) instead of the one the bundle names for
    /// this CPU.
    #[arg(long)]
    pub precision: Option<cxr_edge::bundle::Precision>,
}

#[derive(Default)]
struct Counters {
    model_ns: AtomicU64,
}

/// The loaded runtime, timing every call into the model.
struct Timed<R> {
    inner: R,
    counters: Arc<Counters>,
}

impl<R: Runtime> Timed<R> {
    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.counters
            .model_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl<R: Runtime> Runtime for Timed<R> {
    fn encode(&self, image: &[f32]) -> Result<EncoderOutput, RuntimeError> {
        self.time(|| self.inner.encode(image))
    }

    fn step(
        &self,
        token: u32,
        state: &[f32],
        encoded: &EncoderOutput,
    ) -> Result<StepOutput, RuntimeError> {
        self.time(|| self.inner.step(token, state, encoded))
    }
}

/// One study's measurements, milliseconds and bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    attempt: f64,
    decode_image: f64,
    preprocess: f64,
    encoder: f64,
    decoding: f64,
    render: f64,
    writing: f64,
    total: f64,
    model: f64,
    peak_bytes: usize,
    steps: usize,
    tokens: usize,
}

/// The counted studies at one thread count.
#[derive(Debug, Serialize)]
struct Summary {
    threads: usize,
    studies: usize,
    attempt_ms: Spread,
    decode_image_ms: Spread,
    preprocess_ms: Spread,
    encoder_ms: Spread,
    decoding_ms: Spread,
    render_ms: Spread,
    writing_ms: Spread,
    total_ms: Spread,
    model_ms: Spread,
    outside_model_share: Spread,
    /// `None` without the counting allocator (feature `heap-stats`).
    peak_heap_bytes: Option<usize>,
    decoder_steps: usize,
    tokens: usize,
}

fn summarise(threads: usize, samples: &[Sample]) -> Summary {
    let m = |f: fn(&Sample) -> f64| Spread::over(samples, f);
    Summary {
        threads,
        studies: samples.len(),
        attempt_ms: m(|s| s.attempt),
        decode_image_ms: m(|s| s.decode_image),
        preprocess_ms: m(|s| s.preprocess),
        encoder_ms: m(|s| s.encoder),
        decoding_ms: m(|s| s.decoding),
        render_ms: m(|s| s.render),
        writing_ms: m(|s| s.writing),
        total_ms: m(|s| s.total),
        model_ms: m(|s| s.model),
        outside_model_share: m(|s| 1.0 - s.model / s.total.max(1e-9)),
        peak_heap_bytes: alloc::COUNTING
            .then(|| samples.iter().map(|s| s.peak_bytes).max().unwrap_or(0)),
        decoder_steps: m(|s| s.steps as f64).median as usize,
        tokens: m(|s| s.tokens as f64).median as usize,
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.runs == 0 || args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--runs and every --threads value must be at least 1");
    }
    let bundle = super::resolve_bundle(args.model.as_deref())?;
    let files = if args.files.is_empty() {
        super::sample_files()?
    } else {
        args.files.clone()
    };
    let validate = ValidateOptions {
        force: args.force,
        ..ValidateOptions::default()
    };
    let scratch = tempfile::tempdir().context("cannot create a scratch folder for the reports")?;
    let store = Store::open(scratch.path(), StoreOptions::default())?;
    let films = files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("cannot read {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut received = 0;
    let mut summaries = Vec::new();
    let mut model_id = String::new();
    for &threads in &args.threads {
        let counters = Arc::new(Counters::default());
        let options = ReporterOptions {
            beam: args.beam,
            threads,
            precision: args.precision,
            ..ReporterOptions::default()
        };
        let c = counters.clone();
        let reporter = Reporter::open_wrapped(&bundle, &options, move |inner| {
            Box::new(Timed { inner, counters: c })
        })
        .with_context(|| format!("cannot load the model bundle {}", bundle.display()))?;
        model_id = reporter.model_id().to_string();
        let mut samples = Vec::new();
        for round in 0..=args.runs {
            for (file, bytes) in files.iter().zip(&films) {
                received += 1;
                let key = format!("bench-{received}");
                let path = store.accept(&key, bytes, "film")?.path().to_path_buf();
                let s = study(&reporter, &counters, &validate, &store, (&key, &path))
                    .with_context(|| file.display().to_string())?;
                if round > 0 {
                    samples.push(s);
                }
            }
        }
        summaries.push(summarise(threads, &samples));
    }
    let rss = alloc::max_rss();
    if args.json {
        let doc = serde_json::json!({
            "model_id": model_id,
            "bundle": bundle,
            "build_profile": super::BUILD_PROFILE,
            "files": files.len(),
            "runs": args.runs,
            "beam": args.beam,
            "max_rss_bytes": rss,
            "results": summaries,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!(
            "{}",
            table(&model_id, &bundle, files.len(), &args, &summaries, rss)
        );
    }
    Ok(())
}

/// One received film through what `serve` does with it (`serve/process.rs`),
/// each stage timed.
fn study(
    reporter: &Reporter,
    counters: &Counters,
    validate: &ValidateOptions,
    store: &Store,
    (key, path): (&str, &std::path::Path),
) -> anyhow::Result<Sample> {
    let base = alloc::reset_peak();
    let model_before = counters.model_ns.load(Ordering::Relaxed);
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    store.start_attempt(key)?;
    let attempt = ms(start);
    let t = Instant::now();
    let bytes = std::fs::read(path)?;
    let radiograph = input::decode_bytes(&bytes, &path.display().to_string(), validate)?;
    let decode_image = ms(t);
    let (report, stats) = reporter.report_with_stats(&radiograph)?;
    let t = Instant::now();
    let extra = output::render_extra(&report, None)?;
    let render = ms(t);
    let t = Instant::now();
    store.complete(key, &report, &extra)?;
    store.finish_attempt(key)?;
    let writing = ms(t);
    let total = ms(start);
    let model_ns = counters.model_ns.load(Ordering::Relaxed) - model_before;
    Ok(Sample {
        attempt,
        decode_image,
        preprocess: report.timings.preprocess_ms,
        encoder: report.timings.encoder_ms,
        decoding: report.timings.decoder_ms,
        render,
        writing,
        total,
        model: model_ns as f64 / 1e6,
        peak_bytes: alloc::peak().saturating_sub(base),
        steps: stats.decoder_steps,
        tokens: stats.tokens,
    })
}

fn table(
    model_id: &str,
    bundle: &std::path::Path,
    files: usize,
    args: &Args,
    summaries: &[Summary],
    rss: Option<u64>,
) -> String {
    let mut s = format!(
        "model {model_id} ({}), {files} files × {} runs, beam {}; median (p25–p75) per study, ms\n{}\n",
        bundle.display(),
        args.runs,
        args.beam,
        super::build_note()
    );
    for r in summaries {
        let heap = r.peak_heap_bytes.map_or("n/a".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
        });
        let share = &r.outside_model_share;
        s += &format!(
            "{} thread(s), {} studies, {} decoder steps and {} tokens (medians), peak heap {heap}\n",
            r.threads, r.studies, r.decoder_steps, r.tokens
        );
        for (name, v) in [
            ("record attempt", &r.attempt_ms),
            ("image decode", &r.decode_image_ms),
            ("preprocessing", &r.preprocess_ms),
            ("encoder", &r.encoder_ms),
            ("decoding", &r.decoding_ms),
            ("render outputs", &r.render_ms),
            ("complete (fsync)", &r.writing_ms),
            ("total", &r.total_ms),
            ("  in the model", &r.model_ms),
        ] {
            s += &format!("  {name:<18}{}\n", v.show(2));
        }
        s += &format!(
            "  {:<18}{:.1} % ({:.1}–{:.1})\n",
            "outside model",
            share.median * 100.0,
            share.p25 * 100.0,
            share.p75 * 100.0
        );
    }
    if !alloc::COUNTING {
        s += "peak heap: build with `--features heap-stats` to count it\n";
    }
    if let Some(rss) = rss {
        s += &format!(
            "process max RSS {:.1} MiB\n",
            rss as f64 / (1024.0 * 1024.0)
        );
    }
    s
}
