//! DICOM Basic Text SR (work in progress).

use dicom_object::InMemDicomObject;

use super::OutputError;
use crate::Report;

/// Whether the report has the UIDs an SR must reference (DICOM input).
pub fn can_reference(report: &Report) -> bool {
    let s = &report.study;
    s.study_instance_uid.is_some() && s.series_instance_uid.is_some() && s.sop_instance_uid.is_some()
}

/// The SR as a DICOM file (preamble, file meta, dataset).
pub fn to_bytes(report: &Report, _source: Option<&InMemDicomObject>) -> Result<Vec<u8>, OutputError> {
    Err(OutputError::Sr {
        key: report.study.instance_key.clone(),
        reason: "not implemented yet".to_string(),
    })
}
