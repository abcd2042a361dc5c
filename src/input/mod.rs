//! Image sources: files (PNG, JPEG, DICOM), a DICOM C-STORE receiver, a watched folder.

use crate::preprocess::Gray16;
use crate::report::StudyInfo;

/// A decoded radiograph with its identity, ready for preprocessing.
#[derive(Debug, Clone)]
pub struct Radiograph {
    /// MONOCHROME2 greyscale (white = dense), 16 bits per sample.
    pub image: Gray16,
    pub info: StudyInfo,
}
