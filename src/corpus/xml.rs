//! One Open-i `ecgen-radiology` report file → [`Study`], through quick-xml's serde
//! deserializer. Only the elements we use are declared; serde skips the rest (author
//! lists, image features), so the schema stays readable and unknown additions to the
//! format do not break loading.

use serde::Deserialize;

use super::{ImageRef, Study};

#[derive(Deserialize)]
struct ECitation {
    #[serde(rename = "uId")]
    uid: Option<IdAttr>,
    #[serde(rename = "MedlineCitation")]
    medline: Option<MedlineCitation>,
    #[serde(rename = "MeSH", default)]
    mesh: Option<Mesh>,
    #[serde(rename = "parentImage", default)]
    images: Vec<IdAttr>,
}

#[derive(Deserialize)]
struct IdAttr {
    #[serde(rename = "@id")]
    id: String,
}

#[derive(Deserialize)]
struct MedlineCitation {
    #[serde(rename = "Article")]
    article: Option<Article>,
}

#[derive(Deserialize)]
struct Article {
    #[serde(rename = "Abstract")]
    abstract_: Option<Abstract>,
}

#[derive(Deserialize)]
struct Abstract {
    #[serde(rename = "AbstractText", default)]
    texts: Vec<AbstractText>,
}

#[derive(Deserialize)]
struct AbstractText {
    #[serde(rename = "@Label")]
    label: Option<String>,
    #[serde(rename = "$text", default)]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct Mesh {
    #[serde(default)]
    major: Vec<String>,
    #[serde(default)]
    automatic: Vec<String>,
}

/// Parse one report. The error string describes the problem; the caller adds the
/// file name.
pub(super) fn parse(bytes: &[u8]) -> Result<Study, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("empty file".into());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    check_balanced(text)?;
    let doc: ECitation =
        quick_xml::de::from_str(text).map_err(|e| format!("not an ecgen-radiology report: {e}"))?;
    let uid = doc
        .uid
        .map(|u| u.id.trim().to_string())
        .filter(|u| !u.is_empty())
        .ok_or("no <uId id=...> element")?;
    let mut study = Study::new(uid);
    let texts = doc
        .medline
        .and_then(|m| m.article)
        .and_then(|a| a.abstract_)
        .map(|a| a.texts)
        .unwrap_or_default();
    for t in texts {
        let value = super::clean_section(t.text.as_deref());
        let slot = match t.label.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("COMPARISON") => &mut study.comparison,
            Some("INDICATION") => &mut study.indication,
            Some("FINDINGS") => &mut study.findings,
            Some("IMPRESSION") => &mut study.impression,
            _ => continue,
        };
        *slot = value;
    }
    let mesh = doc.mesh.unwrap_or_default();
    study.mesh_major = clean_terms(mesh.major);
    study.mesh_automatic = clean_terms(mesh.automatic);
    study.images = doc
        .images
        .into_iter()
        .map(|i| ImageRef {
            id: i.id.trim().to_string(),
            path: None,
        })
        .filter(|i| !i.id.is_empty())
        .collect();
    Ok(study)
}

fn clean_terms(terms: Vec<String>) -> Vec<String> {
    terms
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// quick-xml's deserializer accepts a document cut short after the elements it
/// needed, so a truncated file would load with silently missing images. Walk the
/// events once and require every opened element to be closed.
fn check_balanced(text: &str) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut open: Vec<String> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => open.push(String::from_utf8_lossy(e.name().as_ref()).into()),
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "malformed XML at byte {}: {e}",
                    reader.error_position()
                ))
            }
        }
    }
    match open.last() {
        None => Ok(()),
        Some(name) => Err(format!("truncated: <{name}> is never closed")),
    }
}
