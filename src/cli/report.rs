//! `report <files…>`: one report per radiograph, printed (text or JSON Lines),
//! optionally written to a folder and drawn as the device screen.
//!
//! A file that cannot be read or is refused does not stop the others: its error
//! is printed naming it, and the command exits non-zero once all are done.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use cxr_edge::input::{self, ValidateOptions};
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::screen::{self, Screen, Status};
use cxr_edge::store::OutDir;
use cxr_edge::{output, Report};

/// The command line as given.
#[derive(clap::Args)]
pub struct Args {
    /// Radiographs: PNG, JPEG (8 or 16 bit) or DICOM files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Bundle folder; default: $CXR_MODEL, else the bundle under `models/`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print each report as one line of JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Beam width (1 = greedy).
    #[arg(long, default_value_t = ReporterOptions::default().beam)]
    pub beam: usize,
    /// Draw the device screen of the result into this PNG (`-2`, `-3`… are added
    /// before the extension when several files are given; a result of several
    /// pages also writes `-page2`, `-page3`… beside it).
    #[arg(long, value_name = "PNG")]
    pub screen: Option<PathBuf>,
    /// Also write `<file name>.report.json`, FHIR and (for DICOM) SR files here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Report even on films that do not look like frontal chest radiographs.
    #[arg(long)]
    pub force: bool,
    /// Threads for the model.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Run this artefact (fp32, int8 or f16) instead of the one the bundle names for
    /// this CPU.
    #[arg(long)]
    pub precision: Option<cxr_edge::bundle::Precision>,
}

/// The checked configuration the command runs with.
struct Config {
    files: Vec<PathBuf>,
    bundle: PathBuf,
    json: bool,
    reporter: ReporterOptions,
    validate: ValidateOptions,
    screens: Vec<Option<PathBuf>>,
    out: Option<PathBuf>,
}

impl Config {
    fn resolve(args: Args) -> anyhow::Result<Config> {
        if args.beam == 0 || args.beam > cxr_edge::decode::MAX_BEAM {
            bail!(
                "--beam {} is outside 1..={}",
                args.beam,
                cxr_edge::decode::MAX_BEAM
            );
        }
        if args.threads == 0 {
            bail!("--threads must be at least 1");
        }
        let bundle = super::resolve_bundle(args.model.as_deref())?;
        let screens = match &args.screen {
            None => vec![None; args.files.len()],
            Some(p) if args.files.len() == 1 => vec![Some(p.clone())],
            Some(p) => (1..=args.files.len())
                .map(|i| Some(numbered(p, i)))
                .collect(),
        };
        Ok(Config {
            bundle,
            json: args.json,
            reporter: ReporterOptions {
                beam: args.beam,
                threads: args.threads,
                precision: args.precision,
                force: args.force,
                ..ReporterOptions::default()
            },
            validate: ValidateOptions {
                force: args.force,
                ..ValidateOptions::default()
            },
            screens,
            out: args.out,
            files: args.files,
        })
    }
}

/// `out.png` → `out-2.png` for the second file (the first keeps its name).
fn numbered(path: &Path, i: usize) -> PathBuf {
    if i == 1 {
        return path.to_path_buf();
    }
    suffixed(path, &i.to_string())
}

/// `out.png` → `out-<tag>.png`.
fn suffixed(path: &Path, tag: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{tag}"),
    };
    path.with_file_name(name)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::resolve(args)?;
    let reporter = Reporter::open(&config.bundle, &config.reporter)
        .with_context(|| format!("cannot load the model bundle {}", config.bundle.display()))?;
    let out = match &config.out {
        Some(dir) => Some(OutDir::open(dir)?),
        None => None,
    };
    let mut failed = 0;
    for (file, screen) in config.files.iter().zip(&config.screens) {
        if let Err(e) = one(&reporter, &config, file, screen.as_deref(), out.as_ref()) {
            eprintln!("error: {}", super::chain(&e));
            failed += 1;
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} inputs could not be reported",
            config.files.len()
        );
    }
    Ok(())
}

fn one(
    reporter: &Reporter,
    config: &Config,
    file: &Path,
    screen_png: Option<&Path>,
    out: Option<&OutDir>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let radiograph = input::decode_file(file, &config.validate)?;
    let decode_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut report = reporter.report(&radiograph)?;
    report.timings.decode_image_ms = decode_ms;
    report.timings.total_ms += decode_ms;
    if let Some(dir) = out {
        // The whole file name, so `x.png` and `x.dcm` do not overwrite each
        // other's reports.
        let stem = file
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report".into());
        let extra = output::render_extra(&report, None)?;
        dir.write(&stem, &report, &extra)?;
    }
    if let Some(png) = screen_png {
        let status = Status::new(reporter.model_id(), 0);
        let shown = Screen::result(&report, Some(&radiograph.image), status);
        for page in 0..screen::page_count(&shown) {
            let path = match page {
                0 => png.to_path_buf(),
                k => suffixed(png, &format!("page{}", k + 1)),
            };
            screen::render_png(&shown.clone().with_page(page), &path)?;
        }
    }
    if config.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

/// The human-readable form: the input, the impression, the flagged findings.
pub fn text(report: &Report) -> String {
    let flagged: Vec<String> = report
        .flagged()
        .iter()
        .map(|f| {
            format!(
                "{} {:.2} (threshold {:.2})",
                f.observation, f.score, f.threshold
            )
        })
        .collect();
    let flagged = if flagged.is_empty() {
        "none above threshold".to_string()
    } else {
        flagged.join("; ")
    };
    format!(
        "{}\n  impression: {}\n  flagged:    {}\n  model:      {} ({:.0} ms)\n",
        report.study.source,
        if report.impression.is_empty() {
            "(empty)"
        } else {
            &report.impression
        },
        flagged,
        report.model_id,
        report.timings.total_ms
    )
}
