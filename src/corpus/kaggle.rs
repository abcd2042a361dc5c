//! The Kaggle repackaging of the collection ("Chest X-rays (Indiana University)"):
//! `indiana_reports.csv` (`uid,MeSH,Problems,image,indication,comparison,findings,
//! impression`, MeSH major terms joined by `;`) and `indiana_projections.csv`
//! (`uid,filename,projection`, one row per image, files named `<n>_IM-….dcm.png`
//! under `images/images_normalized/`). Image ids are mapped back to the XML form by
//! prefixing `CXR` and dropping the file extensions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{clean_section, CorpusError, ImageRef, Loaded, Skipped, Study};

pub(super) const REPORTS: &str = "indiana_reports.csv";
pub(super) const PROJECTIONS: &str = "indiana_projections.csv";

const REPORT_COLUMNS: [&str; 6] = [
    "uid",
    "MeSH",
    "indication",
    "comparison",
    "findings",
    "impression",
];
const PROJECTION_COLUMNS: [&str; 2] = ["uid", "filename"];

/// Read the reports CSV at `reports` and its projections CSV beside it.
pub(super) fn load(reports: &Path) -> Result<Loaded, CorpusError> {
    let dir = reports.parent().unwrap_or(Path::new("."));
    let projections = dir.join(PROJECTIONS);
    if !projections.is_file() {
        return Err(CorpusError::Csv {
            path: reports.to_path_buf(),
            message: format!("expected {PROJECTIONS} beside it (the Kaggle pair)"),
        });
    }
    let images_dir = dir.join("images").join("images_normalized");
    let mut skipped = Vec::new();
    let images = read_projections(&projections, &images_dir, &mut skipped)?;

    let mut reader = open(reports)?;
    let col = columns(&mut reader, reports, &REPORT_COLUMNS)?;
    let mut studies = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let source = format!("{}:{line}", reports.display());
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                skipped.push(Skipped {
                    source,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let field = |name: &str| record.get(col[name]).unwrap_or("");
        let Some(uid) = to_uid(field("uid")) else {
            skipped.push(Skipped {
                source,
                reason: format!("bad uid {:?}", field("uid")),
            });
            continue;
        };
        let mut study = Study::new(uid.clone());
        study.indication = clean_section(Some(field("indication")));
        study.comparison = clean_section(Some(field("comparison")));
        study.findings = clean_section(Some(field("findings")));
        study.impression = clean_section(Some(field("impression")));
        study.mesh_major = field("MeSH")
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        study.images = images.get(&uid).cloned().unwrap_or_default();
        studies.push((source, Ok(study)));
    }
    let (studies, mut dup) = super::collect(studies);
    skipped.append(&mut dup);
    Ok((studies, skipped))
}

fn read_projections(
    path: &Path,
    images_dir: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<HashMap<String, Vec<ImageRef>>, CorpusError> {
    let mut reader = open(path)?;
    let col = columns(&mut reader, path, &PROJECTION_COLUMNS)?;
    let mut images: HashMap<String, Vec<ImageRef>> = HashMap::new();
    for (row, record) in reader.records().enumerate() {
        let source = format!("{}:{}", path.display(), row + 2);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                skipped.push(Skipped {
                    source,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let (Some(uid), Some(filename)) = (
            to_uid(record.get(col["uid"]).unwrap_or("")),
            record
                .get(col["filename"])
                .map(str::trim)
                .filter(|f| !f.is_empty()),
        ) else {
            skipped.push(Skipped {
                source,
                reason: "missing uid or filename".into(),
            });
            continue;
        };
        let file = images_dir.join(filename);
        let path: Option<PathBuf> = file.is_file().then_some(file);
        images.entry(uid).or_default().push(ImageRef {
            id: image_id(filename),
            path,
        });
    }
    Ok(images)
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>, CorpusError> {
    csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| CorpusError::Csv {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Column index by name; an unexpected header is an error rather than a silently
/// empty collection.
fn columns<'a>(
    reader: &mut csv::Reader<std::fs::File>,
    path: &Path,
    required: &[&'a str],
) -> Result<HashMap<&'a str, usize>, CorpusError> {
    let header = reader.headers().map_err(|e| CorpusError::Csv {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut col = HashMap::new();
    for &name in required {
        match header.iter().position(|h| h.trim() == name) {
            Some(i) => {
                col.insert(name, i);
            }
            None => {
                return Err(CorpusError::UnknownHeader {
                    path: path.to_path_buf(),
                    found: header.iter().collect::<Vec<_>>().join(","),
                    expected: required.join(","),
                })
            }
        }
    }
    Ok(col)
}

fn to_uid(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.strip_prefix("CXR").unwrap_or(raw);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("CXR{digits}"))
}

/// `1_IM-0001-4001.dcm.png` → `CXR1_IM-0001-4001`.
fn image_id(filename: &str) -> String {
    let stem = filename
        .strip_suffix(".png")
        .unwrap_or(filename)
        .trim_end_matches(".dcm");
    if stem.starts_with("CXR") {
        stem.to_string()
    } else {
        format!("CXR{stem}")
    }
}
