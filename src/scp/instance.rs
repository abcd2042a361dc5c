//! One C-STORE's data set as it arrives: written straight after a file meta
//! group built from the request, so the received bytes are held once, and
//! never more than `max_instance_bytes` of them. Once whole, its lengths are
//! checked, its UIDs compared with the request, and it is handed to the store.

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileMetaTableBuilder, OpenFileOptions};

use super::dimse::{trimmed, Command, StoreStatus};
use super::{Instance, InstanceStore, KeepError, Kept};
use crate::input::dicom_lengths;

/// A failure to answer once the data set has been read (or skipped).
type Refusal = (StoreStatus, String);

enum Body {
    /// Preamble, `DICM`, meta group, then the data set received so far.
    Buffering(Vec<u8>),
    /// Not kept: the rest of the data set is read and dropped.
    Skipping(Refusal),
}

/// A C-STORE request whose data set is being received.
pub(super) struct Incoming {
    cmd: Command,
    transfer_syntax: String,
    body: Body,
    received: u64,
    max: u64,
}

impl Incoming {
    pub fn start(cmd: Command, transfer_syntax: &str, peer: &str, max: u64) -> Incoming {
        let body = match file_start(&cmd, transfer_syntax, peer) {
            Ok(file) => Body::Buffering(file),
            Err(e) => Body::Skipping((StoreStatus::CannotUnderstand, e)),
        };
        Incoming {
            cmd,
            transfer_syntax: transfer_syntax.to_string(),
            body,
            received: 0,
            max,
        }
    }

    /// Add a fragment of the data set.
    pub fn push(&mut self, data: &[u8]) {
        self.received += data.len() as u64;
        if let Body::Buffering(file) = &mut self.body {
            if self.received > self.max {
                let why = format!("instance over the {} byte limit", self.max);
                self.body = Body::Skipping((StoreStatus::OutOfResources, why));
            } else {
                file.extend_from_slice(data);
            }
        }
    }

    /// The whole data set is in: check it, keep it, say how it went (with
    /// the request, for the response).
    pub fn finish(
        self,
        peer: &str,
        store: &dyn InstanceStore,
    ) -> (Command, StoreStatus, Option<String>) {
        let (status, comment) = match self.body {
            Body::Skipping((status, why)) => {
                tracing::warn!(peer, sop_instance_uid = %self.cmd.sop_instance_uid,
                    bytes = self.received, "C-STORE refused: {why}");
                (status, Some(why))
            }
            Body::Buffering(file) => match check(&self.cmd, &file, self.max) {
                Err((status, why)) => {
                    tracing::warn!(peer, sop_instance_uid = %self.cmd.sop_instance_uid,
                        "C-STORE refused: {why}");
                    (status, Some(why))
                }
                Ok(()) => {
                    let instance = Instance {
                        sop_class_uid: self.cmd.sop_class_uid.clone(),
                        sop_instance_uid: self.cmd.sop_instance_uid.clone(),
                        transfer_syntax: self.transfer_syntax,
                        calling_ae_title: peer.to_string(),
                        file,
                    };
                    keep(&instance, peer, store)
                }
            },
        };
        (self.cmd, status, comment)
    }
}

/// Preamble, `DICM` and the file meta group, from the request's UIDs.
fn file_start(cmd: &Command, transfer_syntax: &str, peer: &str) -> Result<Vec<u8>, String> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(cmd.sop_class_uid.as_str())
        .media_storage_sop_instance_uid(cmd.sop_instance_uid.as_str())
        .transfer_syntax(transfer_syntax)
        .source_application_entity_title(peer)
        .build()
        .map_err(|e| format!("cannot build a file meta group: {e}"))?;
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    meta.write(&mut file)
        .map_err(|e| format!("cannot write a file meta group: {e}"))?;
    Ok(file)
}

/// Lengths within the bytes present, header readable, UIDs as in the request.
fn check(cmd: &Command, file: &[u8], max: u64) -> Result<(), Refusal> {
    let cannot = |why: String| (StoreStatus::CannotUnderstand, why);
    dicom_lengths::check(file, max).map_err(|e| cannot(format!("bad data set: {e}")))?;
    let header = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(file)
        .map_err(|e| cannot(format!("bad data set: {e}")))?;
    let uid = trimmed(&header, tags::SOP_INSTANCE_UID).unwrap_or_default();
    let class = trimmed(&header, tags::SOP_CLASS_UID).unwrap_or_default();
    if uid.is_empty() || uid != cmd.sop_instance_uid || class != cmd.sop_class_uid {
        return Err((
            StoreStatus::DataSetMismatch,
            "SOP Class/Instance UID differ from the command".into(),
        ));
    }
    Ok(())
}

fn keep(
    instance: &Instance,
    peer: &str,
    store: &dyn InstanceStore,
) -> (StoreStatus, Option<String>) {
    match store.keep(instance) {
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
