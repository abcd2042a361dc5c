//! Plain-files mode: reports written next to each other in a user's directory
//! (`report --out DIR`, the watched folder's output), each file atomically.
//!
//! There is no inbox here: the input already is a file the user keeps. Files are
//! named `<stem>.<output name>` (`chest.report.json`, `chest.fhir.json`, …), and
//! each one is either absent or complete; the JSON report is published last
//! ([`fsutil::write_atomic_set`]) so its presence means the set is complete.

use std::path::{Path, PathBuf};

use super::{fsutil, key, StoreError, REPORT_JSON};
use crate::output::Output;
use crate::Report;

/// A directory receiving reports as plain files.
#[derive(Debug, Clone)]
pub struct OutDir {
    dir: PathBuf,
}

impl OutDir {
    /// Create `dir` if needed and remove temporaries left by an interrupted run.
    pub fn open(dir: impl AsRef<Path>) -> Result<OutDir, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::ensure_dir(&dir)?;
        fsutil::remove_leftovers(&dir)?;
        Ok(OutDir { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path the JSON report of `stem` is (or would be) written to.
    pub fn report_path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{}.{REPORT_JSON}", safe_stem(stem)))
    }

    /// Write `outputs` then `<stem>.report.json`; returns the paths written, the
    /// JSON report last. `stem` is usually the input's file stem; characters
    /// other than ASCII letters, digits, `.`, `_` and `-` become `_` (see
    /// [`safe_stem`]), so any input name works and none can leave the directory.
    pub fn write(
        &self,
        stem: &str,
        report: &Report,
        outputs: &[Output],
    ) -> Result<Vec<PathBuf>, StoreError> {
        let stem = safe_stem(stem);
        key::check_output_name(&stem)?;
        let json = crate::output::json::to_json(report).map_err(|source| StoreError::Render {
            key: stem.to_string(),
            source,
        })?;
        let mut set: Vec<(PathBuf, &[u8])> = Vec::with_capacity(outputs.len() + 1);
        for o in outputs {
            key::check_output_name(&o.name)?;
            set.push((self.dir.join(format!("{stem}.{}", o.name)), &o.bytes));
        }
        set.push((self.report_path(&stem), &json));
        fsutil::write_atomic_set(&self.dir, &set)?;
        let written = set.into_iter().map(|(p, _)| p).collect();
        Ok(written)
    }
}

/// `stem` made into a plain, visible file-name stem of at most 64 bytes: other
/// characters become `_` and leading dots are dropped. An empty result (e.g.
/// from `""` or `"..."`) is refused by the caller.
pub fn safe_stem(stem: &str) -> String {
    let mapped: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    mapped.trim_start_matches('.').chars().take(64).collect()
}
