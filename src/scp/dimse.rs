//! DIMSE messages: the request commands we read and the responses we write,
//! in Implicit VR Little Endian as PS3.7 requires for command sets.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

pub(super) const C_STORE_RQ: u16 = 0x0001;
pub(super) const C_STORE_RSP: u16 = 0x8001;
pub(super) const C_ECHO_RQ: u16 = 0x0030;
pub(super) const C_ECHO_RSP: u16 = 0x8030;
const NO_DATA_SET: u16 = 0x0101;

/// DIMSE status of a C-STORE response (PS3.4 B.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum StoreStatus {
    Success = 0x0000,
    /// Refused: out of resources (disk full, outbox unwritable, instance
    /// over `max_instance_bytes`).
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

/// The fields of a request command that the response needs.
#[derive(Debug)]
pub(super) struct Command {
    pub field: u16,
    pub message_id: u16,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

pub(super) fn trimmed(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    crate::input::dicom::element_text(obj, tag)
}

/// Every element length of an Implicit VR Little Endian command set checked
/// against the bytes present, because dicom-parser allocates a declared length
/// before reading it. Command sets hold no sequences, so no undefined lengths.
fn check_command_lengths(mut bytes: &[u8]) -> Result<(), String> {
    while !bytes.is_empty() {
        let header = bytes.get(..8).ok_or("truncated element header")?;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let rest = &bytes[8..];
        if len > rest.len() {
            return Err(format!(
                "element declares {len} bytes, {} left in the command",
                rest.len()
            ));
        }
        bytes = &rest[len..];
    }
    Ok(())
}

pub(super) fn parse_command(bytes: &[u8]) -> Result<Command, String> {
    check_command_lengths(bytes)?;
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

pub(super) fn response(cmd: &Command, field: u16, status: u16, comment: Option<&str>) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_declaring_more_than_it_holds_is_refused() {
        let cmd = Command {
            field: C_ECHO_RQ,
            message_id: 7,
            sop_class_uid: super::super::VERIFICATION.into(),
            sop_instance_uid: String::new(),
        };
        let bytes = response(&cmd, C_ECHO_RQ, 0, None);
        assert_eq!(parse_command(&bytes).unwrap().field, C_ECHO_RQ);
        let mut lying = bytes.clone();
        lying.extend_from_slice(&[0x00, 0x00, 0x00, 0x09, 0xF0, 0xFF, 0xFF, 0x7F]);
        let e = parse_command(&lying).unwrap_err();
        assert!(e.contains("declares 2147483632 bytes"), "{e}");
    }
}
