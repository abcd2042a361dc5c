//! `cxr-train`: data preparation, training, evaluation, scoring and bundling for
//! cxr-edge models. Each subcommand lives in its own module with an `Args` struct
//! and a `run` function; domain code lives in the root `cxr_edge` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod augment;
mod baseline;
mod cmd_baseline;
mod cmd_bundle;
mod cmd_calibrate;
mod cmd_data;
mod cmd_eval;
mod cmd_labeller;
mod cmd_score;
mod cmd_train;
mod data;
mod embeddings;
mod evaluate;
mod mobilenet;
mod model;
mod plots;
mod tch_runtime;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mobilenet;
mod tflite;
mod train;

#[derive(Parser)]
#[command(
    name = "cxr-train",
    version,
    about = "Train, evaluate and bundle cxr-edge models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a report collection.
    #[command(subcommand)]
    Data(cmd_data::DataCommand),
    /// Evaluate the findings labeller.
    #[command(subcommand)]
    Labeller(cmd_labeller::LabellerCommand),
    /// Score candidate texts against references (BLEU, ROUGE-L, CIDEr-D, clinical F1).
    Score(cmd_score::Args),
    /// Score the retrieval baselines on a validation split.
    Baseline(cmd_baseline::Args),
    /// Train a model (findings-matched NIH+IU pairs, or true IU pairs).
    Train(cmd_train::Args),
    /// Evaluate a trained run on its validation split, next to the baselines.
    Eval(cmd_eval::Args),
    /// Choose a run's flag thresholds and calibration on its validation films.
    Calibrate(cmd_calibrate::Args),
    /// Draw the reliability diagram of a `cxr-edge findings-eval` output.
    PlotReliability(plots::ReliabilityArgs),
    /// Turn a trained run into a verified device bundle (ONNX, NNEF, manifest).
    Bundle(cmd_bundle::Args),
    /// Learn in-domain word embeddings from the report corpus (PPMI + SVD).
    Embeddings(embeddings::Args),
}

fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Data(c) => cmd_data::run(c),
        Command::Labeller(c) => cmd_labeller::run(c),
        Command::Score(a) => cmd_score::run(a),
        Command::Baseline(a) => cmd_baseline::run(a),
        Command::Train(a) => cmd_train::run(a),
        Command::Eval(a) => cmd_eval::run(a),
        Command::Calibrate(a) => cmd_calibrate::run(a),
        Command::PlotReliability(a) => plots::reliability(a),
        Command::Bundle(a) => cmd_bundle::run(a),
        Command::Embeddings(a) => embeddings::run(a),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
