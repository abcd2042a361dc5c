//! A C-STORE service class user on `dicom-ul`: one association per batch of
//! objects, the presentation contexts made from what the batch holds, each
//! object sent in its own transfer syntax (or, if the peer takes only another
//! uncompressed one, re-encoded to it), and each C-STORE-RSP status read and
//! classified ([`classify`]). Connecting and every network read and write are
//! bounded by the destination's `timeout_s`, so a peer that hangs costs one
//! timeout, never the unit.

use std::borrow::Cow;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use dicom_ul::association::client::{ClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{AssociationRJResult, PDataValue, PDataValueType, Pdu};
use std::io::Write;
use thiserror::Error;

use super::config::ForwardConfig;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
/// Longest C-STORE response command accepted (a few hundred bytes normally).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What a C-STORE response status means for the queue (PS3.4 B.2.3, PS3.7 C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// Stored (0000), stored with a warning (0001, B000–BFFF), or already
    /// there (0111 Duplicate SOP Instance: a retry of a delivery whose
    /// response was lost): the archive has it.
    Stored,
    /// Out of resources (A700–A7FF), processing failure (0110), resource
    /// limitation (0213): may change; retried, and parked only when it keeps
    /// refusing this study alone (see `deliver.rs`).
    Busy,
    /// Any other failure (A900 data set does not match, C000 cannot
    /// understand, 0122 SOP class not supported, 0124 not authorised, …):
    /// will not change; the study is parked.
    Refused,
}

pub fn classify(status: u16) -> StatusClass {
    match status {
        0x0000 | 0x0001 | 0x0111 | 0xB000..=0xBFFF => StatusClass::Stored,
        0xA700..=0xA7FF | 0x0110 | 0x0213 => StatusClass::Busy,
        _ => StatusClass::Refused,
    }
}

/// Why a batch could not be sent: what the queue does about it.
#[derive(Debug, Error)]
pub enum LinkError {
    /// Unreachable, timed out, rejected for now, aborted: try again later.
    #[error("{0}")]
    Transient(String),
    /// The peer rejects the association for good or accepts none of what we
    /// offer: a configuration problem, retried slowly; no study is parked.
    #[error("{0}")]
    Misconfigured(String),
}

/// One object to send: a DICOM file of the store, with what it is for logs.
#[derive(Debug, Clone)]
pub struct Object {
    pub what: &'static str,
    pub path: PathBuf,
}

/// What the peer said to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub class: StatusClass,
    /// The DIMSE status, `None` when the object never went out (see `detail`).
    pub status: Option<u16>,
    pub detail: String,
}

/// The header fields that negotiation and the C-STORE request need.
#[derive(Debug, Clone)]
pub struct Header {
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
}

fn read_header(path: &Path) -> Result<Header, String> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let meta = obj.meta();
    let clean = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();
    Ok(Header {
        sop_class: clean(meta.media_storage_sop_class_uid()),
        sop_instance: clean(meta.media_storage_sop_instance_uid()),
        transfer_syntax: clean(meta.transfer_syntax()),
    })
}

fn is_uncompressed(ts: &str) -> bool {
    ts == EXPLICIT_LE || ts == IMPLICIT_LE
}

/// An open association to one peer.
pub struct Link {
    assoc: ClientAssociation<TcpStream>,
    message_id: u16,
}

/// Read the headers of `objects` (an unreadable one is answered `Refused`
/// at once) and open an association proposing what they need.
pub fn connect(
    peer: &ForwardConfig,
    objects: &[Object],
) -> Result<(Link, Vec<Result<Header, String>>), LinkError> {
    let headers: Vec<Result<Header, String>> =
        objects.iter().map(|o| read_header(&o.path)).collect();
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .flatten()
        .map(|h| (h.sop_class.clone(), h.transfer_syntax.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    pairs.truncate(127);
    if pairs.is_empty() {
        pairs.push((
            crate::scp::VERIFICATION.to_string(),
            IMPLICIT_LE.to_string(),
        ));
    }
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(peer.calling_ae_title.trim().to_string())
        .called_ae_title(peer.ae_title.trim().to_string())
        .connection_timeout(peer.timeout())
        .read_timeout(peer.timeout())
        .write_timeout(peer.timeout());
    for (sop, ts) in &pairs {
        let mut syntaxes: Vec<Cow<'static, str>> = vec![ts.clone().into()];
        for extra in [EXPLICIT_LE, IMPLICIT_LE] {
            if ts != extra {
                syntaxes.push(extra.into());
            }
        }
        options = options.with_presentation_context(Cow::from(sop.clone()), syntaxes);
    }
    let mut assoc = options
        .establish((peer.host.as_str(), peer.port))
        .map_err(|e| link_error(peer, e))?;
    // Each C-STORE ends in a short write followed by a wait for the answer:
    // without this, Nagle's algorithm can hold that write for a delayed ACK.
    let _ = assoc.inner_stream().set_nodelay(true);
    Ok((
        Link {
            assoc,
            message_id: 0,
        },
        headers,
    ))
}

fn link_error(peer: &ForwardConfig, e: dicom_ul::association::Error) -> LinkError {
    use dicom_ul::association::Error as E;
    let at = peer.address();
    match &e {
        E::Rejected { association_rj, .. } => {
            let text = format!("{at}: association rejected ({})", association_rj.source);
            match association_rj.result {
                AssociationRJResult::Permanent => LinkError::Misconfigured(text),
                AssociationRJResult::Transient => LinkError::Transient(text),
            }
        }
        E::NoAcceptedPresentationContexts { .. } => LinkError::Misconfigured(format!(
            "{at}: the peer accepts none of the SOP classes and transfer syntaxes offered"
        )),
        _ => LinkError::Transient(format!("{at}: {}", error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl Link {
    /// C-STORE one object whose header is `header`; a broken link is an `Err`
    /// (the rest of the batch waits for the next try).
    pub fn store(&mut self, object: &Object, header: &Header) -> Result<Answer, LinkError> {
        let Some((pc, ts)) = self.context_for(header) else {
            return Ok(Answer {
                class: StatusClass::Refused,
                status: None,
                detail: format!(
                    "{} (SOP class {}, transfer syntax {}): the peer accepted no presentation \
                     context the unit can send it in",
                    object.what, header.sop_class, header.transfer_syntax
                ),
            });
        };
        let data = match encode(&object.path, &ts) {
            Ok(d) => d,
            Err(detail) => {
                return Ok(Answer {
                    class: StatusClass::Refused,
                    status: None,
                    detail,
                })
            }
        };
        self.message_id = self.message_id.wrapping_add(1);
        let command = store_request(header, self.message_id);
        let broken = |e: &dyn std::error::Error| LinkError::Transient(error_chain(e));
        self.assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: command,
                }],
            })
            .map_err(|e| broken(&e))?;
        let mut writer = self.assoc.send_pdata(pc);
        writer.write_all(&data).map_err(|e| broken(&e))?;
        writer.finish().map_err(|e| broken(&e))?;
        let (status, comment) = self.response()?;
        Ok(Answer {
            class: classify(status),
            status: Some(status),
            detail: format!(
                "{} {}: status 0x{status:04X}{}",
                object.what,
                header.sop_instance,
                comment.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        })
    }

    /// The accepted context for `header`: one in its own transfer syntax,
    /// else one in an uncompressed syntax when it is uncompressed itself.
    fn context_for(&self, header: &Header) -> Option<(u8, String)> {
        let contexts = self.assoc.presentation_contexts();
        let ts_of = |pc: &dicom_ul::pdu::PresentationContextNegotiated| {
            pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_string()
        };
        let same_class = || {
            contexts
                .iter()
                .filter(|pc| pc.abstract_syntax.trim_end_matches(['\0', ' ']) == header.sop_class)
        };
        same_class()
            .find(|pc| ts_of(pc) == header.transfer_syntax)
            .or_else(|| {
                same_class().find(|pc| {
                    is_uncompressed(&header.transfer_syntax) && is_uncompressed(&ts_of(pc))
                })
            })
            .map(|pc| (pc.id, ts_of(pc)))
    }

    /// Wait for the C-STORE response; its status and error comment.
    fn response(&mut self) -> Result<(u16, Option<String>), LinkError> {
        let mut command = Vec::new();
        loop {
            let pdu = self.assoc.receive().map_err(|e| {
                LinkError::Transient(format!("waiting for the response: {}", error_chain(&e)))
            })?;
            let Pdu::PData { data } = pdu else {
                return Err(LinkError::Transient(format!(
                    "waiting for the response, got {}",
                    pdu.short_description()
                )));
            };
            for pdv in data {
                if pdv.value_type != PDataValueType::Command {
                    continue;
                }
                command.extend_from_slice(&pdv.data);
                if command.len() > MAX_RESPONSE_BYTES {
                    return Err(LinkError::Transient("response command too long".into()));
                }
                if pdv.is_last {
                    return parse_response(&command).map_err(LinkError::Transient);
                }
            }
        }
    }

    /// Release the association (errors only mean the peer went first).
    pub fn release(self) {
        let _ = self.assoc.release();
    }
}

/// The data set of the file at `path` in the transfer syntax `ts`.
fn encode(path: &Path, ts: &str) -> Result<Vec<u8>, String> {
    let obj = dicom_object::open_file(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let syntax = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| format!("transfer syntax {ts} is not supported by this build"))?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, syntax)
        .map_err(|e| format!("{}: cannot encode in {ts}: {e}", path.display()))?;
    Ok(out)
}

fn store_request(header: &Header, message_id: u16) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(header.sop_class.as_str()),
        ),
        DataElement::new(
            tags::COMMAND_FIELD,
            VR::US,
            PrimitiveValue::from(C_STORE_RQ),
        ),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
        DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0u16)),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(header.sop_instance.as_str()),
        ),
    ]);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a command to memory cannot fail");
    out
}

fn parse_response(bytes: &[u8]) -> Result<(u16, Option<String>), String> {
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, &ts)
        .map_err(|e| format!("malformed response: {e}"))?;
    let int = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u16>().ok())
    };
    if int(tags::COMMAND_FIELD) != Some(C_STORE_RSP) {
        return Err("the response is not a C-STORE-RSP".into());
    }
    let status = int(tags::STATUS).ok_or("the response has no status")?;
    let comment = crate::input::dicom::element_text(&obj, tags::ERROR_COMMENT);
    Ok((status, comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_ps3_4_says() {
        use StatusClass::*;
        for (status, class) in [
            (0x0000, Stored),
            (0xB000, Stored),
            (0xB007, Stored),
            (0x0111, Stored),
            (0xA700, Busy),
            (0xA7FF, Busy),
            (0x0110, Busy),
            (0xA900, Refused),
            (0xC000, Refused),
            (0x0122, Refused),
            (0x0124, Refused),
        ] {
            assert_eq!(classify(status), class, "0x{status:04X}");
        }
    }

    #[test]
    fn a_response_round_trips() {
        let rsp = InMemDicomObject::command_from_element_iter([
            DataElement::new(
                tags::COMMAND_FIELD,
                VR::US,
                PrimitiveValue::from(C_STORE_RSP),
            ),
            DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(0xA700u16)),
            DataElement::new(
                tags::ERROR_COMMENT,
                VR::LO,
                PrimitiveValue::from("disk full"),
            ),
        ]);
        let mut bytes = Vec::new();
        rsp.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        assert_eq!(
            parse_response(&bytes).unwrap(),
            (0xA700, Some("disk full".into()))
        );
        let header = Header {
            sop_class: "1.2.3".into(),
            sop_instance: "4.5.6".into(),
            transfer_syntax: EXPLICIT_LE.into(),
        };
        let e = parse_response(&store_request(&header, 1)).unwrap_err();
        assert!(e.contains("not a C-STORE-RSP"), "{e}");
    }
}
