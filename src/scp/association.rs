//! One association: negotiation (our called AE title, the allow-list, the
//! SOP classes and transfer syntaxes we take), then DIMSE commands over
//! P-DATA. A C-STORE is answered only after the store has kept the instance
//! (or failed to). The watchdog shuts the socket down when the peer stalls or
//! the association outlives its deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use dicom_ul::association::server::{DefaultNegotiation, ServerAssociation};
use dicom_ul::association::{Association, CloseSocket, ServerAssociationOptions};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextNegotiated};
use thiserror::Error;

use super::accept::Shared;
use super::allow::Gate;
use super::dimse::{
    parse_command, response, StoreStatus, C_ECHO_RQ, C_ECHO_RSP, C_STORE_RQ, C_STORE_RSP,
};
use super::instance::Incoming;
use super::watchdog::{Expired, Watch};
use super::{accepted_transfer_syntaxes, STORAGE_SOP_CLASSES, VERIFICATION};

/// Longest command set accepted (a C-STORE request is a few hundred bytes).
const MAX_COMMAND_BYTES: usize = 64 * 1024;

#[derive(Debug, Error)]
pub(super) enum AssociationError {
    #[error("association not established: {0}")]
    Establish(String),
    #[error("receiving: {0}")]
    Receive(String),
    #[error("sending: {0}")]
    Send(String),
    #[error("malformed DIMSE command: {0}")]
    BadCommand(String),
}

impl AssociationError {
    fn kind(&self) -> &'static str {
        match self {
            AssociationError::Establish(_) => "association not established",
            AssociationError::Receive(_) => "association ended: receive failed",
            AssociationError::Send(_) => "association ended: send failed",
            AssociationError::BadCommand(_) => "association ended: malformed DIMSE command",
        }
    }
}

/// Serve one connection to its end; errors are logged, rate-limited per peer.
pub(super) fn serve_stream(stream: TcpStream, peer: SocketAddr, shared: &Shared, watch: &Watch) {
    let ip = peer.ip().to_string();
    let result = serve(stream, &ip, shared, watch);
    let what = match (&result, watch.expired()) {
        (_, Some(Expired::Idle)) => "association closed: idle timeout",
        (_, Some(Expired::Deadline)) => "association closed: association deadline",
        (Err(AssociationError::Establish(e)), None) if e.contains("rejected") => return,
        (Err(e), None) => e.kind(),
        (Ok(()), None) => return,
    };
    let detail = result.err().map(|e| e.to_string()).unwrap_or_default();
    shared.log.warn(&ip, ("", ""), what, &detail);
}

fn options<'a>(
    ip: &str,
    shared: &'a Shared,
) -> ServerAssociationOptions<'a, Gate<'a>, DefaultNegotiation> {
    let config = &shared.config;
    let idle = Duration::from_secs(config.idle_timeout_s);
    let gate = Gate {
        config,
        peer: ip.to_string(),
        log: &shared.log,
    };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(gate)
        .ae_title(config.ae_title.as_str())
        .max_pdu_length(config.max_pdu_length)
        // establish() replaces the socket's timeouts with these.
        .read_timeout(idle)
        .write_timeout(idle)
        .with_abstract_syntax(VERIFICATION);
    for sop in STORAGE_SOP_CLASSES {
        options = options.with_abstract_syntax(sop);
    }
    for ts in accepted_transfer_syntaxes() {
        options = options.with_transfer_syntax(ts);
    }
    options
}

fn not_established(e: dicom_ul::association::Error) -> AssociationError {
    AssociationError::Establish(e.to_string())
}

fn serve(
    stream: TcpStream,
    ip: &str,
    shared: &Shared,
    watch: &Watch,
) -> Result<(), AssociationError> {
    #[cfg(feature = "tls")]
    let tls = shared.tls.is_some();
    #[cfg(not(feature = "tls"))]
    let tls = false;
    super::first_message::wait_whole(&stream, tls)
        .map_err(|e| AssociationError::Establish(format!("no whole request: {e}")))?;
    let options = options(ip, shared);
    #[cfg(feature = "tls")]
    if let Some(tls) = &shared.tls {
        let assoc = options
            .tls_config(tls.clone())
            .establish_tls(stream)
            .map_err(not_established)?;
        return converse(assoc, shared, watch);
    }
    let assoc = options.establish(stream).map_err(not_established)?;
    converse(assoc, shared, watch)
}

/// Answer DIMSE requests until the peer releases or aborts.
fn converse<S: Read + Write + CloseSocket>(
    mut assoc: ServerAssociation<S>,
    shared: &Shared,
    watch: &Watch,
) -> Result<(), AssociationError> {
    let peer = assoc.peer_ae_title().to_string();
    tracing::debug!(peer, contexts = ?assoc.presentation_contexts(), "association established");
    let mut state = Dimse::default();
    loop {
        watch.waiting();
        let pdu = assoc
            .receive()
            .map_err(|e| AssociationError::Receive(e.to_string()));
        watch.working();
        match pdu? {
            Pdu::PData { data } => {
                for pdv in data {
                    let pc = pdv.presentation_context_id;
                    let contexts = assoc.presentation_contexts();
                    let Some(bytes) = state.take(pdv, contexts, &peer, shared)? else {
                        continue;
                    };
                    let pdu = Pdu::PData {
                        data: vec![PDataValue {
                            presentation_context_id: pc,
                            value_type: PDataValueType::Command,
                            is_last: true,
                            data: bytes,
                        }],
                    };
                    watch.waiting();
                    assoc
                        .send(&pdu)
                        .map_err(|e| AssociationError::Send(e.to_string()))?;
                    watch.working();
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

/// The DIMSE message being assembled from P-DATA fragments.
#[derive(Default)]
struct Dimse {
    command: Vec<u8>,
    store: Option<Incoming>,
}

impl Dimse {
    /// Take one fragment; returns the response to send, if one is due.
    fn take(
        &mut self,
        pdv: PDataValue,
        contexts: &[PresentationContextNegotiated],
        peer: &str,
        shared: &Shared,
    ) -> Result<Option<Vec<u8>>, AssociationError> {
        if pdv.value_type == PDataValueType::Data {
            let Some(incoming) = self.store.as_mut() else {
                return Err(AssociationError::BadCommand(
                    "data set without a C-STORE request".into(),
                ));
            };
            incoming.push(&pdv.data);
            if !pdv.is_last {
                return Ok(None);
            }
            let incoming = self.store.take().expect("checked above");
            let (cmd, status, comment) = incoming.finish(peer, &*shared.store);
            let rsp = response(&cmd, C_STORE_RSP, status as u16, comment.as_deref());
            return Ok(Some(rsp));
        }
        if self.command.len() + pdv.data.len() > MAX_COMMAND_BYTES {
            return Err(AssociationError::BadCommand(format!(
                "command set over {MAX_COMMAND_BYTES} bytes"
            )));
        }
        self.command.extend_from_slice(&pdv.data);
        if !pdv.is_last {
            return Ok(None);
        }
        let cmd = parse_command(&self.command).map_err(AssociationError::BadCommand)?;
        self.command.clear();
        Ok(match cmd.field {
            C_ECHO_RQ => Some(response(&cmd, C_ECHO_RSP, 0, None)),
            C_STORE_RQ => {
                let ts = contexts
                    .iter()
                    .find(|pc| pc.id == pdv.presentation_context_id)
                    .map(|pc| pc.transfer_syntax.trim_end_matches(['\0', ' ']).to_string())
                    .unwrap_or_default();
                let max = shared.config.max_instance_bytes;
                self.store = Some(Incoming::start(cmd, &ts, peer, max));
                None
            }
            other => Some(response(
                &cmd,
                other | 0x8000,
                StoreStatus::UnrecognizedOperation as u16,
                None,
            )),
        })
    }
}
