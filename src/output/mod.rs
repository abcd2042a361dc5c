//! Report formats: the JSON report, an HL7 FHIR R4 `DiagnosticReport` and a DICOM
//! Basic Text SR. Each renderer is a pure function of the [`Report`] (plus, for
//! the SR, the received dataset when there is one), so the bytes written for a
//! study are the same every time it is re-processed.

pub mod fhir;
pub mod json;
pub mod sc;
pub mod sr;

use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};

use crate::Report;

/// File name of the FHIR `DiagnosticReport` inside a report directory.
pub const FHIR_JSON: &str = "fhir.json";
/// File name of the DICOM Basic Text SR inside a report directory.
pub const SR_DCM: &str = "sr.dcm";
/// File name of the Secondary Capture of the result screen (written only when
/// a forwarding destination asks for it: `send_screen`).
pub const SC_DCM: &str = "screen-sc.dcm";

/// One rendered file of a report: a plain file name and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("serialising {format}: {source}")]
    Json {
        format: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("DICOM SR for {key:?}: {reason}")]
    Sr { key: String, reason: String },
}

/// The formats besides `report.json` (which the store writes itself): the FHIR
/// `DiagnosticReport` always, the DICOM SR when the input was DICOM (it needs
/// the study, series and SOP instance UIDs to reference). `source` is the
/// received dataset, from which the SR copies the patient and study modules.
pub fn render_extra(
    report: &Report,
    source: Option<&InMemDicomObject>,
) -> Result<Vec<Output>, OutputError> {
    let mut outputs = vec![Output {
        name: FHIR_JSON.to_string(),
        bytes: fhir::to_json(report)?,
    }];
    if sr::can_reference(report) {
        outputs.push(Output {
            name: SR_DCM.to_string(),
            bytes: sr::to_bytes(report, source)?,
        });
    }
    Ok(outputs)
}

/// A DICOM UID under the `2.25` root (PS3.5 B.2) made from a hash of `parts`, so
/// that re-processing a study gives the same UIDs and a PACS sees a replacement,
/// not a second report.
pub fn derived_uid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

/// Identity of this report (the SR's SOP Instance UID, the FHIR identifier): one
/// per input instance and model.
pub fn report_uid(report: &Report) -> String {
    derived_uid(&[
        "cxr-edge report",
        &report.study.instance_key,
        &report.bundle_hash,
    ])
}
