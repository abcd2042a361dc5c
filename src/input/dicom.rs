//! DICOM Part 10 decoding with dicom-rs. Two passes: the header (everything before
//! Pixel Data) is parsed and checked first, so a claimed 60000×60000 image or a
//! transfer syntax we cannot decode is refused before the pixels are read; then the
//! full object is parsed and frame 0 decoded with dicom-pixeldata's default
//! conversion (modality LUT → VOI LUT or window or min-max → MONOCHROME1 inversion).
//! Before either pass, every declared length is checked against the bytes present
//! ([`super::dicom_lengths`]), as dicom-rs allocates a value's declared length
//! before reading it; and RLE, JPEG and JPEG 2000 pixel data are checked against
//! the header before they are decoded ([`super::dicom_rle`],
//! [`super::dicom_frame`]), as dicom-rs's decoders for them index unchecked.

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::{ConvertOptions, PixelDecoder};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::dicom_lengths::{self, LengthError};
use super::error::{InputError, Refusal};
use super::validate::ValidateOptions;
use super::Radiograph;
use super::{dicom_frame, dicom_rle};
use crate::report::StudyInfo;

/// 12-bit lossy JPEG (Extended, processes 2 & 4).
pub const JPEG_EXTENDED_12BIT: &str = "1.2.840.10008.1.2.4.51";

/// Whether `bytes` look like a DICOM Part 10 file (preamble + `DICM`).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.len() >= 132 && &bytes[128..132] == b"DICM"
}

/// Whether dicom-rs, as built here, can decode pixel data in transfer syntax `uid`.
/// JPEG-LS needs dicom-rs's C++ `charls` feature, which this build leaves off, and
/// 12-bit lossy JPEG is beyond its pure-Rust JPEG decoder.
pub fn can_decode(uid: &str) -> bool {
    let uid = uid.trim_end_matches(['\0', ' ']);
    uid != JPEG_EXTENDED_12BIT
        && TransferSyntaxRegistry
            .get(uid)
            .is_some_and(|ts| !ts.is_unsupported_pixel_encapsulation())
}

/// Bytes whose declared lengths have been checked: the only thing [`parse`] reads.
#[derive(Clone, Copy)]
struct Checked<'a>(&'a [u8]);

/// Check every declared length of `bytes` (see [`dicom_lengths`]); a deflated
/// data set may inflate to at most `max_bytes`.
fn check_lengths<'a>(
    bytes: &'a [u8],
    input: &str,
    max_bytes: u64,
) -> Result<Checked<'a>, InputError> {
    match dicom_lengths::check(bytes, max_bytes) {
        Ok(()) => Ok(Checked(bytes)),
        Err(LengthError::InflatesPastLimit { max }) => Err(InputError::InputTooLarge {
            input: input.to_string(),
            what: "inflated data set",
            size: max.saturating_add(1),
            max_bytes: max,
        }),
        Err(problem) => Err(InputError::DicomLength {
            input: input.to_string(),
            problem,
        }),
    }
}

fn parse(
    bytes: Checked<'_>,
    input: &str,
    header_only: bool,
) -> Result<DefaultDicomObject, InputError> {
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Always);
    if header_only {
        options = options.read_until(tags::PIXEL_DATA);
    }
    options
        .from_reader(bytes.0)
        .map_err(|e| InputError::Corrupt {
            input: input.to_string(),
            format: "DICOM",
            reason: error_chain(&e),
        })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A trimmed, non-empty string attribute.
pub(crate) fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    element_text(obj, tag)
}

/// The view of a DX header that states it only in its View Code Sequence
/// (0054,0220): the first item's Code Meaning, else its Code Value.
fn view_code_meaning(obj: &DefaultDicomObject) -> Option<String> {
    let items = obj
        .element_opt(tags::VIEW_CODE_SEQUENCE)
        .ok()
        .flatten()?
        .items()?;
    let item = items.first()?;
    let field = |tag| element_text(item, tag);
    field(tags::CODE_MEANING).or_else(|| field(tags::CODE_VALUE))
}

/// A trimmed, non-empty string attribute of an in-memory object (a sequence
/// item, a DIMSE command).
pub(crate) fn element_text(obj: &dicom_object::InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_str()
        .ok()?
        .into_owned();
    let s = s.trim_matches(['\0', ' ']).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn uint(obj: &DefaultDicomObject, tag: Tag) -> Option<u64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<u64>().ok()
}

/// Identity of the instance, for the report and for idempotence.
pub fn study_info(obj: &DefaultDicomObject, source: &str) -> StudyInfo {
    let sop_instance_uid = text(obj, tags::SOP_INSTANCE_UID);
    StudyInfo {
        instance_key: sop_instance_uid.clone().unwrap_or_default(),
        study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(obj, tags::SERIES_INSTANCE_UID),
        sop_instance_uid,
        sop_class_uid: text(obj, tags::SOP_CLASS_UID),
        patient_id: text(obj, tags::PATIENT_ID),
        patient_name: text(obj, tags::PATIENT_NAME),
        accession_number: text(obj, tags::ACCESSION_NUMBER),
        modality: text(obj, tags::MODALITY),
        view_position: text(obj, tags::VIEW_POSITION),
        study_date: text(obj, tags::STUDY_DATE),
        source: source.to_string(),
    }
}

/// The identity of a DICOM file from its header alone (for refusal screens and
/// logs when the pixels cannot be used). Lengths are checked under the default
/// [`ValidateOptions::max_input_bytes`].
pub fn header_info(bytes: &[u8], source: &str) -> Option<StudyInfo> {
    if !is_dicom(bytes) {
        return None;
    }
    let max = ValidateOptions::default().max_input_bytes;
    let header = parse(check_lengths(bytes, source, max).ok()?, source, true).ok()?;
    Some(study_info(&header, source))
}

/// The SOP Instance UID of a DICOM file, reading the header only (lengths
/// checked as in [`header_info`]).
pub fn sop_instance_uid(bytes: &[u8]) -> Option<String> {
    let max = ValidateOptions::default().max_input_bytes;
    let header = parse(check_lengths(bytes, "", max).ok()?, "", true).ok()?;
    text(&header, tags::SOP_INSTANCE_UID)
}

/// Refuse a transfer syntax whose pixel data this build cannot decode, by name.
fn check_transfer_syntax(header: &DefaultDicomObject, input: &str) -> Result<(), InputError> {
    let ts = header
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' ']);
    if !can_decode(ts) {
        let (name, reason) = match TransferSyntaxRegistry.get(ts) {
            _ if ts == JPEG_EXTENDED_12BIT => (
                "JPEG Extended (12-bit lossy)",
                "the pure-Rust JPEG decoder reads 8-bit DCT only; send it uncompressed or lossless",
            ),
            Some(t) => (t.name(), "no pixel decoder for it in this build"),
            None => ("unknown", "not a registered transfer syntax"),
        };
        return Err(InputError::UnsupportedTransferSyntax {
            input: input.to_string(),
            uid: ts.to_string(),
            name: name.to_string(),
            reason,
        });
    }
    Ok(())
}

/// Refuse encapsulated pixel data that dicom-rs's decoders would index past:
/// RLE ([`dicom_rle`]), JPEG and JPEG 2000 ([`dicom_frame`]); native pixel data
/// and other transfer syntaxes pass.
fn check_encapsulated(obj: &DefaultDicomObject, input: &str) -> Result<(), InputError> {
    let ts = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']);
    let fragment = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .and_then(|e| e.value().fragments())
        .and_then(|f| f.first());
    let attrs = [
        tags::ROWS,
        tags::COLUMNS,
        tags::SAMPLES_PER_PIXEL,
        tags::BITS_ALLOCATED,
    ]
    .map(|t| uint(obj, t));
    // Without these the decoders refuse the data by themselves.
    let (Some(fragment), [Some(rows), Some(cols), Some(samples), Some(bits_allocated)]) =
        (fragment, attrs)
    else {
        return Ok(());
    };
    let problem = if ts == dicom_rle::RLE_LOSSLESS {
        dicom_rle::check(fragment, rows, cols, samples, bits_allocated).map_err(|e| e.to_string())
    } else {
        let expected = dicom_frame::Expected {
            rows,
            cols,
            samples,
            bits_allocated,
        };
        dicom_frame::check(ts, fragment, expected).map_err(|e| e.to_string())
    };
    problem.map_err(|reason| InputError::Corrupt {
        input: input.to_string(),
        format: "DICOM",
        reason,
    })
}

/// Refuse a sample layout no chest radiograph has (PS3.3 C.8.11.3, DX: 8 or
/// 16 bits allocated, at most that many stored) before dicom-rs's VOI LUT,
/// which panics on more than 16 bits stored, is built from it.
fn check_bits(header: &DefaultDicomObject, input: &str) -> Result<(), InputError> {
    let allocated = uint(header, tags::BITS_ALLOCATED);
    let stored = uint(header, tags::BITS_STORED);
    match (allocated, stored) {
        (Some(a @ (8 | 16)), Some(s)) if (1..=a).contains(&s) => Ok(()),
        // Absent: no pixel data to decode, refused later by name.
        (None, None) => Ok(()),
        (a, s) => Err(InputError::Corrupt {
            input: input.to_string(),
            format: "DICOM",
            reason: format!(
                "Bits Allocated {} with Bits Stored {}: a radiograph has 8 or 16 bits \
                 allocated and 1 to that many stored",
                a.map_or("absent".into(), |v| v.to_string()),
                s.map_or("absent".into(), |v| v.to_string())
            ),
        }),
    }
}

/// Decode a DICOM Part 10 file into a radiograph (see the module doc for the order).
pub fn decode(bytes: &[u8], input: &str, opts: &ValidateOptions) -> Result<Radiograph, InputError> {
    let bytes = check_lengths(bytes, input, opts.max_input_bytes)?;
    let header = parse(bytes, input, true)?;
    check_transfer_syntax(&header, input)?;
    if let (Some(rows), Some(cols)) = (uint(&header, tags::ROWS), uint(&header, tags::COLUMNS)) {
        opts.check_dimensions(input, cols, rows)?;
    }
    check_bits(&header, input)?;
    opts.check_header(
        input,
        text(&header, tags::MODALITY).as_deref(),
        text(&header, tags::BODY_PART_EXAMINED).as_deref(),
        text(&header, tags::VIEW_POSITION)
            .or_else(|| view_code_meaning(&header))
            .as_deref(),
    )?;
    let photometric = text(&header, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let samples = uint(&header, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let grey = samples == 1 && photometric.starts_with("MONOCHROME");
    if !grey {
        opts.refuse(
            input,
            Refusal::NotGreyscale(format!("{photometric}, {samples} samples per pixel")),
        )?;
    }
    drop(header);

    let obj = parse(bytes, input, false)?;
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(InputError::NoPixelData {
            input: input.to_string(),
        });
    }
    let (rows, cols) = match (uint(&obj, tags::ROWS), uint(&obj, tags::COLUMNS)) {
        (Some(r), Some(c)) => (r, c),
        _ => {
            return Err(InputError::Corrupt {
                input: input.to_string(),
                format: "DICOM",
                reason: "Pixel Data without Rows and Columns".into(),
            })
        }
    };
    opts.check_dimensions(input, cols, rows)?;
    let corrupt = |what: &str, e: &dyn std::error::Error| InputError::Corrupt {
        input: input.to_string(),
        format: "DICOM",
        reason: format!("{what}: {}", error_chain(e)),
    };
    // Again on the whole object: elements after Pixel Data, which the header
    // pass stops at, may set them.
    check_bits(&obj, input)?;
    check_encapsulated(&obj, input)?;
    let decoded = obj
        .decode_pixel_data_frame(0)
        .map_err(|e| corrupt("cannot decode pixel data", &e))?;
    let image = decoded
        .to_dynamic_image_with_options(0, &ConvertOptions::new().force_16bit())
        .map_err(|e| corrupt("cannot convert pixel data", &e))?
        .to_luma16();
    opts.check_min_size(input, image.width(), image.height())?;
    Ok(Radiograph {
        image,
        info: study_info(&obj, input),
    })
}
