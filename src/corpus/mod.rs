//! The Indiana University chest X-ray report collection (Open-i), read from any of
//! the layouts it is distributed in:
//!
//! - a folder of `ecgen-radiology/*.xml` reports,
//! - the same folder packed as a `.tgz` (`NLMCXR_reports.tgz`), streamed without
//!   unpacking,
//! - the Kaggle pair `indiana_reports.csv` + `indiana_projections.csv`.
//!
//! [`load`] detects the layout and returns typed [`Study`] records. One bad report
//! never sinks the collection: it is listed in [`Collection::skipped`] with its name
//! and the problem, and the rest loads. A path with no readable report at all is an
//! error. Studies come back sorted by uid so every layout yields the same order.
//!
//! Image files are optional (they are not distributed with the reports): when
//! `NLMCXR_png/<image id>.png` sits beside the reports folder or archive (or the
//! Kaggle `images/images_normalized/` folder beside the CSV files), each
//! [`ImageRef::path`] points at it.

mod kaggle;
pub mod pairing;
mod split;
mod stats;
mod xml;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use split::{read_split, split_of, write_split, Split, SplitFile};
pub use stats::{report_text, CorpusStats, SectionGaps, VocabSizes};

/// One report with its images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Study {
    /// `CXR<n>`, as in the XML `uId` (the Kaggle CSV's bare number gets the prefix).
    pub uid: String,
    pub comparison: Option<String>,
    pub indication: Option<String>,
    pub findings: Option<String>,
    pub impression: Option<String>,
    /// Human-coded MeSH terms, e.g. `Cardiomegaly/mild`, `normal`.
    pub mesh_major: Vec<String>,
    /// Automatically extracted MeSH terms (absent from the Kaggle CSV).
    pub mesh_automatic: Vec<String>,
    pub images: Vec<ImageRef>,
}

/// One radiograph of a study.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// `parentImage` id, e.g. `CXR1_1_IM-0001-3001`.
    pub id: String,
    /// The image file, when it exists beside the reports.
    pub path: Option<PathBuf>,
}

impl Study {
    fn new(uid: String) -> Self {
        Self {
            uid,
            comparison: None,
            indication: None,
            findings: None,
            impression: None,
            mesh_major: Vec::new(),
            mesh_automatic: Vec::new(),
            images: Vec::new(),
        }
    }

    /// The number in `CXR<n>`, for numeric ordering.
    pub fn number(&self) -> Option<u64> {
        self.uid
            .strip_prefix("CXR")
            .unwrap_or(&self.uid)
            .parse()
            .ok()
    }
}

/// The layout a collection was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    XmlFolder,
    Tgz,
    KaggleCsv,
}

/// A report (or CSV row) that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// File, archive member (`archive.tgz!member`) or CSV line.
    pub source: String,
    pub reason: String,
}

/// The studies read from one path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Collection {
    pub root: PathBuf,
    pub layout: Layout,
    /// Sorted by uid number.
    pub studies: Vec<Study>,
    pub skipped: Vec<Skipped>,
}

impl Collection {
    /// Total number of image references over all studies.
    pub fn image_count(&self) -> usize {
        self.studies.iter().map(|s| s.images.len()).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no readable reports found{detail}")]
    NoReports { path: PathBuf, detail: String },
    #[error("{path}: unknown CSV header [{found}]; expected columns {expected}")]
    UnknownHeader {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Split { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read a collection, detecting its layout (see the module doc).
pub fn load(path: impl AsRef<Path>) -> Result<Collection, CorpusError> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    let (layout, studies, skipped) = if meta.is_dir() {
        if path.join(kaggle::REPORTS).is_file() {
            let (s, k) = kaggle::load(&path.join(kaggle::REPORTS))?;
            (Layout::KaggleCsv, s, k)
        } else if has_xml(path)? {
            let (s, k) = load_xml_folder(path)?;
            (Layout::XmlFolder, s, k)
        } else if path.join("ecgen-radiology").is_dir() {
            return load(path.join("ecgen-radiology"));
        } else if path.join("NLMCXR_reports.tgz").is_file() {
            return load(path.join("NLMCXR_reports.tgz"));
        } else {
            return Err(no_reports(path, &[]));
        }
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
            let (s, k) = load_tgz(path)?;
            (Layout::Tgz, s, k)
        } else if name.ends_with(".csv") {
            let (s, k) = kaggle::load(path)?;
            (Layout::KaggleCsv, s, k)
        } else {
            let (s, k) = load_xml_files(vec![path.to_path_buf()])?;
            (Layout::XmlFolder, s, k)
        }
    };
    finish(path, layout, studies, skipped)
}

fn has_xml(dir: &Path) -> Result<bool, CorpusError> {
    Ok(!xml_files(dir)?.is_empty())
}

fn xml_files(dir: &Path) -> Result<Vec<PathBuf>, CorpusError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let p = entry.map_err(io_err(dir))?.path();
        if p.is_file() && is_xml_name(&p.to_string_lossy()) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn is_xml_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".xml")
}

type Loaded = (Vec<Study>, Vec<Skipped>);

fn load_xml_folder(dir: &Path) -> Result<Loaded, CorpusError> {
    let (mut studies, skipped) = load_xml_files(xml_files(dir)?)?;
    resolve_png(&mut studies, dir.parent())?;
    Ok((studies, skipped))
}

fn load_xml_files(files: Vec<PathBuf>) -> Result<Loaded, CorpusError> {
    let mut parsed = Vec::with_capacity(files.len());
    for file in files {
        let bytes = std::fs::read(&file).map_err(io_err(&file))?;
        parsed.push((file.display().to_string(), xml::parse(&bytes)));
    }
    Ok(collect(parsed))
}

/// Stream a gzip-compressed tar, parsing each `*.xml` member in memory.
fn load_tgz(archive: &Path) -> Result<Loaded, CorpusError> {
    let file = File::open(archive).map_err(io_err(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut parsed = Vec::new();
    let mut broken = None;
    let entries = tar.entries().map_err(io_err(archive))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                broken = Some(format!(
                    "archive unreadable after {} members: {e}",
                    parsed.len()
                ));
                break;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<unnamed member>".into());
        if !is_xml_name(&member) {
            continue;
        }
        let source = format!("{}!{member}", archive.display());
        let mut bytes = Vec::new();
        match entry.read_to_end(&mut bytes) {
            Ok(_) => parsed.push((source, xml::parse(&bytes))),
            Err(e) => {
                broken = Some(format!("archive truncated inside {member}: {e}"));
                break;
            }
        }
    }
    let (mut studies, mut skipped) = collect(parsed);
    if let Some(reason) = broken {
        skipped.push(Skipped {
            source: archive.display().to_string(),
            reason,
        });
    }
    resolve_png(&mut studies, archive.parent())?;
    Ok((studies, skipped))
}

/// Parsed reports → studies in uid order; failures and duplicate uids → skipped.
/// Sources are visited in name order so the outcome does not depend on directory or
/// archive order.
fn collect(mut parsed: Vec<(String, Result<Study, String>)>) -> Loaded {
    parsed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut studies = Vec::new();
    let mut skipped = Vec::new();
    for (source, result) in parsed {
        match result {
            Ok(study) => {
                if let Some(first) = seen.get(&study.uid) {
                    skipped.push(Skipped {
                        reason: format!("duplicate uid {} (first read from {first})", study.uid),
                        source,
                    });
                } else {
                    seen.insert(study.uid.clone(), source);
                    studies.push(study);
                }
            }
            Err(reason) => skipped.push(Skipped { source, reason }),
        }
    }
    (studies, skipped)
}

/// Point image refs at `NLMCXR_png/<id>.png` beside the reports when it exists.
fn resolve_png(studies: &mut [Study], beside: Option<&Path>) -> Result<(), CorpusError> {
    let Some(dir) = beside.map(|b| b.join("NLMCXR_png")) else {
        return Ok(());
    };
    if !dir.is_dir() {
        return Ok(());
    }
    let mut present = HashSet::new();
    for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
        present.insert(entry.map_err(io_err(&dir))?.file_name());
    }
    for image in studies.iter_mut().flat_map(|s| s.images.iter_mut()) {
        let name = format!("{}.png", image.id);
        if present.contains(std::ffi::OsStr::new(&name)) {
            image.path = Some(dir.join(name));
        }
    }
    Ok(())
}

fn finish(
    path: &Path,
    layout: Layout,
    mut studies: Vec<Study>,
    skipped: Vec<Skipped>,
) -> Result<Collection, CorpusError> {
    if studies.is_empty() {
        return Err(no_reports(path, &skipped));
    }
    studies.sort_by(|a, b| {
        (a.number().unwrap_or(u64::MAX), &a.uid).cmp(&(b.number().unwrap_or(u64::MAX), &b.uid))
    });
    Ok(Collection {
        root: path.to_path_buf(),
        layout,
        studies,
        skipped,
    })
}

fn no_reports(path: &Path, skipped: &[Skipped]) -> CorpusError {
    let detail = match skipped.first() {
        None => String::new(),
        Some(first) => format!(
            " ({} skipped; first: {}: {})",
            skipped.len(),
            first.source,
            first.reason
        ),
    };
    CorpusError::NoReports {
        path: path.to_path_buf(),
        detail,
    }
}

/// Trimmed section text; empty or whitespace-only sections are `None`.
fn clean_section(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}
