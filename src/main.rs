//! `cxr-edge`: the device binary. Each subcommand lives in `src/cli/`: its clap
//! arguments are plain data, resolved once into a checked config before anything
//! runs, so the library never sees clap types.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Counts heap bytes so `bench` can report the peak memory of one study
/// (feature `heap-stats`; not in the binary a unit runs).
#[cfg(feature = "heap-stats")]
#[global_allocator]
static ALLOCATOR: cli::alloc::Counting = cli::alloc::Counting;

#[derive(Parser)]
#[command(
    name = "cxr-edge",
    version,
    about = "Offline chest X-ray report generation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report on radiograph files (PNG, JPEG, DICOM): impression and flagged findings.
    Report(cli::report::Args),
    /// Verify a model bundle and describe it.
    Info(cli::info::InfoArgs),
    /// Compile an ONNX graph to NNEF ahead of time, so the board needs no ONNX parser.
    Compile(cli::info::CompileArgs),
    /// Per-stage latency and peak memory per study, at several thread counts.
    Bench(cli::bench::Args),
    /// Model artefacts side by side: sizes, ONNX vs NNEF load time, tract vs onnxruntime latency.
    BenchModel(cli::bench_model::Args),
    /// Compare the bundle's int8 and fp32 artefacts on labelled radiographs.
    Precision(cli::precision::Args),
    /// Run the unit: DICOM receiver, watched folder, crash-safe outbox, display.
    Serve(cli::serve::Args),
    /// What waits to be forwarded to each DICOM peer: waiting, parked, last error.
    Status(cli::status::Args),
    /// Fit and measure the bundle's pixel-based frontal-chest check.
    ViewCheck(cli::view_check::Args),
    /// Measure whether impressions state exactly the flagged findings; choose hedging bands.
    Consistency(cli::consistency::Args),
    /// Score the findings on the held-out films: AUROC with intervals, calibration, operating point.
    FindingsEval(cli::findings_eval::Args),
}

/// Commands that print to a terminal or a pipe end quietly when the reader goes
/// away (`cxr-edge info | head`), as Unix tools do, instead of panicking on the
/// failed write. `serve` keeps Rust's default (SIGPIPE ignored): a peer closing
/// its socket must be an error there, never the end of the unit.
fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called once at start-up, before any thread exists; SIG_DFL installs
    // no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        restore_sigpipe();
    }
    match cli.command {
        Command::Report(args) => cli::report::run(args),
        Command::Info(args) => cli::info::info(args),
        Command::Compile(args) => cli::info::compile(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::BenchModel(args) => cli::bench_model::run(args),
        Command::Precision(args) => cli::precision::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::ViewCheck(args) => cli::view_check::run(args),
        Command::Consistency(args) => cli::consistency::run(args),
        Command::FindingsEval(args) => cli::findings_eval::run(args),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::chain(&e));
            ExitCode::FAILURE
        }
    }
}
