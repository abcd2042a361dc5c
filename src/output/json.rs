//! The JSON report: the [`Report`] as serde writes it, pretty-printed, with a
//! trailing newline so that it reads well with `cat`.

use super::OutputError;
use crate::Report;

/// Pretty JSON of `report`.
pub fn to_json(report: &Report) -> Result<Vec<u8>, OutputError> {
    let mut bytes = serde_json::to_vec_pretty(report).map_err(|source| OutputError::Json {
        format: "JSON report",
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Parse a JSON report back (used by the sync side and the tests).
pub fn from_json(bytes: &[u8]) -> Result<Report, OutputError> {
    serde_json::from_slice(bytes).map_err(|source| OutputError::Json {
        format: "JSON report",
        source,
    })
}
