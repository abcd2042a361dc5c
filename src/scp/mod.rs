//! The DICOM receiver: a C-STORE and C-ECHO service class provider on `dicom-ul`,
//! one thread per association, at most `max_associations` of them. An instance
//! is handed to an [`InstanceStore`], which must keep it durably before the
//! C-STORE success goes back to the modality; if it cannot, the modality gets a
//! failure status and keeps its copy.
//!
//! Who may associate ([`allow`]): our called AE title, and the calling AE titles
//! and peer addresses of the allow-list when one is set. Limits that hold
//! whatever a peer sends: concurrent associations ([`accept`]), an idle timeout
//! per PDU and a deadline per association ([`watchdog`]), the instance size
//! ([`instance`]), the PDU length (dicom-ul refuses a longer one from its
//! header, before allocating), the command set size.
//!
//! Accepted SOP classes: CR, DX for presentation, Secondary Capture,
//! Verification. DX for processing (raw detector data, not meant to be looked
//! at) and every other class are refused at negotiation: the presentation
//! context is rejected (abstract syntax not supported), so the sender says so
//! and keeps its copy. Transfer syntaxes: those in [`PROPOSED_TRANSFER_SYNTAXES`]
//! that this build can decode ([`crate::input::dicom::can_decode`]); JPEG-LS is not
//! among them (dicom-rs decodes it only with its C++ CharLS feature), nor 12-bit
//! lossy JPEG, so a modality falls back to another syntax it proposed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::retry::{Backoff, LogLimiter};

mod accept;
pub mod allow;
mod association;
mod config;
mod dimse;
mod fd_limit;
mod first_message;
mod instance;
mod listen;
#[cfg(feature = "tls")]
mod tls;
mod watchdog;

/// A connected loopback socket pair (server side, client side) for the unit tests.
#[cfg(test)]
fn socket_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (l.accept().unwrap().0, c)
}

pub use allow::PeerNet;
pub(crate) use config::check_ae_title;
pub use config::{ScpConfig, TlsConfig};
pub use dimse::StoreStatus;
pub use fd_limit::{raise_fd_limit, WANTED_OPEN_FILES};

pub const VERIFICATION: &str = "1.2.840.10008.1.1";
pub const CR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
pub const DX_PRESENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1.1";
pub const DX_PROCESSING_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1.1.1";
pub const SECONDARY_CAPTURE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// Storage SOP classes accepted: those a chest report can be made from.
pub const STORAGE_SOP_CLASSES: [&str; 3] = [
    CR_IMAGE_STORAGE,
    DX_PRESENTATION_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
];

/// Transfer syntaxes offered, in our order of preference when a modality proposes
/// several in one presentation context (dicom-ul takes the proposer's order).
pub const PROPOSED_TRANSFER_SYNTAXES: [&str; 10] = [
    "1.2.840.10008.1.2.1",    // Explicit VR Little Endian
    "1.2.840.10008.1.2",      // Implicit VR Little Endian
    "1.2.840.10008.1.2.4.70", // JPEG Lossless, first-order prediction
    "1.2.840.10008.1.2.4.57", // JPEG Lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.5",    // RLE Lossless
    "1.2.840.10008.1.2.4.50", // JPEG Baseline (8-bit lossy)
    "1.2.840.10008.1.2.4.80", // JPEG-LS lossless: only with the charls feature
    "1.2.840.10008.1.2.4.51", // JPEG Extended 12-bit: never (see input::dicom)
];

/// The transfer syntaxes the SCP accepts in this build.
pub fn accepted_transfer_syntaxes() -> Vec<&'static str> {
    PROPOSED_TRANSFER_SYNTAXES
        .iter()
        .copied()
        .filter(|ts| crate::input::dicom::can_decode(ts))
        .collect()
}

/// One received instance, as a DICOM Part 10 file.
#[derive(Debug, Clone)]
pub struct Instance {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax: String,
    pub calling_ae_title: String,
    /// Preamble, `DICM`, file meta group and the data set exactly as received.
    pub file: Vec<u8>,
}

/// What the store did with an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Newly kept, durably.
    New,
    /// Already kept (same SOP Instance UID): acknowledged again, kept once.
    Duplicate,
}

/// Why the store could not keep an instance; the modality gets a failure status.
#[derive(Debug, Error)]
pub enum KeepError {
    /// Disk full, unwritable outbox, I/O error: DICOM status A700.
    #[error("out of resources: {0}")]
    OutOfResources(String),
    /// Any other failure to keep it: DICOM status 0110 (processing failure).
    #[error("cannot keep instance: {0}")]
    Failed(String),
}

/// Durable storage for received instances. `keep` returns only once the instance
/// would survive a power cut (written and fsynced), and is idempotent by SOP
/// Instance UID.
pub trait InstanceStore: Send + Sync {
    fn keep(&self, instance: &Instance) -> Result<Kept, KeepError>;
}

impl<T: InstanceStore + ?Sized> InstanceStore for Arc<T> {
    fn keep(&self, instance: &Instance) -> Result<Kept, KeepError> {
        (**self).keep(instance)
    }
}

/// The durable store: an instance is in its inbox, fsynced, before `keep` returns.
impl InstanceStore for crate::store::Store {
    fn keep(&self, instance: &Instance) -> Result<Kept, KeepError> {
        match self.accept(&instance.sop_instance_uid, &instance.file, "dcm") {
            Ok(crate::store::Accepted::New(_)) => Ok(Kept::New),
            Ok(crate::store::Accepted::Duplicate(_)) => Ok(Kept::Duplicate),
            Err(e) if e.is_out_of_space() => Err(KeepError::OutOfResources(e.to_string())),
            Err(e) => Err(KeepError::Failed(e.to_string())),
        }
    }
}

/// How long accepting must go without a failure before the receiver says it
/// has recovered (and would log the next failure at once).
const RECOVERED_AFTER: Duration = Duration::from_secs(60);

/// A bound, not yet running, receiver.
pub struct Scp {
    listener: TcpListener,
    config: ScpConfig,
    store: Arc<dyn InstanceStore>,
    tls: TlsServer,
}

/// The TLS server settings when `[dicom.tls]` is set (and built in).
#[cfg(feature = "tls")]
type TlsServer = Option<Arc<rustls::ServerConfig>>;
#[cfg(not(feature = "tls"))]
type TlsServer = Option<std::convert::Infallible>;

/// A running receiver; [`shutdown`](ScpHandle::shutdown) stops accepting and
/// waits for the accept loop (open associations finish on their own threads).
pub struct ScpHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Scp {
    /// Bind the listening socket. An address on no interface yet is bound
    /// all the same (see [`listen`]), with a warning.
    pub fn bind(config: ScpConfig, store: Arc<dyn InstanceStore>) -> std::io::Result<Scp> {
        #[cfg(feature = "tls")]
        let tls = match &config.tls {
            Some(t) => Some(tls::server_config(t).map_err(std::io::Error::other)?),
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        let tls = None;
        let (listener, early) = listen::listen_on(config.bind)?;
        if early {
            tracing::warn!(addr = %config.bind,
                "the DICOM address is on no interface yet: listening for when it appears");
        }
        Ok(Scp {
            listener,
            config,
            store,
            tls,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept associations on a background thread.
    pub fn spawn(self) -> std::io::Result<ScpHandle> {
        let addr = self.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("scp-accept".into())
            .spawn(move || self.run(&stop2))?;
        Ok(ScpHandle {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Accept associations until `stop` is set (see [`accept`]). Accepting
    /// or starting a thread fails when descriptors or memory run out, and
    /// would then fail again at once: such a failure waits (10 ms, doubling
    /// up to a second) and is logged once per kind, not once per try.
    pub fn run(self, stop: &AtomicBool) {
        let started = accept::Shared::new(self.config.clone(), self.store.clone(), self.tls)
            .and_then(|shared| Ok((Arc::new(shared), accept::Refuser::spawn()?)));
        let (shared, refuser) = match started {
            Ok(s) => s,
            Err(e) => {
                return tracing::error!(error = %e, "cannot start the DICOM receiver's threads")
            }
        };
        let config = &self.config;
        tracing::info!(
            ae_title = %config.ae_title,
            addr = ?self.listener.local_addr().ok(),
            max_associations = config.max_associations,
            allowed_calling_ae_titles = ?config.allowed_calling_ae_titles,
            allowed_peers = ?config.allowed_peers,
            transfer_syntaxes = ?accepted_transfer_syntaxes(),
            "DICOM receiver listening"
        );
        if config.bind.ip().is_unspecified() && config.allowed_peers.is_empty() {
            tracing::warn!("listening on every interface with no allowed_peers: any host that can reach this port may send");
        }
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let mut errors = LogLimiter::default();
        let mut last_failure = Instant::now();
        for stream in self.listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match stream.and_then(|s| accept::dispatch(s, &shared, &refuser)) {
                Ok(()) => {
                    backoff.succeeded();
                    // At the open-file limit accepts fail and succeed by
                    // turns: recovered means a quiet spell, not one success.
                    if last_failure.elapsed() >= RECOVERED_AFTER && errors.clear() {
                        tracing::info!("accepting associations again");
                    }
                }
                Err(e) => {
                    last_failure = Instant::now();
                    if let Some(repeats) = errors.admit(&e.to_string()) {
                        tracing::error!(error = %e, repeats, "cannot accept an association");
                    }
                    std::thread::sleep(backoff.failed());
                }
            }
        }
    }
}

impl ScpHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting new associations.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip([127, 0, 0, 1].into());
        }
        let woken = TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok();
        // Unwakeable (an address not assigned yet): the thread ends at its
        // next connection instead of being waited for.
        match self.thread.take() {
            Some(t) if woken => drop(t.join()),
            _ => {}
        }
    }
}

impl Drop for ScpHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_now();
        }
    }
}
