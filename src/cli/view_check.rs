//! `cxr-edge view-check`: fit the bundle's pixel-based frontal-chest check and
//! measure it, in one command a user with the real data can rerun.
//!
//! Films, all split by patient once (SHA-256 of the patient key, as the trainer):
//! - NIH frontal films the model was trained on (its train split) fit the
//!   statistics ([`cxr_edge::view_check::fit`]);
//! - the model's validation films (never trained on) are halved by patient: one
//!   half chooses the threshold (`--max-frontal-refusal` of them refused), the
//!   other is the frontal test set;
//! - the not-frontal films are halved by `patient_group`: a validation half and a
//!   test half, measured only (a one-class check does not fit on them);
//! - optional extra folders (e.g. photographs) and generated blank, uniform,
//!   noise and pattern images are measured too.
//!
//! Each film is measured twice: by the view check alone (header checks forced
//! past), and by the whole device path (`decode` checks, then the view check).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cxr_edge::input::{self, InputError, Radiograph, ValidateOptions};
use cxr_edge::nih::Holdout;
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::view_check::fit::{quantile, Gaussian};
use cxr_edge::view_check::ViewCheck;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub held_out: super::HeldOut,
    /// Not-frontal-chest layout (`labels.csv` with image_file, kind, patient_group).
    #[arg(long)]
    pub not_frontal: PathBuf,
    /// More folders of images that must be refused; the folder name is the kind.
    #[arg(long)]
    pub extra: Vec<PathBuf>,
    /// Share of validation frontal films the threshold may refuse.
    #[arg(long, default_value_t = 0.01)]
    pub max_frontal_refusal: f64,
    /// Write the fitted check into the bundle (else measure only).
    #[arg(long)]
    pub write: bool,
    /// Write the evaluation (rates with 95 % intervals) here as JSON.
    #[arg(long)]
    pub eval_out: Option<PathBuf>,
    /// Write every film's encoder features here (JSON lines), for analysis.
    #[arg(long, hide = true)]
    pub dump: Option<PathBuf>,
}

/// One film to measure.
struct Film {
    path: PathBuf,
    kind: String,
    group: Group,
}

/// The training split fits; validation chooses; test is scored once.
type Group = Holdout;

/// What happened to one film.
struct Measured {
    kind: String,
    group: Group,
    frontal: bool,
    /// Distance under the view check alone (None: the image could not be decoded).
    distance: Option<f64>,
    /// Refusal (or error) code of the decode checks on the device path (None:
    /// decoded; the view check comes next).
    decode_refusal: Option<String>,
}

impl Measured {
    fn refused_by_view(&self, threshold: f64) -> bool {
        self.distance.is_none_or(|d| d > threshold)
    }

    /// What the device does: the decode checks' refusal, else the view check's.
    fn device_refusal(&self, threshold: f64) -> Option<String> {
        match &self.decode_refusal {
            Some(r) => Some(r.clone()),
            None if self.refused_by_view(threshold) => Some("unlike-frontal-chest".into()),
            None => None,
        }
    }
}

fn frontal_films(args: &Args) -> anyhow::Result<Vec<Film>> {
    let images = cxr_edge::nih::read_labels(&args.held_out.nih)?;
    Ok(images
        .into_iter()
        .map(|i| Film {
            group: Holdout::of_patient(&i.patient, args.held_out.val_percent),
            path: i.path,
            kind: "frontal_chest".into(),
        })
        .collect())
}

fn not_frontal_films(args: &Args) -> anyhow::Result<Vec<Film>> {
    let path = args.not_frontal.join("labels.csv");
    let mut rdr =
        csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column `{name}`", path.display()))
    };
    let (file, kind, group) = (col("image_file")?, col("kind")?, col("patient_group")?);
    let mut films = Vec::new();
    for row in rdr.records() {
        let row = row.with_context(|| format!("reading {}", path.display()))?;
        films.push(Film {
            path: args.not_frontal.join(&row[file]),
            kind: row[kind].to_string(),
            group: Holdout::of_group(&row[group]),
        });
    }
    for dir in &args.extra {
        let kind = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "extra".into());
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        films.extend(entries.into_iter().map(|path| Film {
            group: Holdout::of_group(&path.display().to_string()),
            path,
            kind: kind.clone(),
        }));
    }
    Ok(films)
}

/// Blank, uniform, noise and pattern images, written as PNGs into `dir`.
fn synthetic_films(dir: &Path) -> anyhow::Result<Vec<Film>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let size = 512u32;
    let mut made: Vec<(String, image::GrayImage)> = vec![
        ("black".into(), image::GrayImage::new(size, size)),
        (
            "white".into(),
            image::GrayImage::from_pixel(size, size, image::Luma([255])),
        ),
        (
            "grey".into(),
            image::GrayImage::from_pixel(size, size, image::Luma([128])),
        ),
    ];
    made.push((
        "gradient".into(),
        image::GrayImage::from_fn(size, size, |x, y| image::Luma([((x + y) / 4) as u8])),
    ));
    made.push((
        "checkerboard".into(),
        image::GrayImage::from_fn(size, size, |x, y| {
            image::Luma([if (x / 32 + y / 32) % 2 == 0 { 30 } else { 220 }])
        }),
    ));
    for i in 0..5 {
        let noise = image::GrayImage::from_fn(size, size, |_, _| image::Luma([rng.gen()]));
        made.push((format!("noise-{i}"), noise));
    }
    let mut films = Vec::new();
    for (name, img) in made {
        let path = dir.join(format!("{name}.png"));
        img.save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        films.push(Film {
            path,
            kind: "synthetic".into(),
            group: Group::Test,
        });
    }
    Ok(films)
}

/// Decode a film the way `report` does; `force` skips the refusals.
fn decode(path: &Path, force: bool) -> Result<Radiograph, InputError> {
    let opts = ValidateOptions {
        force,
        ..ValidateOptions::default()
    };
    input::decode_file(path, &opts)
}

fn features(reporter: &Reporter, path: &Path) -> Option<Vec<f32>> {
    let radiograph = decode(path, true).ok()?;
    let encoded = reporter.encode(&radiograph).ok()?;
    Some(cxr_edge::view_check::features(
        &encoded,
        reporter.model().grid_side(),
    ))
}

fn measure(reporter: &Reporter, check: &Gaussian, films: &[Film]) -> Vec<Measured> {
    films
        .iter()
        .map(|film| {
            let distance = features(reporter, &film.path).map(|f| check.distance(&f));
            let decode_refusal = match decode(&film.path, false) {
                Err(InputError::NotChestFilm { refusal, .. }) => Some(refusal.code().to_string()),
                Err(e) => Some(format!("error: {}", e.code())),
                Ok(_) => None,
            };
            Measured {
                kind: film.kind.clone(),
                group: film.group,
                frontal: film.kind == "frontal_chest",
                distance,
                decode_refusal,
            }
        })
        .collect()
}

fn dump(reporter: &Reporter, films: &[Film], path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for film in films {
        let Ok(r) = decode(&film.path, true) else {
            continue;
        };
        let Ok(e) = reporter.encode(&r) else { continue };
        let decode_refusal = decode(&film.path, false)
            .err()
            .map(|e| e.code().to_string());
        let line = serde_json::json!({"path": film.path, "kind": film.kind, "group": film.group,
            "decode_refusal": decode_refusal, "pooled": e.pooled, "grid": e.grid, "findings": e.findings});
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A refusal rate with its Wilson 95 % interval.
#[derive(Debug, Serialize)]
struct Rate {
    refused: usize,
    of: usize,
    rate: f64,
    ci95: (f64, f64),
}

impl Rate {
    fn new(refused: usize, of: usize) -> Rate {
        let (n, p) = (of as f64, refused as f64 / of.max(1) as f64);
        let z = 1.959964f64;
        let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
        let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
        Rate {
            refused,
            of,
            rate: p,
            ci95: ((centre - half).max(0.0), (centre + half).min(1.0)),
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    kind: String,
    group: Group,
    /// The view check alone (header and pixel checks forced past).
    view_check: Rate,
    /// The whole device path: decode checks, then the view check.
    device: Rate,
    /// Device refusals by code.
    reasons: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
struct Evaluation {
    model_id: String,
    threshold: f64,
    max_frontal_refusal: f64,
    shrinkage: f64,
    fit_films: usize,
    rows: Vec<Row>,
    /// All not-frontal kinds together, per group.
    not_frontal: Vec<Row>,
}

fn rows(measured: &[Measured], threshold: f64, by_kind: bool) -> Vec<Row> {
    let mut groups: BTreeMap<(String, Group), Vec<&Measured>> = BTreeMap::new();
    for m in measured.iter().filter(|m| by_kind || !m.frontal) {
        let kind = if by_kind {
            m.kind.clone()
        } else {
            "all not frontal".into()
        };
        groups.entry((kind, m.group)).or_default().push(m);
    }
    groups
        .into_iter()
        .map(|((kind, group), ms)| {
            let view = ms.iter().filter(|m| m.refused_by_view(threshold)).count();
            let mut reasons = BTreeMap::new();
            for r in ms.iter().filter_map(|m| m.device_refusal(threshold)) {
                *reasons.entry(r).or_insert(0) += 1;
            }
            let device = reasons.values().sum();
            Row {
                kind,
                group,
                view_check: Rate::new(view, ms.len()),
                device: Rate::new(device, ms.len()),
                reasons,
            }
        })
        .collect()
}

fn print_table(eval: &Evaluation) {
    println!(
        "view check of {}: threshold {:.3} (≤ {:.1} % of validation frontal films refused), shrinkage {:.3}, fitted on {} films",
        eval.model_id,
        eval.threshold,
        eval.max_frontal_refusal * 100.0,
        eval.shrinkage,
        eval.fit_films
    );
    println!(
        "{:<22} {:<10} {:>6} {:>26} {:>26}",
        "kind", "group", "films", "view check refused", "device refused"
    );
    for r in eval.rows.iter().chain(&eval.not_frontal) {
        let fmt = |x: &Rate| {
            format!(
                "{:5.1} % [{:4.1}, {:5.1}]",
                x.rate * 100.0,
                x.ci95.0 * 100.0,
                x.ci95.1 * 100.0
            )
        };
        println!(
            "{:<22} {:<10} {:>6} {:>26} {:>26}",
            r.kind,
            format!("{:?}", r.group).to_lowercase(),
            r.view_check.of,
            fmt(&r.view_check),
            fmt(&r.device)
        );
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..0.5).contains(&args.max_frontal_refusal) {
        bail!("--max-frontal-refusal must be in [0, 0.5)");
    }
    let bundle = super::resolve_bundle(args.held_out.model.as_deref())?;
    let reporter = Reporter::open(&bundle, &ReporterOptions::default())
        .with_context(|| format!("cannot load the model bundle {}", bundle.display()))?;
    let frontal = frontal_films(&args)?;
    if let Some(path) = &args.dump {
        let scratch = tempfile::tempdir()?;
        let mut all = frontal_films(&args)?;
        all.extend(not_frontal_films(&args)?);
        all.extend(synthetic_films(scratch.path())?);
        return dump(&reporter, &all, path);
    }
    let scratch = tempfile::tempdir()?;
    let mut others = not_frontal_films(&args)?;
    others.extend(synthetic_films(scratch.path())?);

    let fit_rows: Vec<Vec<f32>> = frontal
        .iter()
        .filter(|f| f.group == Group::Train)
        .filter_map(|f| features(&reporter, &f.path))
        .collect();
    let gaussian = Gaussian::fit(&fit_rows).context("fitting the view check")?;
    let held_out: Vec<Film> = frontal
        .into_iter()
        .filter(|f| f.group != Group::Train)
        .collect();
    let mut measured = measure(&reporter, &gaussian, &held_out);
    let val: Vec<f64> = measured
        .iter()
        .filter(|m| m.group == Group::Validation)
        .filter_map(|m| m.distance)
        .collect();
    if val.is_empty() {
        bail!("no validation frontal films: check --nih and --val-percent");
    }
    let threshold = quantile(&val, 1.0 - args.max_frontal_refusal);
    measured.extend(measure(&reporter, &gaussian, &others));

    let eval = Evaluation {
        model_id: reporter.model_id().to_string(),
        threshold,
        max_frontal_refusal: args.max_frontal_refusal,
        shrinkage: gaussian.shrinkage,
        fit_films: fit_rows.len(),
        rows: rows(&measured, threshold, true),
        not_frontal: rows(&measured, threshold, false),
    };
    print_table(&eval);
    if let Some(path) = &args.eval_out {
        std::fs::write(path, serde_json::to_vec_pretty(&eval)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.write {
        let provenance = serde_json::json!({
            "fitted_on": format!("{} NIH frontal films of the model's training split ({})", fit_rows.len(), args.held_out.nih.display()),
            "threshold": format!("{:.1} % quantile of the distances of half the model's validation films (split by patient)", (1.0 - args.max_frontal_refusal) * 100.0),
            "shrinkage": gaussian.shrinkage,
            "created_by": format!("cxr-edge {} view-check", env!("CARGO_PKG_VERSION")),
        });
        let check: ViewCheck = gaussian.into_check(threshold as f32, provenance);
        cxr_edge::bundle::attach_view_check(&bundle, &check)?;
        println!(
            "wrote {}",
            bundle.join(cxr_edge::view_check::FILE).display()
        );
    }
    Ok(())
}
