//! The accept loop: each connection from an allowed address gets a thread of
//! its own while fewer than `max_associations` are open; any other is handed
//! to one refusing thread that answers its association request with an
//! A-ASSOCIATE-RJ and closes it. So the threads are bounded whatever the
//! peers do: `max_associations` + accept + refuse + watchdog.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource,
};
use dicom_ul::Pdu;

use super::allow::{peer_allowed, PeerLog};
use super::watchdog::Watchdog;
use super::{association, InstanceStore, ScpConfig, TlsServer};

/// What every association thread shares.
pub(super) struct Shared {
    pub config: ScpConfig,
    pub store: Arc<dyn InstanceStore>,
    pub log: PeerLog,
    pub watchdog: Watchdog,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub tls: TlsServer,
    open: Arc<AtomicUsize>,
}

impl Shared {
    pub fn new(
        config: ScpConfig,
        store: Arc<dyn InstanceStore>,
        tls: TlsServer,
    ) -> std::io::Result<Shared> {
        let period = super::watchdog::period(Duration::from_secs(config.idle_timeout_s));
        Ok(Shared {
            config,
            store,
            log: PeerLog::default(),
            watchdog: Watchdog::spawn(period)?,
            tls,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// One of the `max_associations` places, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections waiting to be refused; past this they are just closed.
const REFUSE_QUEUE: usize = 16;
/// How long the refusing thread waits on one peer, for its request and then
/// for it to close.
const REFUSE_WAIT: Duration = Duration::from_millis(500);
/// Longest association request read before refusing it (it is discarded).
const REFUSE_READ: usize = 64 * 1024;

/// The refusing thread's mouth.
pub(super) struct Refuser(SyncSender<(TcpStream, AssociationRJ)>);

impl Refuser {
    pub fn spawn() -> std::io::Result<Refuser> {
        let (tx, rx) = sync_channel::<(TcpStream, AssociationRJ)>(REFUSE_QUEUE);
        std::thread::Builder::new()
            .name("scp-refuse".into())
            .spawn(move || {
                for (stream, rj) in rx {
                    refuse(stream, rj);
                }
            })?;
        Ok(Refuser(tx))
    }

    fn send(&self, stream: TcpStream, rj: AssociationRJ) {
        // A full queue (a flood): the connection is closed unanswered.
        let _ = self.0.try_send((stream, rj));
    }
}

/// Read the association request (so that closing does not reset the
/// connection under the answer), answer it, wait for the peer to close.
fn refuse(mut stream: TcpStream, rj: AssociationRJ) {
    let _ = stream.set_read_timeout(Some(REFUSE_WAIT));
    let _ = stream.set_write_timeout(Some(REFUSE_WAIT));
    let mut header = [0u8; 6];
    if stream.read_exact(&mut header).is_ok() {
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        let _ = std::io::copy(
            &mut (&mut stream).take(len.min(REFUSE_READ) as u64),
            &mut std::io::sink(),
        );
    }
    let mut pdu = Vec::new();
    if dicom_ul::write_pdu(&mut pdu, &Pdu::AssociationRJ(rj)).is_ok() {
        let _ = stream.write_all(&pdu);
    }
    let _ = stream.shutdown(Shutdown::Write);
    let _ = std::io::copy(
        &mut (&mut stream).take(REFUSE_READ as u64),
        &mut std::io::sink(),
    );
}

fn rejection(result: AssociationRJResult, source: AssociationRJSource) -> AssociationRJ {
    AssociationRJ { result, source }
}

/// Start serving one accepted connection, or refuse it. An error is a
/// failure to watch it or start its thread (the caller backs off).
pub(super) fn dispatch(
    stream: TcpStream,
    shared: &Arc<Shared>,
    refuser: &Refuser,
) -> std::io::Result<()> {
    let Ok(peer) = stream.peer_addr() else {
        return Ok(()); // gone already
    };
    let config = &shared.config;
    if !peer_allowed(config, peer.ip()) {
        shared.log.warn(
            &peer.ip().to_string(),
            ("", ""),
            "association refused: peer address not on the allow-list",
            "",
        );
        let rj = rejection(
            AssociationRJResult::Permanent,
            AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::NoReasonGiven),
        );
        refuser.send(stream, rj);
        return Ok(());
    }
    let Some(slot) = Slot::take(&shared.open, config.max_associations) else {
        shared.log.warn(
            &peer.ip().to_string(),
            ("", ""),
            "association refused: busy, max_associations are open",
            "",
        );
        let rj = rejection(
            AssociationRJResult::Transient,
            AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        );
        refuser.send(stream, rj);
        return Ok(());
    };
    // Cloning the socket for the watchdog is the first thing to fail at the
    // open-file limit: an error here backs the accept loop off like EMFILE.
    let idle = Duration::from_secs(config.idle_timeout_s);
    let deadline = Duration::from_secs(config.association_timeout_s);
    let watch = shared.watchdog.watch(&stream, idle, deadline)?;
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("scp-assoc".into())
        .spawn(move || {
            let _slot = slot;
            association::serve_stream(stream, peer, &shared, &watch);
        })
        .map(|_| ())
}
