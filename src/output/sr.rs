//! DICOM Basic Text SR (PS3.3 A.35.1) so that a PACS files the report next to the
//! image: same Study Instance UID, a series of its own, the input instance in the
//! Current Requested Procedure Evidence Sequence, and a content tree
//!
//! ```text
//! CONTAINER "Chest X-ray report"
//!   CONTAINS TEXT "Impression"  the generated impression
//!   CONTAINS TEXT "Finding"     one per observation: name, flagged or not, score
//!   CONTAINS TEXT "Comment"     machine-generated, model id, bundle hash
//! ```
//!
//! Basic Text SR does not allow NUM content items (that needs Enhanced SR, which
//! fewer viewers render), so scores are written inside the finding texts.
//! Verification Flag is UNVERIFIED: nobody has signed this. UIDs are derived from
//! the instance key and bundle hash ([`super::derived_uid`]), so re-processing
//! produces the same SR.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

use super::OutputError;
use crate::report::{Finding, Report};

/// Private coding scheme for the device's own concepts (PS3.16 8.2: "99" prefix).
pub const CODING_SCHEME: &str = "99CXREDGE";
/// Series number given to SR series written by this device.
pub const SERIES_NUMBER: &str = "9901";

/// Whether the report has the UIDs an SR must reference (i.e. a DICOM input).
pub fn can_reference(report: &Report) -> bool {
    let s = &report.study;
    [
        &s.study_instance_uid,
        &s.series_instance_uid,
        &s.sop_instance_uid,
        &s.sop_class_uid,
    ]
    .iter()
    .all(|u| u.as_deref().is_some_and(|u| !u.trim().is_empty()))
}

/// The SR dataset. `source` is the received image's dataset: its patient and
/// study attributes are copied as they are; without it they come from
/// [`crate::report::StudyInfo`].
pub fn build(
    report: &Report,
    source: Option<&InMemDicomObject>,
) -> Result<InMemDicomObject, OutputError> {
    let err = |reason: String| OutputError::Sr {
        key: report.study.instance_key.clone(),
        reason,
    };
    if !can_reference(report) {
        return Err(err(
            "the input has no Study/Series/SOP Instance UID or SOP Class UID to reference (not DICOM?)".into(),
        ));
    }
    let s = &report.study;
    let study_uid = s.study_instance_uid.as_deref().unwrap_or_default().trim();
    let (date, time) = dicom_date_time(&report.generated_at).ok_or_else(|| {
        err(format!(
            "generated_at {:?} is not an RFC 3339 UTC time",
            report.generated_at
        ))
    })?;

    let mut o = InMemDicomObject::new_empty();
    // Everything is written as UTF-8 (values copied from the source were decoded
    // with its character set), and ISO_IR 192 is a superset of the default.
    o.put_str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    o.put_str(tags::SOP_CLASS_UID, VR::UI, uids::BASIC_TEXT_SR_STORAGE);
    o.put_str(tags::SOP_INSTANCE_UID, VR::UI, super::report_uid(report));
    o.put_str(tags::INSTANCE_CREATION_DATE, VR::DA, date.clone());
    o.put_str(tags::INSTANCE_CREATION_TIME, VR::TM, time.clone());
    // generated_at is UTC; say so, since DICOM times are otherwise local.
    o.put_str(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000");

    put_patient_study(&mut o, report, source);
    put_series_and_equipment(&mut o, report, study_uid);
    put_document_general(&mut o, report, date, time);

    // SR Document Content: the root container.
    o.put_str(tags::VALUE_TYPE, VR::CS, "CONTAINER");
    o.put(concept(CODING_SCHEME, "CXR-REPORT", "Chest X-ray report"));
    o.put_str(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    o.put(sequence(tags::CONTENT_SEQUENCE, content_items(report)));
    Ok(o)
}

/// SR Document Series and General Equipment.
fn put_series_and_equipment(o: &mut InMemDicomObject, report: &Report, study_uid: &str) {
    o.put_str(tags::MODALITY, VR::CS, "SR");
    o.put_str(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        super::derived_uid(&["cxr-edge sr series", study_uid, &report.bundle_hash]),
    );
    o.put_str(tags::SERIES_NUMBER, VR::IS, SERIES_NUMBER);
    o.put_str(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Machine-generated chest X-ray report",
    );
    o.put(empty_sequence(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
    ));
    o.put_str(tags::MANUFACTURER, VR::LO, "cxr-edge");
    o.put_str(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        truncate(&report.model_id, 64),
    );
    o.put_str(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        concat!("cxr-edge ", env!("CARGO_PKG_VERSION")),
    );
}

/// SR Document General (unverified, complete, its evidence), and the
/// declaration of the private coding scheme the concept names use.
fn put_document_general(o: &mut InMemDicomObject, report: &Report, date: String, time: String) {
    o.put_str(tags::INSTANCE_NUMBER, VR::IS, "1");
    o.put_str(tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    o.put_str(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    o.put_str(tags::CONTENT_DATE, VR::DA, date);
    o.put_str(tags::CONTENT_TIME, VR::TM, time);
    o.put(empty_sequence(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE));
    o.put(sequence(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![evidence(report)],
    ));
    o.put(sequence(
        tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::CODING_SCHEME_DESIGNATOR,
                VR::SH,
                PrimitiveValue::from(CODING_SCHEME),
            ),
            DataElement::new(
                tags::CODING_SCHEME_NAME,
                VR::ST,
                PrimitiveValue::from("cxr-edge local concepts"),
            ),
            DataElement::new(
                tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
                VR::ST,
                PrimitiveValue::from("cxr-edge"),
            ),
        ])],
    ));
}

/// The root container's items: the impression, one per finding, and the
/// comment that says what produced it and how far to trust it.
fn content_items(report: &Report) -> Vec<InMemDicomObject> {
    let mut items = vec![text_item(
        ("121073", "DCM", "Impression"),
        &report.impression,
    )];
    items.extend(
        report
            .findings
            .iter()
            .map(|f| text_item(("121071", "DCM", "Finding"), &finding_text(f))),
    );
    items.push(text_item(
        ("121106", "DCM", "Comment"),
        &format!(
            "Machine-generated by cxr-edge (model {}, bundle sha256 {}). Preliminary: not verified \
             by a radiologist; {}",
            report.model_id,
            report.bundle_hash,
            if report.findings.iter().any(|f| f.probability.is_some()) {
                "probabilities are calibrated on validation films and are not a diagnosis; \
                 scores are model outputs."
            } else {
                "scores are model outputs, not probabilities of disease."
            }
        ),
    ));
    items
}

/// The SR as a DICOM Part 10 file (preamble, file meta, explicit VR little endian).
pub fn to_bytes(
    report: &Report,
    source: Option<&InMemDicomObject>,
) -> Result<Vec<u8>, OutputError> {
    let err = |reason: String| OutputError::Sr {
        key: report.study.instance_key.clone(),
        reason,
    };
    part10(build(report, source)?, err)
}

/// `o` as a DICOM Part 10 file (preamble, file meta, explicit VR little
/// endian); `err` names what failed.
pub(super) fn part10(
    o: InMemDicomObject,
    err: impl Fn(String) -> OutputError,
) -> Result<Vec<u8>, OutputError> {
    let file = o
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| err(format!("file meta: {e}")))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| err(format!("encoding: {e}")))?;
    Ok(bytes)
}

/// The Patient and General Study modules: copied from the image's dataset
/// `source` when there is one, else from [`crate::report::StudyInfo`].
pub(super) fn put_patient_study(
    o: &mut InMemDicomObject,
    report: &Report,
    source: Option<&InMemDicomObject>,
) {
    let s = &report.study;
    let study_uid = s.study_instance_uid.as_deref().unwrap_or_default().trim();
    let fallback: [(Tag, VR, Option<&str>); 10] = [
        (tags::PATIENT_NAME, VR::PN, s.patient_name.as_deref()),
        (tags::PATIENT_ID, VR::LO, s.patient_id.as_deref()),
        (tags::PATIENT_BIRTH_DATE, VR::DA, None),
        (tags::PATIENT_SEX, VR::CS, None),
        (tags::STUDY_DATE, VR::DA, s.study_date.as_deref()),
        (tags::STUDY_TIME, VR::TM, None),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN, None),
        (tags::STUDY_ID, VR::SH, None),
        (
            tags::ACCESSION_NUMBER,
            VR::SH,
            s.accession_number.as_deref(),
        ),
        (tags::STUDY_DESCRIPTION, VR::LO, None),
    ];
    for (tag, vr, value) in fallback {
        match source.and_then(|src| src.get(tag)) {
            Some(elem) => {
                o.put(elem.clone());
            }
            None => {
                o.put_str(tag, vr, value.unwrap_or("").trim());
            }
        }
    }
    if let Some(issuer) = source.and_then(|src| src.get(tags::ISSUER_OF_PATIENT_ID)) {
        o.put(issuer.clone());
    }
    o.put_str(tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
}

/// "Cardiomegaly: flagged (score 0.83, threshold 0.50)", with "probability
/// 0.41, " before the score where the bundle calibrates it.
pub fn finding_text(f: &Finding) -> String {
    let probability = f
        .probability
        .map(|p| format!("probability {p:.2}, "))
        .unwrap_or_default();
    format!(
        "{}: {} ({probability}score {:.2}, threshold {:.2})",
        f.observation.display_name(),
        if f.flagged { "flagged" } else { "not flagged" },
        f.score,
        f.threshold
    )
}

fn evidence(report: &Report) -> InMemDicomObject {
    let s = &report.study;
    let uid = |u: &Option<String>| u.as_deref().unwrap_or_default().trim().to_string();
    let sop = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(uid(&s.sop_class_uid)),
        ),
        DataElement::new(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uid(&s.sop_instance_uid)),
        ),
    ]);
    let series = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uid(&s.series_instance_uid)),
        ),
        sequence(tags::REFERENCED_SOP_SEQUENCE, vec![sop]),
    ]);
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uid(&s.study_instance_uid)),
        ),
        sequence(tags::REFERENCED_SERIES_SEQUENCE, vec![series]),
    ])
}

fn text_item((code, scheme, meaning): (&str, &str, &str), text: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    item.put_str(tags::RELATIONSHIP_TYPE, VR::CS, "CONTAINS");
    item.put_str(tags::VALUE_TYPE, VR::CS, "TEXT");
    item.put(concept(scheme, code, meaning));
    item.put_str(tags::TEXT_VALUE, VR::UT, text);
    item
}

/// A Concept Name Code Sequence with one code.
fn concept(scheme: &str, code: &str, meaning: &str) -> DataElement<InMemDicomObject> {
    let code = InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(code)),
        DataElement::new(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            PrimitiveValue::from(scheme),
        ),
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
    ]);
    sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code])
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn empty_sequence(tag: Tag) -> DataElement<InMemDicomObject> {
    sequence(tag, Vec::new())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// RFC 3339 `2026-11-29T19:40:21.5Z` → DICOM (`20261129`, `194021.5`).
fn dicom_date_time(rfc3339: &str) -> Option<(String, String)> {
    let (date, rest) = rfc3339.split_once('T')?;
    let d: String = date.chars().filter(|c| *c != '-').collect();
    let end = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let t: String = rest[..end].chars().filter(|c| *c != ':').collect();
    let ok = d.len() == 8
        && d.bytes().all(|b| b.is_ascii_digit())
        && t.len() >= 6
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then(|| (d, t.chars().take(13).collect()))
}
