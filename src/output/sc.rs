//! DICOM Secondary Capture (PS3.3 A.8.1) of the result screen, so the archive's
//! viewer shows what the unit's display showed: 8-bit RGB, in the study of the
//! film, a series of its own, marked DERIVED with burned-in annotation
//! (`crate::forward` says why an SC rather than a presentation state). Its UIDs
//! derive from the instance key and bundle, like the SR's.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use super::{derived_uid, sr, OutputError};
use crate::report::Report;

/// Series number of the screen captures.
pub const SERIES_NUMBER: &str = "9902";

/// SOP Instance UID of the screen capture of `report`.
pub fn sc_uid(report: &Report) -> String {
    derived_uid(&[
        "cxr-edge screen capture",
        &report.study.instance_key,
        &report.bundle_hash,
    ])
}

/// The Secondary Capture of `screen` (row-major RGB) as a DICOM Part 10 file.
pub fn to_bytes(
    report: &Report,
    source: Option<&InMemDicomObject>,
    screen: &image::RgbImage,
) -> Result<Vec<u8>, OutputError> {
    let err = |reason: String| OutputError::Sr {
        key: report.study.instance_key.clone(),
        reason: format!("screen capture: {reason}"),
    };
    if !sr::can_reference(report) {
        return Err(err("the input has no DICOM study to file it in".into()));
    }
    let (w, h) = (screen.width(), screen.height());
    let (Ok(cols), Ok(rows)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(err(format!(
            "a {w}×{h} screen does not fit DICOM rows/columns"
        )));
    };
    let study_uid = report
        .study
        .study_instance_uid
        .as_deref()
        .unwrap_or_default()
        .trim();
    let mut o = InMemDicomObject::new_empty();
    o.put_str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    o.put_str(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    );
    o.put_str(tags::SOP_INSTANCE_UID, VR::UI, sc_uid(report));
    o.put_str(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY");
    sr::put_patient_study(&mut o, report, source);
    o.put_str(tags::MODALITY, VR::CS, "OT");
    o.put_str(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        derived_uid(&["cxr-edge screen series", study_uid, &report.bundle_hash]),
    );
    o.put_str(tags::SERIES_NUMBER, VR::IS, SERIES_NUMBER);
    o.put_str(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "cxr-edge result screen (machine-generated, not for diagnosis)",
    );
    o.put_str(tags::INSTANCE_NUMBER, VR::IS, "1");
    o.put_str(tags::CONVERSION_TYPE, VR::CS, "WSD");
    o.put_str(tags::MANUFACTURER, VR::LO, "cxr-edge");
    o.put_str(tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    put_rgb_pixels(&mut o, (rows, cols), screen);
    super::sr::part10(o, err)
}

/// The Image Pixel module of an 8-bit RGB `screen` of `rows × cols`.
fn put_rgb_pixels(o: &mut InMemDicomObject, (rows, cols): (u16, u16), screen: &image::RgbImage) {
    o.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(3u16),
    ));
    o.put_str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
    o.put(DataElement::new(
        tags::PLANAR_CONFIGURATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    o.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(rows),
    ));
    o.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(cols),
    ));
    for tag in [tags::BITS_ALLOCATED, tags::BITS_STORED] {
        o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(8u16)));
    }
    o.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(7u16),
    ));
    o.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(screen.as_raw().clone()),
    ));
}
