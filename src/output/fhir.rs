//! HL7 FHIR R4 `DiagnosticReport` (work in progress).

use super::OutputError;
use crate::Report;

/// The `DiagnosticReport` as a JSON value.
pub fn diagnostic_report(report: &Report) -> serde_json::Value {
    serde_json::json!({ "resourceType": "DiagnosticReport", "status": "preliminary", "conclusion": report.impression })
}

/// Pretty JSON bytes of [`diagnostic_report`].
pub fn to_json(report: &Report) -> Result<Vec<u8>, OutputError> {
    serde_json::to_vec_pretty(&diagnostic_report(report)).map_err(|source| OutputError::Json {
        format: "FHIR DiagnosticReport",
        source,
    })
}
