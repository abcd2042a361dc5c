//! Why an input was not turned into a radiograph. Every variant names the input (a
//! file path, or `dicom://<AE>/<SOP Instance UID>`), so a log line or a refusal
//! shown on the screen says which study and what is wrong with it.

use thiserror::Error;

use super::dicom_lengths::LengthError;

/// A reason a film is not a valid chest radiograph for this model. Each has a
/// stable [`code`](Refusal::code), like CAD4TB's "not a valid chest film" codes,
/// for the report and the logs; [`crate::input::ValidateOptions::force`] overrides them.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// DICOM Modality is not CR or DX (e.g. CT, MR, US).
    WrongModality(String),
    /// Body Part Examined names something other than the chest.
    WrongBodyPart(String),
    /// View Position is lateral (LL, RL, LATERAL): the model reads frontal films.
    LateralView(String),
    /// Smaller than the minimum side length, so the film cannot be read.
    TooSmall {
        width: u32,
        height: u32,
        min_side: u32,
    },
    /// Colour image (samples differ between channels) or a colour photometric
    /// interpretation.
    NotGreyscale(String),
    /// No contrast: the same grey (or nearly) everywhere, e.g. a blank or
    /// all-white export. `span` is the 0.5–99.5 percentile range in 16-bit units.
    Uniform { span: u16 },
    /// The encoder's features are far from those of frontal chest films (a
    /// lateral film, another body part, CT, a photograph): see
    /// [`crate::view_check`].
    UnlikeFrontalChest { distance: f32, threshold: f32 },
}

impl Refusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::WrongModality(_) => "wrong-modality",
            Refusal::WrongBodyPart(_) => "wrong-body-part",
            Refusal::LateralView(_) => "lateral-view",
            Refusal::TooSmall { .. } => "too-small",
            Refusal::NotGreyscale(_) => "not-greyscale",
            Refusal::Uniform { .. } => "uniform-image",
            Refusal::UnlikeFrontalChest { .. } => "unlike-frontal-chest",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongModality(m) => write!(f, "modality {m:?} is not CR or DX"),
            Refusal::WrongBodyPart(b) => write!(f, "body part {b:?} is not the chest"),
            Refusal::LateralView(v) => {
                write!(
                    f,
                    "view position {v:?} is lateral; only frontal films are read"
                )
            }
            Refusal::TooSmall {
                width,
                height,
                min_side,
            } => write!(
                f,
                "{width}×{height} pixels is smaller than {min_side} on a side"
            ),
            Refusal::NotGreyscale(what) => write!(f, "not a greyscale image ({what})"),
            Refusal::Uniform { span } => write!(
                f,
                "no contrast (the 0.5–99.5 percentile grey levels differ by {span} of 65535): a blank image"
            ),
            Refusal::UnlikeFrontalChest {
                distance,
                threshold,
            } => write!(
                f,
                "does not look like a frontal chest radiograph (feature distance {distance:.2}, limit {threshold:.2})"
            ),
        }
    }
}

/// Everything that can go wrong turning bytes into a [`super::Radiograph`].
#[derive(Debug, Error)]
pub enum InputError {
    #[error("{input}: cannot read: {source}")]
    Io {
        input: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{input}: empty file (0 bytes)")]
    Empty { input: String },
    #[error("{input}: unknown format (not PNG, JPEG or DICOM Part 10)")]
    UnknownFormat { input: String },
    #[error(
        "{input}: header claims {width}×{height} pixels, over the limit of \
         {max_side} per side and {max_pixels} in all; refused before decoding"
    )]
    TooLarge {
        input: String,
        width: u64,
        height: u64,
        max_side: u32,
        max_pixels: u64,
    },
    #[error(
        "{input}: {what} holds at least {size} bytes, over the limit of {max_bytes} \
         bytes for one input; refused before parsing"
    )]
    InputTooLarge {
        input: String,
        /// `file`, `input` (bytes in memory) or `inflated data set`.
        what: &'static str,
        /// The size, or for an inflated data set the bytes inflated when it stopped.
        size: u64,
        max_bytes: u64,
    },
    /// A declared length or structure dicom-rs must not be left to trust
    /// (checked before it parses anything).
    #[error("{input}: corrupt or truncated DICOM: {problem}")]
    DicomLength { input: String, problem: LengthError },
    #[error("{input}: corrupt or truncated {format}: {reason}")]
    Corrupt {
        input: String,
        format: &'static str,
        reason: String,
    },
    #[error("{input}: DICOM object has no Pixel Data (7FE0,0010)")]
    NoPixelData { input: String },
    #[error("{input}: DICOM transfer syntax {uid} ({name}) is not supported: {reason}")]
    UnsupportedTransferSyntax {
        input: String,
        uid: String,
        name: String,
        reason: &'static str,
    },
    #[error("{input}: not a valid chest film: {refusal}")]
    NotChestFilm { input: String, refusal: Refusal },
}

impl InputError {
    /// Stable machine-readable code of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::Io { .. } => "io",
            InputError::Empty { .. } => "empty",
            InputError::UnknownFormat { .. } => "unknown-format",
            InputError::TooLarge { .. } => "too-large",
            InputError::InputTooLarge { .. } => "input-too-large",
            InputError::Corrupt { .. } | InputError::DicomLength { .. } => "corrupt",
            InputError::NoPixelData { .. } => "no-pixel-data",
            InputError::UnsupportedTransferSyntax { .. } => "unsupported-transfer-syntax",
            InputError::NotChestFilm { refusal, .. } => refusal.code(),
        }
    }
}
