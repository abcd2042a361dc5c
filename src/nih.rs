//! The NIH ChestX-ray14 image list: `labels.csv` beside an `images/` folder, one
//! row per radiograph with the project's observations as 0/1 columns (named by
//! [`Observation::nih_column`]) and the patient id. Columns are found by name, so
//! extra or reordered columns are fine. The trainer splits and trains on it; the
//! device's `precision` command scores artefacts against it.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::Observation;

/// One labelled radiograph.
#[derive(Debug, Clone, PartialEq)]
pub struct NihImage {
    /// File stem, e.g. `00001280_004`.
    pub id: String,
    pub path: PathBuf,
    pub patient: String,
    /// Labels in [`Observation::ALL`] order.
    pub labels: [bool; Observation::COUNT],
}

#[derive(Debug, Error)]
pub enum NihError {
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
}

/// Read `<root>/labels.csv`; image paths are resolved against `root`.
pub fn read_labels(root: &Path) -> Result<Vec<NihImage>, NihError> {
    let path = root.join("labels.csv");
    let fail = |message: String| NihError::Csv {
        path: path.clone(),
        message,
    };
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| fail(e.to_string()))?;
    let headers = rdr
        .headers()
        .map_err(|e| fail(format!("cannot read the header: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| fail(format!("no column `{name}`")))
    };
    let file_col = col("image_file")?;
    let patient_col = col("patient_id")?;
    let label_cols = Observation::ALL
        .iter()
        .map(|o| col(o.nih_column()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for (line, row) in rdr.records().enumerate() {
        let row = row.map_err(|e| fail(format!("row {}: {e}", line + 2)))?;
        let file = row.get(file_col).unwrap_or_default().trim();
        if file.is_empty() {
            return Err(fail(format!("row {}: empty image_file", line + 2)));
        }
        let mut labels = [false; Observation::COUNT];
        for (l, &c) in labels.iter_mut().zip(&label_cols) {
            *l = row.get(c).map(str::trim) == Some("1");
        }
        out.push(NihImage {
            id: Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: root.join(file),
            patient: row.get(patient_col).unwrap_or_default().trim().to_string(),
            labels,
        });
    }
    if out.is_empty() {
        return Err(fail("no images listed".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_columns_by_name_and_refuses_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let cols = Observation::ALL.map(|o| o.nih_column()).join(",");
        let csv = format!("patient_id,{cols},image_file\n7,1,0,0,0,0,0,0,0,1,0,images/a_000.png\n");
        std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
        let rows = read_labels(dir.path()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "a_000");
        assert_eq!(rows[0].patient, "7");
        assert_eq!(rows[0].path, dir.path().join("images/a_000.png"));
        assert!(rows[0].labels[0] && rows[0].labels[8] && !rows[0].labels[9]);

        std::fs::write(dir.path().join("labels.csv"), "image_file,patient_id\n").unwrap();
        let e = read_labels(dir.path()).unwrap_err().to_string();
        assert!(e.contains("labels.csv") && e.contains("no column"), "{e}");
    }

    /// The committed split file (`cxr-train data nih-split`) is what the code
    /// computes: a change to the rule would silently move test films into training.
    #[test]
    fn the_committed_split_matches_the_rule() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/nih-split.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut counts = [0usize; 3];
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let want = match Holdout::of_patient(f[1], HELD_OUT_PERCENT) {
                Holdout::Train => "train",
                Holdout::Validation => "validation",
                Holdout::Test => "test",
            };
            assert_eq!(f[2], want, "{line}");
            counts[["train", "validation", "test"]
                .iter()
                .position(|s| *s == want)
                .unwrap()] += 1;
        }
        assert_eq!(counts, [962, 185, 194]);
    }
}

/// Percentage of NIH patients the trainer holds out (half validation, half test):
/// a 70 / 15 / 15 patient-level split.
pub const HELD_OUT_PERCENT: u8 = 30;

/// Where a NIH patient's films go in this project's one patient-level split:
/// the trainer's training split (`val_percent` % of patients are held out, by
/// SHA-256 of `nih-patient-<id>` as the trainer does), and the held-out
/// patients halved, again by patient: a validation half that chooses thresholds
/// and bands (`view-check`, `consistency`) and a test half scored once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holdout {
    Train,
    Validation,
    Test,
}

impl Holdout {
    pub fn of_patient(patient: &str, val_percent: u8) -> Holdout {
        use crate::corpus::{split_of, Split};
        match split_of(&format!("nih-patient-{patient}"), val_percent) {
            Split::Train => Holdout::Train,
            Split::Val => Holdout::of_group(patient),
        }
    }

    /// The validation/test half of any held-out group key (a patient, a
    /// not-frontal `patient_group`).
    pub fn of_group(key: &str) -> Holdout {
        use crate::corpus::{split_of, Split};
        match split_of(&format!("view-check-{key}"), 50) {
            Split::Val => Holdout::Validation,
            Split::Train => Holdout::Test,
        }
    }
}
