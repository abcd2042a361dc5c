//! `bench`: where the time of one study goes, and how much memory it needs.
//!
//! Each study runs the whole device path: decode the file, preprocess, encoder,
//! decoding loop, then write the report set (JSON, FHIR, SR) durably. The runtime
//! is wrapped so that time spent inside the model is measured apart from the
//! decoding policy and everything else; "outside" is the share of a study's time
//! not spent in the model. Peak memory is the counting allocator's high-water mark
//! during the study, above what was live before it (only in a binary built with
//! the `heap-stats` feature). The first round is a warm-up
//! and is not counted; figures are medians over the counted studies.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use cxr_edge::input::{self, ValidateOptions};
use cxr_edge::output;
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::runtime::{EncoderOutput, Runtime, RuntimeError, StepOutput};
use cxr_edge::store::OutDir;
use serde::Serialize;

use super::alloc;

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
    /// Run this artefact (fp32 or int8) instead of the one the bundle names for
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
    decode_image: f64,
    preprocess: f64,
    encoder: f64,
    decoding: f64,
    writing: f64,
    total: f64,
    model: f64,
    peak_bytes: usize,
    steps: usize,
    tokens: usize,
}

/// Medians over the counted studies at one thread count.
#[derive(Debug, Serialize)]
struct Summary {
    threads: usize,
    studies: usize,
    decode_image_ms: f64,
    preprocess_ms: f64,
    encoder_ms: f64,
    decoding_ms: f64,
    writing_ms: f64,
    total_ms: f64,
    model_ms: f64,
    outside_model_share: f64,
    /// `None` without the counting allocator (feature `heap-stats`).
    peak_heap_bytes: Option<usize>,
    decoder_steps: usize,
    tokens: usize,
}

fn summarise(threads: usize, samples: &[Sample]) -> Summary {
    let m = |f: fn(&Sample) -> f64| super::median(samples.iter().map(f).collect());
    let total = m(|s| s.total);
    let model = m(|s| s.model);
    Summary {
        threads,
        studies: samples.len(),
        decode_image_ms: m(|s| s.decode_image),
        preprocess_ms: m(|s| s.preprocess),
        encoder_ms: m(|s| s.encoder),
        decoding_ms: m(|s| s.decoding),
        writing_ms: m(|s| s.writing),
        total_ms: total,
        model_ms: model,
        outside_model_share: super::median(
            samples
                .iter()
                .map(|s| 1.0 - s.model / s.total.max(1e-9))
                .collect(),
        ),
        peak_heap_bytes: alloc::COUNTING
            .then(|| samples.iter().map(|s| s.peak_bytes).max().unwrap_or(0)),
        decoder_steps: m(|s| s.steps as f64) as usize,
        tokens: m(|s| s.tokens as f64) as usize,
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
    let out = OutDir::open(scratch.path())?;
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
            for file in &files {
                let s = study(&reporter, &counters, &validate, &out, file)?;
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

fn study(
    reporter: &Reporter,
    counters: &Counters,
    validate: &ValidateOptions,
    out: &OutDir,
    file: &std::path::Path,
) -> anyhow::Result<Sample> {
    let base = alloc::reset_peak();
    let model_before = counters.model_ns.load(Ordering::Relaxed);
    let start = Instant::now();
    let radiograph = input::decode_file(file, validate)?;
    let decode_image = start.elapsed().as_secs_f64() * 1e3;
    let (report, stats) = reporter.report_with_stats(&radiograph)?;
    let t = Instant::now();
    let extra = output::render_extra(&report, None)?;
    out.write("bench", &report, &extra)?;
    let writing = t.elapsed().as_secs_f64() * 1e3;
    let total = start.elapsed().as_secs_f64() * 1e3;
    let model_ns = counters.model_ns.load(Ordering::Relaxed) - model_before;
    Ok(Sample {
        decode_image,
        preprocess: report.timings.preprocess_ms,
        encoder: report.timings.encoder_ms,
        decoding: report.timings.decoder_ms,
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
        "model {model_id} ({}), {files} files × {} runs, beam {}; medians in ms\n{}\n",
        bundle.display(),
        args.runs,
        args.beam,
        super::build_note()
    );
    s += "threads  decode  preproc  encoder  decoding  writing    total    model  outside  steps  tokens  peak heap\n";
    for r in summaries {
        let heap = r.peak_heap_bytes.map_or("n/a".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
        });
        s += &format!(
            "{:>7} {:>7.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>7.1}% {:>6} {:>7} {:>10}\n",
            r.threads,
            r.decode_image_ms,
            r.preprocess_ms,
            r.encoder_ms,
            r.decoding_ms,
            r.writing_ms,
            r.total_ms,
            r.model_ms,
            r.outside_model_share * 100.0,
            r.decoder_steps,
            r.tokens,
            heap
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
