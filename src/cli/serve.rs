//! `serve --config <file>`: the unit's service. DICOM receiver, watched folder,
//! crash-safe outbox, display; logs through `tracing` (`RUST_LOG` filters them).
//! It runs until killed: every state worth keeping is in the store, so a SIGTERM,
//! a `kill -9` or a power cut are all the same to it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::serve::{ServeConfig, Server};

/// The command line as given.
#[derive(clap::Args)]
pub struct Args {
    /// The unit's TOML configuration (see `cxr_edge::serve::ServeConfig`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = ServeConfig::load(&args.config)?;
    match cxr_edge::scp::raise_fd_limit(cxr_edge::scp::WANTED_OPEN_FILES) {
        Ok(open_files) => tracing::info!(open_files, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
    let bundle = super::resolve_bundle(config.model.as_deref())?;
    let reporter = Reporter::open(
        &bundle,
        &ReporterOptions {
            threads: config.threads,
            precision: config.precision,
            force: config.force,
            thresholds: config.thresholds.clone(),
            ..ReporterOptions::default()
        },
    )
    .with_context(|| format!("loading the model bundle {}", bundle.display()))?;
    let sink = config.display.open().context("opening the display")?;
    let mut server = Server::start(&config, reporter, sink)?;
    if let Some(buttons) = config.buttons.open().context("opening the buttons")? {
        server.set_buttons(buttons);
    }
    if let Some(addr) = server.dicom_addr() {
        tracing::info!(%addr, "serving DICOM");
    }
    server.run(&AtomicBool::new(false));
    Ok(())
}
