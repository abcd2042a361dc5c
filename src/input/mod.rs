//! Image sources: files (PNG, JPEG, DICOM), a DICOM C-STORE receiver, a watched folder.
//!
//! Every input goes through [`decode_bytes`]: the format is sniffed from the magic
//! number (never the file name), the input's size and every declared DICOM length
//! are checked before parsing, the header's dimensions before any pixel buffer
//! exists, and the film is validated as a frontal chest radiograph
//! ([`ValidateOptions`]); each failure is an [`InputError`] naming the input.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::preprocess::Gray16;
use crate::report::StudyInfo;

pub mod dicom;
pub mod dicom_lengths;
mod error;
pub mod raster;
pub mod source;
pub mod synth;
pub mod validate;

pub use error::{InputError, Refusal};
pub use source::{FolderSource, MemorySource, Received, Source};
pub use validate::ValidateOptions;

/// A decoded radiograph with its identity, ready for preprocessing.
#[derive(Debug, Clone)]
pub struct Radiograph {
    /// MONOCHROME2 greyscale (white = dense), 16 bits per sample.
    pub image: Gray16,
    pub info: StudyInfo,
}

/// Decode and validate one input held in memory; `input` names it in errors and
/// becomes [`StudyInfo::source`].
pub fn decode_bytes(
    bytes: &[u8],
    input: &str,
    opts: &ValidateOptions,
) -> Result<Radiograph, InputError> {
    let radiograph = decode_unjudged(bytes, input, opts)?;
    opts.check_contrast(input, &radiograph.image)?;
    Ok(radiograph)
}

/// [`decode_bytes`] up to the pixel checks that need the whole image.
fn decode_unjudged(
    bytes: &[u8],
    input: &str,
    opts: &ValidateOptions,
) -> Result<Radiograph, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty {
            input: input.to_string(),
        });
    }
    opts.check_input_size(input, "input", bytes.len() as u64)?;
    if dicom::is_dicom(bytes) {
        let mut r = dicom::decode(bytes, input, opts)?;
        if r.info.instance_key.is_empty() {
            r.info.instance_key = content_key(bytes);
        }
        return Ok(r);
    }
    let Some(format) = raster::sniff(bytes) else {
        return Err(InputError::UnknownFormat {
            input: input.to_string(),
        });
    };
    let image = raster::decode(bytes, format, input, opts)?;
    Ok(Radiograph {
        image,
        info: StudyInfo {
            instance_key: content_key(bytes),
            source: input.to_string(),
            ..Default::default()
        },
    })
}

/// Read and decode one file. Its size is checked before it is read, and the
/// read stops one byte past the limit in case the file grows meanwhile.
pub fn decode_file(path: &Path, opts: &ValidateOptions) -> Result<Radiograph, InputError> {
    let input = path.display().to_string();
    let io = |source| InputError::Io {
        input: input.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    opts.check_input_size(&input, "file", size)?;
    let mut bytes = Vec::new();
    file.take(opts.max_input_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    opts.check_input_size(&input, "file", bytes.len() as u64)?;
    decode_bytes(&bytes, &input, opts)
}

/// The idempotence key of an input: the SOP Instance UID of a DICOM file, else a
/// content hash, so the same film received twice is reported once.
pub fn instance_key(bytes: &[u8]) -> String {
    if dicom::is_dicom(bytes) {
        if let Some(uid) = dicom::sop_instance_uid(bytes) {
            return uid;
        }
    }
    content_key(bytes)
}

/// `sha256:<hex>` of the bytes.
pub fn content_key(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
