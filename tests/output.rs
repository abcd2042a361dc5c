//! Report formats: JSON round trip, FHIR structure (and fhir.resources as an
//! oracle), DICOM Basic Text SR read back with dicom-object and with dcmtk.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use cxr_edge::output::{self, fhir, json, sr, OutputError};
use cxr_edge::report::{Finding, Report, StudyInfo, Timings};
use cxr_edge::Observation;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use serde_json::Value;

use crate::util;

pub const STUDY_UID: &str = "1.2.826.0.1.3680043.8.498.10001";
pub const SERIES_UID: &str = "1.2.826.0.1.3680043.8.498.10002";
pub const SOP_UID: &str = "1.2.826.0.1.3680043.8.498.10003";

/// A report as the reporter would produce it for a DICOM input.
pub fn sample_report(key: &str) -> Report {
    let findings = Observation::ALL
        .iter()
        .enumerate()
        .map(|(i, &o)| {
            let score = (i as f32 + 1.0) / 11.0;
            Finding {
                observation: o,
                score,
                threshold: 0.5,
                flagged: score >= 0.5,
                probability: None,
            }
        })
        .collect();
    Report {
        study: StudyInfo {
            instance_key: key.to_string(),
            study_instance_uid: Some(STUDY_UID.into()),
            series_instance_uid: Some(SERIES_UID.into()),
            sop_instance_uid: Some(SOP_UID.into()),
            sop_class_uid: Some(uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION.into()),
            patient_id: Some("PAT-0042".into()),
            patient_name: Some("Doe^Jane".into()),
            accession_number: Some("ACC7".into()),
            modality: Some("DX".into()),
            view_position: Some("PA".into()),
            study_date: Some("20261129".into()),
            source: "dicom://MODALITY".into(),
        },
        impression: "Cardiomegaly with small <left> pleural effusion & no pneumothorax.".into(),
        findings,
        heatmap: None,
        timings: Timings::default(),
        model_id: "cxr-gru-small-v1".into(),
        bundle_hash: "ab".repeat(32),
        generated_at: "2026-11-29T19:40:21.250Z".into(),
    }
}

/// The same report for a PNG input: no DICOM identity at all.
fn png_report() -> Report {
    let mut r = sample_report("sha256:0123abcd");
    r.study = StudyInfo {
        instance_key: "sha256:0123abcd".into(),
        source: "/tmp/chest.png".into(),
        ..StudyInfo::default()
    };
    r
}

#[test]
fn json_report_round_trips() {
    let r = sample_report(SOP_UID);
    let bytes = json::to_json(&r).unwrap();
    assert!(bytes.ends_with(b"}\n"));
    assert_eq!(json::from_json(&bytes).unwrap(), r);
    assert!(matches!(
        json::from_json(b"{\"impression\": 3}"),
        Err(OutputError::Json { .. })
    ));
}

fn contained_ids(dr: &Value) -> HashSet<String> {
    dr["contained"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn fhir_diagnostic_report_has_required_fields_and_resolving_references() {
    let r = sample_report(SOP_UID);
    let dr: Value = serde_json::from_slice(&fhir::to_json(&r).unwrap()).unwrap();
    assert_eq!(dr["resourceType"], "DiagnosticReport");
    assert_eq!(dr["status"], "preliminary");
    assert_eq!(dr["code"]["coding"][0]["system"], fhir::LOINC);
    assert_eq!(dr["code"]["coding"][0]["code"], "18748-4");
    let cat = &dr["category"][0]["coding"];
    assert!(cat.as_array().unwrap().iter().any(|c| c["code"] == "RAD"));
    assert_eq!(dr["conclusion"], r.impression.as_str());
    assert_eq!(dr["subject"]["identifier"]["value"], "PAT-0042");
    assert_eq!(dr["subject"]["display"], "Doe Jane");
    assert_eq!(dr["effectiveDateTime"], "2026-11-29");
    assert_eq!(dr["issued"], r.generated_at.as_str());
    assert_eq!(
        dr["imagingStudy"][0]["identifier"]["value"],
        format!("urn:oid:{STUDY_UID}")
    );
    assert_eq!(
        dr["identifier"][0]["value"],
        format!("urn:oid:{}", output::report_uid(&r))
    );
    let performer = dr["performer"][0]["display"].as_str().unwrap();
    assert!(performer.contains(&r.model_id) && performer.contains(&r.bundle_hash));
    // The narrative is XHTML: the impression's '<' and '&' must be escaped.
    let div = dr["text"]["div"].as_str().unwrap();
    assert!(div.contains("&lt;left&gt;") && div.contains("&amp;") && !div.contains("<left>"));

    let ids = contained_ids(&dr);
    assert_eq!(
        ids.len(),
        dr["contained"].as_array().unwrap().len(),
        "contained ids are unique"
    );
    let results = dr["result"].as_array().unwrap();
    assert_eq!(results.len(), r.findings.len());
    for (res, f) in results.iter().zip(&r.findings) {
        let reference = res["reference"].as_str().unwrap();
        let id = reference.strip_prefix('#').expect("local reference");
        assert!(ids.contains(id), "{reference} does not resolve");
        let obs = dr["contained"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        assert_eq!(obs["resourceType"], "Observation");
        assert_eq!(obs["code"]["coding"][0]["code"], f.observation.key());
        let value = obs["valueQuantity"]["value"].as_f64().unwrap();
        assert!(
            (value - f64::from(f.score)).abs() < 1e-4,
            "{value} vs {}",
            f.score
        );
        let interp = &obs["interpretation"][0]["coding"][0]["code"];
        assert_eq!(interp, if f.flagged { "POS" } else { "NEG" });
        let device = obs["device"]["reference"].as_str().unwrap();
        assert!(ids.contains(device.trim_start_matches('#')));
    }
    // Every contained resource is referenced from somewhere (FHIR dom-3).
    let text = dr.to_string();
    for id in &ids {
        assert!(
            text.contains(&format!("\"#{id}\"")),
            "{id} is not referenced"
        );
    }
}

#[test]
fn fhir_without_dicom_identity_omits_subject_and_study() {
    let dr = fhir::diagnostic_report(&png_report());
    assert!(dr.get("subject").is_none());
    assert!(dr.get("imagingStudy").is_none());
    assert_eq!(dr["status"], "preliminary");
    let mut empty = png_report();
    empty.findings.clear();
    let dr = fhir::diagnostic_report(&empty);
    assert!(dr.get("contained").is_none() && dr.get("result").is_none());
}

#[test]
fn fhir_matches_golden_file() {
    let got = fhir::to_json(&sample_report(SOP_UID)).unwrap();
    let path = util::fixture("output/fhir_diagnostic_report.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

/// fhir.resources (pydantic models of the FHIR spec) as an independent oracle.
/// R4B is the R4 technical correction; DiagnosticReport and Observation are
/// unchanged between them.
#[test]
fn fhir_validates_with_fhir_resources() {
    let probe = Command::new("python3")
        .args(["-c", "import fhir.resources.R4B"])
        .output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!(
            "SKIP: python3 with fhir.resources (scripts/requirements-test.txt) not available"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, r) in [
        ("dicom.json", sample_report(SOP_UID)),
        ("png.json", png_report()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, fhir::to_json(&r).unwrap()).unwrap();
        let script = "import sys\n\
            from fhir.resources.R4B.diagnosticreport import DiagnosticReport\n\
            dr = DiagnosticReport.model_validate_json(open(sys.argv[1]).read())\n\
            print(dr.status, len(dr.contained or []), len(dr.result or []))\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n = r.findings.len();
        assert_eq!(
            stdout.trim(),
            format!("preliminary {} {n}", n + 1),
            "{name}"
        );
    }
}

/// The received image's dataset, with attributes the SR must copy.
fn source_dataset() -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from("Müller^Jörg"),
        ),
        DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("PAT-0042")),
        DataElement::new(
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            PrimitiveValue::from("19700101"),
        ),
        DataElement::new(tags::PATIENT_SEX, VR::CS, PrimitiveValue::from("F")),
        DataElement::new(tags::STUDY_TIME, VR::TM, PrimitiveValue::from("101500")),
        DataElement::new(tags::STUDY_ID, VR::SH, PrimitiveValue::from("S1")),
    ])
}

fn str_of(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

fn item(obj: &InMemDicomObject, tag: dicom_core::Tag, i: usize) -> &InMemDicomObject {
    &obj.element(tag).unwrap().items().unwrap()[i]
}

#[test]
fn sr_reads_back_with_references_patient_and_content() {
    let r = sample_report(SOP_UID);
    let src = source_dataset();
    let bytes = sr::to_bytes(&r, Some(&src)).unwrap();
    assert_eq!(
        bytes,
        sr::to_bytes(&r, Some(&src)).unwrap(),
        "deterministic"
    );
    let file = dicom_object::from_reader(&bytes[128..]).unwrap();
    assert_eq!(
        file.meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0'),
        uids::BASIC_TEXT_SR_STORAGE
    );
    let o: &InMemDicomObject = &file;
    assert_eq!(str_of(o, tags::SOP_CLASS_UID), uids::BASIC_TEXT_SR_STORAGE);
    assert_eq!(str_of(o, tags::SOP_INSTANCE_UID), output::report_uid(&r));
    assert_ne!(str_of(o, tags::SOP_INSTANCE_UID), SOP_UID);
    assert_eq!(str_of(o, tags::STUDY_INSTANCE_UID), STUDY_UID);
    assert_ne!(str_of(o, tags::SERIES_INSTANCE_UID), SERIES_UID);
    assert_eq!(str_of(o, tags::MODALITY), "SR");
    assert_eq!(str_of(o, tags::VERIFICATION_FLAG), "UNVERIFIED");
    assert_eq!(str_of(o, tags::COMPLETION_FLAG), "COMPLETE");
    assert_eq!(str_of(o, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    // Patient module copied from the source dataset, not from StudyInfo.
    assert_eq!(str_of(o, tags::PATIENT_NAME), "Müller^Jörg");
    assert_eq!(str_of(o, tags::PATIENT_BIRTH_DATE), "19700101");
    assert_eq!(str_of(o, tags::ACCESSION_NUMBER), "ACC7");
    assert_eq!(str_of(o, tags::CONTENT_DATE), "20261129");

    let study = item(o, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, 0);
    assert_eq!(str_of(study, tags::STUDY_INSTANCE_UID), STUDY_UID);
    let series = item(study, tags::REFERENCED_SERIES_SEQUENCE, 0);
    assert_eq!(str_of(series, tags::SERIES_INSTANCE_UID), SERIES_UID);
    let sop = item(series, tags::REFERENCED_SOP_SEQUENCE, 0);
    assert_eq!(str_of(sop, tags::REFERENCED_SOP_INSTANCE_UID), SOP_UID);
    assert_eq!(
        str_of(sop, tags::REFERENCED_SOP_CLASS_UID),
        uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION
    );

    assert_eq!(str_of(o, tags::VALUE_TYPE), "CONTAINER");
    assert_eq!(
        str_of(
            item(o, tags::CONCEPT_NAME_CODE_SEQUENCE, 0),
            tags::CODE_MEANING
        ),
        "Chest X-ray report"
    );
    let content = o.element(tags::CONTENT_SEQUENCE).unwrap().items().unwrap();
    assert_eq!(content.len(), r.findings.len() + 2);
    assert_eq!(str_of(&content[0], tags::TEXT_VALUE), r.impression);
    for (it, f) in content[1..].iter().zip(&r.findings) {
        assert_eq!(str_of(it, tags::VALUE_TYPE), "TEXT");
        assert_eq!(str_of(it, tags::TEXT_VALUE), sr::finding_text(f));
    }
    let comment = str_of(content.last().unwrap(), tags::TEXT_VALUE);
    assert!(comment.contains("Machine-generated") && comment.contains(&r.bundle_hash));
}

#[test]
fn sr_without_dicom_identity_is_refused_and_skipped() {
    let r = png_report();
    assert!(matches!(
        sr::to_bytes(&r, None),
        Err(OutputError::Sr { .. })
    ));
    let names: Vec<String> = output::render_extra(&r, None)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, [output::FHIR_JSON]);
    let names: Vec<String> = output::render_extra(&sample_report(SOP_UID), None)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, [output::FHIR_JSON, output::SR_DCM]);
    let mut bad_time = sample_report(SOP_UID);
    bad_time.generated_at = "yesterday".into();
    assert!(matches!(
        sr::to_bytes(&bad_time, None),
        Err(OutputError::Sr { .. })
    ));
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        eprintln!("SKIP part: {name} not installed (scripts/apt-test.txt)");
    }
    found
}

/// dcmtk's SR parser and, where installed, dicom3tools' IOD validator.
#[test]
fn sr_parses_with_dcmtk_and_validates_with_dciodvfy() {
    let dir = tempfile::tempdir().unwrap();
    let r = sample_report(SOP_UID);
    let cases = [
        ("with_source.dcm", Some(source_dataset())),
        ("from_study_info.dcm", None),
    ];
    for (name, src) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, sr::to_bytes(&r, src.as_ref()).unwrap()).unwrap();
        if tool("dsrdump") {
            check_dsrdump(&path, &r);
        }
        if Command::new("dciodvfy").arg("-").output().is_ok() {
            let out = Command::new("dciodvfy").arg(&path).output().unwrap();
            let log = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            eprintln!("dciodvfy {name}:\n{log}");
            let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("Error")).collect();
            assert!(errors.is_empty(), "{name}: dciodvfy errors:\n{log}");
            assert!(log.contains("BasicTextSR"), "{name}: {log}");
        } else {
            eprintln!("SKIP part: dciodvfy (dicom3tools) not installed");
        }
    }
}

fn check_dsrdump(path: &Path, r: &Report) {
    let out = Command::new("dsrdump").arg(path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("dsrdump:\n{stdout}{stderr}");
    assert!(out.status.success(), "dsrdump failed: {stderr}");
    assert!(!stderr.contains("E:"), "dsrdump errors: {stderr}");
    assert!(stdout.contains("Basic Text SR Document"), "{stdout}");
    assert!(stdout.contains("Chest X-ray report"), "{stdout}");
    assert!(stdout.contains("UNVERIFIED"), "{stdout}");
    // dsrdump shortens long texts to their first words; those show that it read
    // the content tree.
    assert!(stdout.contains(&r.impression[..20]), "{stdout}");
}
