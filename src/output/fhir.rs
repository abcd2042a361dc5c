//! HL7 FHIR R4 `DiagnosticReport` for one study.
//!
//! The report is self-contained: each finding is a contained `Observation` that
//! the report's `result` points to (`#obs-<key>`), and the model is a contained
//! `Device` that each observation names as its `device`. R4 does not allow a
//! `Device` as a `DiagnosticReport.performer` (Practitioner, Organization, ...
//! only), so the performer is a display-only reference naming the model and the
//! bundle hash, and the device link lives on the observations, where R4 has it.
//! The imaging study is a logical reference by its Study Instance UID, so a
//! server can resolve it against its own `ImagingStudy` without us inventing an
//! id for it.

use serde_json::{json, Value};

use super::OutputError;
use crate::report::{Finding, Report};
use crate::Observation;

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
/// Local code system for the device's observations (their stable keys).
pub const LOCAL_OBSERVATIONS: &str = "urn:cxr-edge:observation";
const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const DEVICE_ID: &str = "device";

/// SNOMED CT concepts for the observations that have an unambiguous one (clinical
/// findings). "Lung opacity", "lung lesion" and "no finding" are CheXpert-style
/// labels without a single matching concept, so they carry only the local code.
fn snomed(o: Observation) -> Option<(&'static str, &'static str)> {
    Some(match o {
        Observation::Cardiomegaly => ("8186001", "Cardiomegaly"),
        Observation::Edema => ("19242006", "Pulmonary edema"),
        Observation::Consolidation => ("95436008", "Lung consolidation"),
        Observation::Pneumonia => ("233604007", "Pneumonia"),
        Observation::Atelectasis => ("46621007", "Atelectasis"),
        Observation::Pneumothorax => ("36118008", "Pneumothorax"),
        Observation::PleuralEffusion => ("60046008", "Pleural effusion"),
        Observation::LungOpacity | Observation::LungLesion | Observation::NoFinding => return None,
    })
}

/// Id of the contained `Observation` for `o` (FHIR ids allow `[A-Za-z0-9-.]`).
pub fn observation_id(o: Observation) -> String {
    format!("obs-{}", o.key().replace('_', "-"))
}

/// The `DiagnosticReport` as a JSON value.
pub fn diagnostic_report(report: &Report) -> Value {
    let subject = subject(report);
    let mut contained: Vec<Value> = Vec::new();
    if !report.findings.is_empty() {
        contained.push(device(report));
    }
    contained.extend(
        report
            .findings
            .iter()
            .map(|f| observation(f, subject.as_ref())),
    );

    let mut dr = json!({
        "resourceType": "DiagnosticReport",
        "text": { "status": "generated", "div": narrative(report) },
        "identifier": [{
            "system": "urn:ietf:rfc:3986",
            "value": format!("urn:oid:{}", super::report_uid(report)),
        }],
        "status": "preliminary",
        "category": [{
            "coding": [
                { "system": V2_0074, "code": "RAD", "display": "Radiology" },
                { "system": LOINC, "code": "LP29684-5", "display": "Radiology" },
            ]
        }],
        "code": {
            "coding": [{ "system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study" }],
            "text": "Chest X-ray report (machine-generated, not verified)",
        },
        "performer": [{
            "display": format!("cxr-edge model {} (bundle sha256 {})", report.model_id, report.bundle_hash),
        }],
        "conclusion": report.impression,
    });
    let obj = dr.as_object_mut().expect("json! object literal");
    if !contained.is_empty() {
        obj.insert("contained".into(), Value::Array(contained));
        let results: Vec<Value> = report
            .findings
            .iter()
            .map(|f| json!({ "reference": format!("#{}", observation_id(f.observation)) }))
            .collect();
        obj.insert("result".into(), Value::Array(results));
    }
    if let Some(s) = subject {
        obj.insert("subject".into(), s);
    }
    if let Some(d) = report
        .study
        .study_date
        .as_deref()
        .and_then(dicom_date_to_fhir)
    {
        obj.insert("effectiveDateTime".into(), Value::String(d));
    }
    if is_instant(&report.generated_at) {
        obj.insert("issued".into(), Value::String(report.generated_at.clone()));
    }
    if let Some(uid) = &report.study.study_instance_uid {
        obj.insert(
            "imagingStudy".into(),
            json!([{
                "type": "ImagingStudy",
                "identifier": { "system": "urn:dicom:uid", "value": format!("urn:oid:{uid}") },
            }]),
        );
    }
    dr
}

/// Pretty JSON bytes of [`diagnostic_report`].
pub fn to_json(report: &Report) -> Result<Vec<u8>, OutputError> {
    let mut bytes = serde_json::to_vec_pretty(&diagnostic_report(report)).map_err(|source| {
        OutputError::Json {
            format: "FHIR DiagnosticReport",
            source,
        }
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The patient as a logical reference (the device has no Patient resource).
fn subject(report: &Report) -> Option<Value> {
    let id = report
        .study
        .patient_id
        .as_deref()
        .filter(|s| !s.trim().is_empty())?;
    let mut s = json!({ "type": "Patient", "identifier": { "value": id.trim() } });
    if let Some(name) = report
        .study
        .patient_name
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        // DICOM PN uses '^' between components; a display string reads better with spaces.
        s["display"] = Value::String(
            name.split('^')
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    Some(s)
}

fn device(report: &Report) -> Value {
    json!({
        "resourceType": "Device",
        "id": DEVICE_ID,
        "deviceName": [{ "name": "cxr-edge", "type": "model-name" }],
        "type": { "text": "Chest X-ray report generator (machine learning)" },
        "version": [
            { "type": { "text": "model id" }, "value": report.model_id },
            { "type": { "text": "bundle sha256" }, "value": report.bundle_hash },
        ],
    })
}

fn observation(f: &Finding, subject: Option<&Value>) -> Value {
    let mut coding = vec![json!({
        "system": LOCAL_OBSERVATIONS,
        "code": f.observation.key(),
        "display": f.observation.display_name(),
    })];
    if let Some((code, display)) = snomed(f.observation) {
        coding.push(json!({ "system": SNOMED, "code": code, "display": display }));
    }
    let (code, display) = if f.flagged {
        ("POS", "Positive")
    } else {
        ("NEG", "Negative")
    };
    let mut obs = json!({
        "resourceType": "Observation",
        "id": observation_id(f.observation),
        "status": "preliminary",
        "category": [{ "coding": [{ "system": OBS_CATEGORY, "code": "imaging", "display": "Imaging" }] }],
        "code": { "coding": coding, "text": f.observation.display_name() },
        "device": { "reference": format!("#{DEVICE_ID}") },
        "valueQuantity": {
            "value": round4(f.score),
            "unit": "score",
            "system": "http://unitsofmeasure.org",
            "code": "1",
        },
        "interpretation": [{ "coding": [{ "system": INTERPRETATION, "code": code, "display": display }] }],
        "referenceRange": [{
            "high": { "value": round4(f.threshold), "system": "http://unitsofmeasure.org", "code": "1" },
            "text": "scores at or above this threshold are flagged",
        }],
    });
    if let Some(p) = f.probability {
        obs["component"] = json!([{
            "code": { "text": "calibrated probability (fitted on validation films)" },
            "valueQuantity": {
                "value": round4(p),
                "unit": "probability",
                "system": "http://unitsofmeasure.org",
                "code": "1",
            },
        }]);
    }
    if let Some(s) = subject {
        obs["subject"] = s.clone();
    }
    obs
}

/// A short XHTML summary, required-in-spirit by FHIR (dom-6) for human readers.
fn narrative(report: &Report) -> String {
    let mut div = String::from("<div xmlns=\"http://www.w3.org/1999/xhtml\">");
    div.push_str(
        "<p><b>Machine-generated preliminary report, not verified by a radiologist.</b></p>",
    );
    div.push_str(&format!(
        "<p>Impression: {}</p>",
        escape(&report.impression)
    ));
    let flagged = report.flagged();
    if !flagged.is_empty() {
        div.push_str("<ul>");
        for f in flagged {
            let number = match f.probability {
                Some(p) => format!("probability {p:.2}"),
                None => format!("score {:.2}", f.score),
            };
            div.push_str(&format!(
                "<li>{} ({number})</li>",
                escape(f.observation.display_name()),
            ));
        }
        div.push_str("</ul>");
    }
    div.push_str("</div>");
    div
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Scores are f32; four decimals avoid printing 0.8299999833106995 for 0.83.
fn round4(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

/// DICOM DA `YYYYMMDD` → FHIR date `YYYY-MM-DD`; anything else is dropped.
fn dicom_date_to_fhir(da: &str) -> Option<String> {
    let da = da.trim();
    (da.len() == 8 && da.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}-{}-{}", &da[..4], &da[4..6], &da[6..]))
}

/// FHIR `instant`: a full date-time with seconds and a time zone.
fn is_instant(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}
