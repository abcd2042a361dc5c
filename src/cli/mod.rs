//! The device binary's subcommands and what they share: finding the default
//! bundle and the sample radiographs.

pub mod alloc;
pub mod bench;
pub mod bench_model;
pub mod consistency;
pub mod findings_eval;
pub mod info;
pub mod precision;
pub mod report;
pub mod serve;
pub mod spread;
pub mod status;
pub mod view_check;

use std::path::{Path, PathBuf};

/// A bundle and the NIH films its trainer held out (by patient), for the
/// commands that choose on the validation half and score the test half
/// (`view-check`, `consistency`; see [`cxr_edge::nih::Holdout`]).
#[derive(clap::Args)]
pub struct HeldOut {
    /// Bundle folder; default as for `report`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// NIH ChestX-ray14 layout (`labels.csv` + images): frontal films.
    #[arg(long)]
    pub nih: PathBuf,
    /// The trainer's validation percentage (which NIH patients it never trained on).
    #[arg(long, default_value_t = cxr_edge::nih::HELD_OUT_PERCENT)]
    pub val_percent: u8,
}

use anyhow::bail;

/// An error with its causes, like anyhow's `{:#}`, but each text once: many
/// library errors already quote their source in their own message
/// (`"{path}: {source}"`), which `{:#}` would print twice.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The cargo profile this binary was built with (`build.rs`).
pub const BUILD_PROFILE: &str = env!("CXR_BUILD_PROFILE");

/// One line for benchmark output: which build is being measured. Only `board`
/// optimises tract's core; `release` and `debug` trade its speed for build time.
pub fn build_note() -> String {
    match BUILD_PROFILE {
        "board" => "build: board profile (fully optimised)".into(),
        p => format!(
            "build: {p} profile (tract-core unoptimised, model time ~2.5x the board build's; \
             device figures need `--profile board`)"
        ),
    }
}

/// Median of measurements (mean of the middle two for an even count; 0 for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Environment variable naming the bundle to use when `--model` is not given.
pub const MODEL_ENV: &str = "CXR_MODEL";

/// Folders named `name` to search, nearest first: beside the executable and in
/// each folder above it (an installed `/opt/cxr-edge/bin` finds `/opt/cxr-edge/models`),
/// then in the source tree this binary was built from (`cargo run` on a fresh clone,
/// whatever `CARGO_TARGET_DIR` is).
pub fn candidates(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        out.extend(exe.ancestors().skip(1).map(|dir| dir.join(name)));
    }
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(name));
    out
}

/// The bundle to load: `--model`, else `$CXR_MODEL`, else the single bundle (or
/// the one named `default`) under the first `models/` folder that holds any,
/// else the Debian package's `<prefix>/share/cxr-edge/model` beside the
/// binary's `<prefix>/bin`.
pub fn resolve_bundle(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let mut searched = candidates("models");
    if let Some(prefix) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
    {
        searched.push(prefix.join("share/cxr-edge/model"));
    }
    for models in &searched {
        if let Some(dir) = pick_bundle(models)? {
            return Ok(dir);
        }
    }
    bail!(
        "no model bundle found: pass --model DIR or set {MODEL_ENV} (searched {})",
        searched
            .iter()
            .filter(|p| p.is_dir())
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The bundle inside a `models/` folder, if it holds any.
fn pick_bundle(models: &Path) -> anyhow::Result<Option<PathBuf>> {
    if models.join(cxr_edge::bundle::MANIFEST).is_file() {
        return Ok(Some(models.to_path_buf()));
    }
    let Ok(entries) = std::fs::read_dir(models) else {
        return Ok(None);
    };
    let mut bundles: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(cxr_edge::bundle::MANIFEST).is_file())
        .collect();
    bundles.sort();
    match bundles.len() {
        0 => Ok(None),
        1 => Ok(bundles.pop()),
        _ => match bundles.iter().find(|p| p.ends_with("default")) {
            Some(d) => Ok(Some(d.clone())),
            None => bail!(
                "{}: several bundles ({}); choose one with --model or {MODEL_ENV}",
                models.display(),
                bundles
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// The sample radiographs shipped in `samples/`, sorted.
pub fn sample_files() -> anyhow::Result<Vec<PathBuf>> {
    for dir in candidates("samples") {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(
                        e.to_ascii_lowercase().as_str(),
                        "png" | "jpg" | "jpeg" | "dcm"
                    )
                })
            })
            .collect();
        if !files.is_empty() {
            files.sort();
            return Ok(files);
        }
    }
    bail!("no radiographs given and no samples/ folder found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(cxr_edge::bundle::MANIFEST), "{}").unwrap();
    }

    #[test]
    fn models_folder_yields_its_single_or_default_bundle() {
        let t = tempfile::tempdir().unwrap();
        let models = t.path().join("models");
        assert_eq!(pick_bundle(&models).unwrap(), None);
        std::fs::create_dir(&models).unwrap();
        std::fs::create_dir(models.join("not-a-bundle")).unwrap();
        assert_eq!(pick_bundle(&models).unwrap(), None);
        bundle(&models.join("cxr-a"));
        assert_eq!(pick_bundle(&models).unwrap(), Some(models.join("cxr-a")));
        bundle(&models.join("cxr-b"));
        let e = pick_bundle(&models).unwrap_err().to_string();
        assert!(e.contains("cxr-a, cxr-b") && e.contains("--model"), "{e}");
        bundle(&models.join("default"));
        assert_eq!(pick_bundle(&models).unwrap(), Some(models.join("default")));
        bundle(&models);
        assert_eq!(pick_bundle(&models).unwrap(), Some(models.clone()));
    }

    #[test]
    fn explicit_model_wins() {
        let p = Path::new("/some/bundle");
        assert_eq!(resolve_bundle(Some(p)).unwrap(), p);
    }

    #[test]
    fn chain_prints_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(io)
            .context("x.png: gone")
            .context("loading");
        assert_eq!(chain(&e), "loading: x.png: gone");
    }
}
