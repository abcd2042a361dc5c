//! What the device produces for one study: the impression, the findings with their
//! scores, timings and provenance. Serialised as the JSON report.

use serde::{Deserialize, Serialize};

use crate::Observation;

/// Identity and provenance of one received image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyInfo {
    /// A stable key for idempotence: the SOP Instance UID for DICOM, else a
    /// content hash of the file (`sha256:<hex>`).
    pub instance_key: String,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub accession_number: Option<String>,
    pub modality: Option<String>,
    pub view_position: Option<String>,
    pub study_date: Option<String>,
    /// Where the image came from: a file path, or `dicom://<calling AE>`.
    pub source: String,
}

/// Coarse spatial map (e.g. attention weights) over the image, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heatmap {
    pub side: usize,
    pub values: Vec<f32>,
}

/// One observation's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub observation: Observation,
    /// The findings head's sigmoid score in `[0, 1]` (a model score, not a
    /// probability).
    pub score: f32,
    /// Decision threshold on `score` from the bundle manifest (or the unit's
    /// configuration).
    pub threshold: f32,
    pub flagged: bool,
    /// The calibrated probability of the finding (the bundle's calibration,
    /// fitted on validation films), where the bundle has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f32>,
}

/// Wall-clock time spent per stage, milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub decode_image_ms: f64,
    pub preprocess_ms: f64,
    pub encoder_ms: f64,
    pub decoder_ms: f64,
    pub total_ms: f64,
}

/// The generated report for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub study: StudyInfo,
    pub impression: String,
    pub findings: Vec<Finding>,
    /// Attention map averaged over the generated words (attention decoders only).
    pub heatmap: Option<Heatmap>,
    pub timings: Timings,
    pub model_id: String,
    /// sha256 of the bundle manifest, identifying the exact model.
    pub bundle_hash: String,
    /// RFC 3339 UTC time the report was generated.
    pub generated_at: String,
}

impl Report {
    /// Findings above their thresholds, highest score first, without "no finding".
    pub fn flagged(&self) -> Vec<&Finding> {
        let mut v: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.flagged && f.observation != Observation::NoFinding)
            .collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score));
        v
    }
}
