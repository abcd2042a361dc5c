//! One association: DIMSE commands over P-DATA. Command and data fragments are
//! collected until their last fragment; a C-STORE is answered only after the store
//! has kept the instance (or failed to).

use std::net::TcpStream;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use dicom_ul::association::Association;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use thiserror::Error;

use super::{
    accepted_transfer_syntaxes, Instance, InstanceStore, KeepError, Kept, ScpConfig,
    STORAGE_SOP_CLASSES, VERIFICATION,
};

const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
const NO_DATA_SET: u16 = 0x0101;

/// DIMSE status of a C-STORE response (PS3.4 B.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum StoreStatus {
    Success = 0x0000,
    /// Refused: out of resources (disk full, outbox unwritable).
    OutOfResources = 0xA700,
    /// Failure: processing failure (cannot write the instance).
    ProcessingFailure = 0x0110,
    /// Error: data set does not match SOP class / command.
    DataSetMismatch = 0xA900,
    /// Error: cannot understand (unparseable data set).
    CannotUnderstand = 0xC000,
    /// The command itself is not one we provide.
    UnrecognizedOperation = 0x0211,
}

#[derive(Debug, Error)]
pub(super) enum AssociationError {
    #[error("association not established: {0}")]
    Establish(String),
    #[error("receiving from {peer}: {reason}")]
    Receive { peer: String, reason: String },
    #[error("sending to {peer}: {reason}")]
    Send { peer: String, reason: String },
    #[error("from {peer}: malformed DIMSE command: {reason}")]
    BadCommand { peer: String, reason: String },
}

/// The fields of a request command that the response needs.
struct Command {
    field: u16,
    message_id: u16,
    sop_class_uid: String,
    sop_instance_uid: String,
}

fn trimmed(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let s = obj
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_str()
        .ok()?
        .into_owned();
    Some(s.trim_matches(['\0', ' ']).to_string())
}

fn parse_command(bytes: &[u8]) -> Result<Command, String> {
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, &ts).map_err(|e| e.to_string())?;
    let field = obj
        .element(tags::COMMAND_FIELD)
        .map_err(|e| e.to_string())?
        .to_int::<u16>()
        .map_err(|e| e.to_string())?;
    let message_id = obj
        .element_opt(tags::MESSAGE_ID)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(0);
    Ok(Command {
        field,
        message_id,
        sop_class_uid: trimmed(&obj, tags::AFFECTED_SOP_CLASS_UID).unwrap_or_default(),
        sop_instance_uid: trimmed(&obj, tags::AFFECTED_SOP_INSTANCE_UID).unwrap_or_default(),
    })
}

fn response(cmd: &Command, field: u16, status: u16, comment: Option<&str>) -> Vec<u8> {
    let mut elements = vec![
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(cmd.sop_class_uid.as_str()),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(field)),
        DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            PrimitiveValue::from(cmd.message_id),
        ),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            PrimitiveValue::from(NO_DATA_SET),
        ),
        DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(status)),
    ];
    if !cmd.sop_instance_uid.is_empty() {
        elements.push(DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(cmd.sop_instance_uid.as_str()),
        ));
    }
    if let Some(c) = comment {
        // Error Comment is LO: 64 characters at most.
        let c: String = c.chars().take(64).collect();
        elements.push(DataElement::new(
            tags::ERROR_COMMENT,
            VR::LO,
            PrimitiveValue::from(c),
        ));
    }
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a command to memory cannot fail");
    out
}

/// Turn a received data set into a Part 10 instance, and keep it.
fn store_instance(
    cmd: &Command,
    transfer_syntax: &str,
    data: &[u8],
    peer: &str,
    store: &dyn InstanceStore,
) -> (StoreStatus, Option<String>) {
    let Some(ts) = TransferSyntaxRegistry.get(transfer_syntax) else {
        return (
            StoreStatus::CannotUnderstand,
            Some(format!("unknown transfer syntax {transfer_syntax}")),
        );
    };
    let obj = match InMemDicomObject::read_dataset_with_ts(data, ts) {
        Ok(o) => o,
        Err(e) => {
            return (
                StoreStatus::CannotUnderstand,
                Some(format!("bad data set: {e}")),
            )
        }
    };
    let uid = trimmed(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
    let class = trimmed(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
    if uid.is_empty() || uid != cmd.sop_instance_uid || class != cmd.sop_class_uid {
        return (
            StoreStatus::DataSetMismatch,
            Some("SOP Class/Instance UID differ from the command".into()),
        );
    }
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.as_str())
        .media_storage_sop_instance_uid(uid.as_str())
        .transfer_syntax(transfer_syntax)
        .source_application_entity_title(peer)
        .build();
    let meta = match meta {
        Ok(m) => m,
        Err(e) => return (StoreStatus::CannotUnderstand, Some(e.to_string())),
    };
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    if let Err(e) = meta.write(&mut file) {
        return (StoreStatus::CannotUnderstand, Some(e.to_string()));
    }
    file.extend_from_slice(data);
    let instance = Instance {
        sop_class_uid: class,
        sop_instance_uid: uid,
        transfer_syntax: transfer_syntax.to_string(),
        calling_ae_title: peer.to_string(),
        file,
    };
    match store.keep(&instance) {
        Ok(kept) => {
            tracing::info!(peer, sop_instance_uid = %instance.sop_instance_uid,
                duplicate = (kept == Kept::Duplicate), "C-STORE kept");
            (StoreStatus::Success, None)
        }
        Err(e) => {
            tracing::error!(peer, sop_instance_uid = %instance.sop_instance_uid,
                error = %e, "C-STORE refused: cannot keep instance");
            let status = match e {
                KeepError::OutOfResources(_) => StoreStatus::OutOfResources,
                KeepError::Failed(_) => StoreStatus::ProcessingFailure,
            };
            (status, Some(e.to_string()))
        }
    }
}

pub(super) fn serve(
    stream: TcpStream,
    config: &ScpConfig,
    store: &dyn InstanceStore,
) -> Result<(), AssociationError> {
    let mut options = dicom_ul::association::ServerAssociationOptions::new()
        .accept_called_ae_title()
        .ae_title(config.ae_title.as_str())
        .max_pdu_length(config.max_pdu_length)
        .with_abstract_syntax(VERIFICATION);
    for sop in STORAGE_SOP_CLASSES {
        options = options.with_abstract_syntax(sop);
    }
    for ts in accepted_transfer_syntaxes() {
        options = options.with_transfer_syntax(ts);
    }
    let mut assoc = options
        .establish(stream)
        .map_err(|e| AssociationError::Establish(e.to_string()))?;
    let peer = assoc.peer_ae_title().to_string();
    tracing::debug!(peer, contexts = ?assoc.presentation_contexts(), "association established");

    let mut command_buf = Vec::new();
    let mut data_buf = Vec::new();
    let mut pending: Option<Command> = None;
    loop {
        let pdu = assoc.receive().map_err(|e| AssociationError::Receive {
            peer: peer.clone(),
            reason: e.to_string(),
        })?;
        match pdu {
            Pdu::PData { data } => {
                for pdv in data {
                    let reply = match pdv.value_type {
                        PDataValueType::Command => {
                            command_buf.extend_from_slice(&pdv.data);
                            if !pdv.is_last {
                                continue;
                            }
                            let cmd = parse_command(&command_buf).map_err(|reason| {
                                AssociationError::BadCommand {
                                    peer: peer.clone(),
                                    reason,
                                }
                            })?;
                            command_buf.clear();
                            match cmd.field {
                                C_ECHO_RQ => Some(response(&cmd, C_ECHO_RSP, 0, None)),
                                C_STORE_RQ => {
                                    data_buf.clear();
                                    pending = Some(cmd);
                                    None
                                }
                                other => Some(response(
                                    &cmd,
                                    other | 0x8000,
                                    StoreStatus::UnrecognizedOperation as u16,
                                    None,
                                )),
                            }
                        }
                        PDataValueType::Data => {
                            data_buf.extend_from_slice(&pdv.data);
                            if !pdv.is_last {
                                continue;
                            }
                            let Some(cmd) = pending.take() else {
                                return Err(AssociationError::BadCommand {
                                    peer: peer.clone(),
                                    reason: "data set without a C-STORE request".into(),
                                });
                            };
                            let ts = assoc
                                .presentation_contexts()
                                .iter()
                                .find(|pc| pc.id == pdv.presentation_context_id)
                                .map(|pc| pc.transfer_syntax.clone())
                                .unwrap_or_default();
                            let ts = ts.trim_end_matches(['\0', ' ']);
                            let (status, comment) =
                                store_instance(&cmd, ts, &data_buf, &peer, store);
                            data_buf.clear();
                            Some(response(
                                &cmd,
                                C_STORE_RSP,
                                status as u16,
                                comment.as_deref(),
                            ))
                        }
                    };
                    if let Some(bytes) = reply {
                        let pdu = Pdu::PData {
                            data: vec![PDataValue {
                                presentation_context_id: pdv.presentation_context_id,
                                value_type: PDataValueType::Command,
                                is_last: true,
                                data: bytes,
                            }],
                        };
                        assoc.send(&pdu).map_err(|e| AssociationError::Send {
                            peer: peer.clone(),
                            reason: e.to_string(),
                        })?;
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                tracing::debug!(peer, "association released");
                return Ok(());
            }
            Pdu::AbortRQ { source } => {
                tracing::warn!(peer, ?source, "association aborted by peer");
                return Ok(());
            }
            other => {
                tracing::warn!(peer, pdu = %other.short_description(), "unexpected PDU ignored");
            }
        }
    }
}
