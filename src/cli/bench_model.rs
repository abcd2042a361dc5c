//! `bench-model`: the bundle's artefacts side by side, in one run.
//!
//! Prints the artefact sizes (fp32 and int8), the time to load each graph from
//! ONNX and from NNEF (parse + optimise + plan, on this CPU), and the median
//! latency of the encoder and of one decoder step in tract (fp32 NNEF, int8
//! NNEF where the bundle has it, and the ONNX graphs) and in onnxruntime on the
//! same ONNX graphs, at the same thread count, with the ratios. onnxruntime runs
//! through `scripts/ort-bench.py` (its Python package; a dev tool, not a device
//! dependency); without it that column says why it is missing. Inputs are the
//! bundle's parity inputs, so both runtimes compute the same thing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use cxr_edge::bundle::{self, Bundle, Parity, Precision};
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::runtime::tract::{ModelSource, TractOptions, TractRuntime};
use cxr_edge::runtime::Runtime;
use serde::Serialize;
use tract_core::prelude::RunOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Bundle folder; default as for `report`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Thread counts to compare (tract and onnxruntime alike).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub threads: Vec<usize>,
    /// Timed encoder runs per artefact (after one warm-up run).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Timed decoder steps per artefact.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Loads per graph and format for the load-time medians.
    #[arg(long, default_value_t = 3)]
    pub loads: usize,
    /// Time only this NNEF artefact's encoder and decoder step in tract (no
    /// ONNX, no onnxruntime): e.g. for instruction counts under qemu, where two
    /// runs differing only in `--runs` give the cost of one encoder run.
    #[arg(long)]
    pub precision: Option<Precision>,
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
    /// First `Reporter::open` of the process: verify every hash, load and plan
    /// both graphs of this CPU's artefact (what a unit pays at boot).
    cold_start_ms: f64,
    onnx_encoder_ms: f64,
    onnx_decoder_ms: f64,
    nnef_encoder_ms: f64,
    nnef_decoder_ms: f64,
    nnef_int8_encoder_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Latency {
    threads: usize,
    tract_fp32_encoder_ms: f64,
    tract_fp32_step_ms: f64,
    tract_int8_encoder_ms: Option<f64>,
    tract_onnx_encoder_ms: f64,
    tract_onnx_step_ms: f64,
    /// onnxruntime's own figures (`scripts/ort-bench.py`), or why there are none.
    onnxruntime: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Results {
    model_id: String,
    arch: &'static str,
    build_profile: &'static str,
    sizes: Sizes,
    load: LoadTimes,
    latency: Vec<Latency>,
}

fn time_ms(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(super::median(times))
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

fn load_times(b: &Bundle, loads: usize, cold_start_ms: f64) -> anyhow::Result<LoadTimes> {
    let m = b.manifest();
    let options = RunOptions::default();
    let fp32 = m.fp32().context("the bundle has no fp32 artefact")?;
    let onnx = |name: &str| {
        let p = b.path(name);
        time_ms(loads, || Ok(bundle::load_onnx(&p, &options).map(drop)?))
    };
    let nnef = |name: &str| {
        let p = b.path(name);
        time_ms(loads, || Ok(bundle::load_nnef(&p, &options).map(drop)?))
    };
    let int8 = m.artefacts.iter().find(|a| a.precision == Precision::Int8);
    Ok(LoadTimes {
        cold_start_ms,
        onnx_encoder_ms: onnx(&m.onnx_encoder)?,
        onnx_decoder_ms: onnx(&m.onnx_decoder)?,
        nnef_encoder_ms: nnef(&fp32.encoder)?,
        nnef_decoder_ms: nnef(&fp32.decoder)?,
        nnef_int8_encoder_ms: int8.map(|a| nnef(&a.encoder)).transpose()?,
    })
}

/// Median encoder and decoder-step latency of one loaded runtime.
fn runtime_latency(rt: &TractRuntime, parity: &Parity, args: &Args) -> anyhow::Result<(f64, f64)> {
    let encoded = rt.encode(&parity.image)?;
    let encoder = time_ms(args.runs, || Ok(rt.encode(&parity.image).map(drop)?))?;
    let token = parity.steps.first().map_or(0, |s| s.token);
    let step = time_ms(args.steps, || {
        Ok(rt.step(token, &encoded.h0, &encoded).map(drop)?)
    })?;
    Ok((encoder, step))
}

fn onnxruntime(bundle: &Path, threads: usize, args: &Args) -> serde_json::Value {
    let script = super::candidates("scripts")
        .into_iter()
        .map(|d| d.join("ort-bench.py"))
        .find(|p| p.is_file());
    let Some(script) = script else {
        return serde_json::json!({"error": "scripts/ort-bench.py not found"});
    };
    let out = Command::new(&args.python)
        .arg(&script)
        .arg(bundle)
        .args(["--threads", &threads.to_string()])
        .args(["--runs", &args.runs.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .output();
    match out {
        Err(e) => serde_json::json!({"error": format!("cannot run {}: {e}", args.python)}),
        Ok(o) if !o.status.success() => serde_json::json!({
            "error": format!("{} failed: {}", script.display(), String::from_utf8_lossy(&o.stderr).trim())
        }),
        Ok(o) => match serde_json::from_slice::<serde_json::Value>(&o.stdout) {
            Err(e) => serde_json::json!({
                "error": format!("unreadable output of {}: {e}", script.display())
            }),
            // Under qemu-user the interpreter is the host's: not the same CPU.
            Ok(v) => match v.get("machine").and_then(|m| m.as_str()) {
                Some(m) if m != std::env::consts::ARCH => serde_json::json!({
                    "error": format!(
                        "onnxruntime ran on {m}, this benchmark on {}: not comparable",
                        std::env::consts::ARCH
                    )
                }),
                _ => v,
            },
        },
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.runs == 0 || args.steps == 0 || args.loads == 0 || args.threads.contains(&0) {
        bail!("--runs, --steps, --loads and every --threads value must be at least 1");
    }
    let dir = super::resolve_bundle(args.model.as_deref())?;
    let t = Instant::now();
    Reporter::open(&dir, &ReporterOptions::default())
        .with_context(|| format!("cannot load the model bundle {}", dir.display()))?;
    let cold_start_ms = t.elapsed().as_secs_f64() * 1e3;
    let b = Bundle::open(&dir)?;
    let parity = b.parity()?;
    let has_int8 = b
        .manifest()
        .artefacts
        .iter()
        .any(|a| a.precision == Precision::Int8);
    let mut latency = Vec::new();
    for &threads in &args.threads {
        let load = |source, precision| {
            TractRuntime::load_with(
                &b,
                &TractOptions {
                    threads,
                    source,
                    precision,
                },
            )
        };
        if let Some(p) = args.precision {
            let (e, s) = runtime_latency(&load(ModelSource::Nnef, Some(p))?, &parity, &args)?;
            println!("tract {p} NNEF, {threads} thread(s): encoder {e:.3} ms, decoder step {s:.3} ms (medians)");
            continue;
        }
        let (fe, fs) = runtime_latency(
            &load(ModelSource::Nnef, Some(Precision::Fp32))?,
            &parity,
            &args,
        )?;
        let (oe, os) = runtime_latency(&load(ModelSource::Onnx, None)?, &parity, &args)?;
        let int8 = if has_int8 {
            let rt = load(ModelSource::Nnef, Some(Precision::Int8))?;
            Some(time_ms(args.runs, || {
                Ok(rt.encode(&parity.image).map(drop)?)
            })?)
        } else {
            None
        };
        latency.push(Latency {
            threads,
            tract_fp32_encoder_ms: fe,
            tract_fp32_step_ms: fs,
            tract_int8_encoder_ms: int8,
            tract_onnx_encoder_ms: oe,
            tract_onnx_step_ms: os,
            onnxruntime: if args.no_onnxruntime {
                serde_json::json!({"error": "skipped (--no-onnxruntime)"})
            } else {
                onnxruntime(&dir, threads, &args)
            },
        });
    }
    if args.precision.is_some() {
        return Ok(());
    }
    let results = Results {
        model_id: b.manifest().model_id.clone(),
        arch: std::env::consts::ARCH,
        build_profile: super::BUILD_PROFILE,
        sizes: sizes(&b)?,
        load: load_times(&b, args.loads, cold_start_ms)?,
        latency,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&results, &dir));
    }
    Ok(())
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn table(r: &Results, dir: &Path) -> String {
    let ms = |v: Option<f64>| v.map_or("     n/a".to_string(), |v| format!("{v:8.3}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match a.zip(b) {
        Some((a, b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".into(),
    };
    let s = &r.sizes;
    let mut out = format!(
        "model {} ({}) on {}\n{}\n",
        r.model_id,
        dir.display(),
        r.arch,
        super::build_note()
    );
    out += &format!(
        "size: fp32 NNEF {}, int8 NNEF {}{}; ONNX {}; whole folder {}\n",
        mb(s.fp32_bytes),
        s.int8_bytes.map_or("n/a".into(), mb),
        s.int8_bytes.map_or(String::new(), |i| format!(
            " ({:.2}× fp32)",
            i as f64 / s.fp32_bytes as f64
        )),
        mb(s.onnx_bytes),
        mb(s.folder_bytes)
    );
    let l = &r.load;
    out += &format!(
        "cold start (verify hashes, load and plan this CPU's artefact): {:.1} ms\n",
        l.cold_start_ms
    );
    out += &format!(
        "load (parse + optimise + plan), ms: encoder ONNX {:.1} / NNEF {:.1} = {}; decoder ONNX {:.1} / NNEF {:.1} = {}; int8 encoder NNEF {}\n",
        l.onnx_encoder_ms,
        l.nnef_encoder_ms,
        ratio(Some(l.onnx_encoder_ms), Some(l.nnef_encoder_ms)),
        l.onnx_decoder_ms,
        l.nnef_decoder_ms,
        ratio(Some(l.onnx_decoder_ms), Some(l.nnef_decoder_ms)),
        l.nnef_int8_encoder_ms.map_or("n/a".into(), |v| format!("{v:.1}")),
    );
    out += "latency, median ms        encoder   decoder step\n";
    for t in &r.latency {
        let ort = |key: &str| t.onnxruntime.get(key).and_then(|v| v.as_f64());
        out += &format!("{} thread(s)\n", t.threads);
        out += &format!(
            "  tract fp32 NNEF        {}  {}\n",
            ms(Some(t.tract_fp32_encoder_ms)),
            ms(Some(t.tract_fp32_step_ms))
        );
        out += &format!(
            "  tract int8 NNEF        {}  (fp32 decoder)\n",
            ms(t.tract_int8_encoder_ms)
        );
        out += &format!(
            "  tract fp32 ONNX        {}  {}\n",
            ms(Some(t.tract_onnx_encoder_ms)),
            ms(Some(t.tract_onnx_step_ms))
        );
        match t.onnxruntime.get("error").and_then(|e| e.as_str()) {
            Some(e) => out += &format!("  onnxruntime: not measured: {e}\n"),
            None => {
                out += &format!(
                    "  onnxruntime {} fp32 {}  {}\n",
                    t.onnxruntime
                        .get("onnxruntime")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?"),
                    ms(ort("encoder_ms")),
                    ms(ort("decoder_step_ms"))
                );
                out += &format!("  onnxruntime int8       {}\n", ms(ort("encoder_int8_ms")));
                out += &format!(
                    "  tract / onnxruntime: encoder fp32 {}, int8 {}; decoder step {}\n",
                    ratio(Some(t.tract_fp32_encoder_ms), ort("encoder_ms")),
                    ratio(t.tract_int8_encoder_ms, ort("encoder_int8_ms")),
                    ratio(Some(t.tract_fp32_step_ms), ort("decoder_step_ms"))
                );
            }
        }
        out += &format!(
            "  tract int8 / fp32 encoder {}\n",
            ratio(t.tract_int8_encoder_ms, Some(t.tract_fp32_encoder_ms))
        );
    }
    out
}
