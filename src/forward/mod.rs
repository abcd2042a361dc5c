//! Store and forward: every reported DICOM study goes to each configured peer
//! (`[[forward]]` in the serve configuration) by C-STORE, when a network is there.
//!
//! Data flow. `serve` queues a study for every destination in the store
//! (`forward/<dest>/queued/`, synced) before it completes the study's report, so
//! a crash can never leave a reported study that nobody will send. A thread of
//! its own ([`Forwarder`]) takes the reported studies off each queue, oldest
//! first, sends them ([`scu`]) and settles them ([`deliver`]): delivered studies
//! leave the queue, those refused for good are parked with the reason, and the
//! rest wait for the next try, each destination backing off on its own from
//! `retry_first_ms` to `retry_max_ms`. The model loop never waits for it.
//!
//! Exactly once, as the archive sees it. What is sent are files written once,
//! with the report, before the first try: the Basic Text SR (`sr.dcm`, whose
//! UIDs derive from the instance key and the bundle, so even re-processing
//! gives the same), the received image as received, and the screen capture
//! (`screen-sc.dcm`, UIDs derived the same way). A retry after a crash or a
//! lost response therefore sends the same SOP Instance UIDs, which an archive
//! files as the same instances (Orthanc keeps its first copy, others
//! overwrite): no duplicates. A study is only left out when it was not DICOM
//! (no SR can reference it: a watched-folder PNG) and studies reported before
//! forwarding was configured are not queued.
//!
//! What is sent. The SR always, last, so the images are in place when the
//! report appears. `send_image` adds the received image. `send_screen` adds a
//! DICOM Secondary Capture (RGB, `crate::output::sc`) of the result screen the
//! unit showed: impression, flagged findings with their scores, the attention
//! heat map over the thumbnail and the disclaimer. A Secondary Capture rather
//! than a Grayscale Softcopy Presentation State: a GSPS can only draw
//! monochrome graphics and text over the original image, and archives' viewers
//! render it unevenly (many not at all), while every viewer shows an SC image;
//! the heat map is colour, and the point is that the radiologist sees what the
//! operator saw, disclaimer included. It is marked DERIVED with burned-in
//! annotation, in a series of its own, so nobody mistakes it for the film.
//!
//! State. [`Forwarder::outbox`] gives the screen's status line: `Synced`,
//! `Pending(n)` while studies wait (normal in a clinic without a network), and
//! `Failing(n)` when a study was parked or a peer rejects the association for
//! good or accepts nothing offered (a configuration to fix: someone should
//! look). `cxr-edge status` reads the queue folders beside a running unit.

pub mod config;
pub mod deliver;
pub mod scu;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use config::ForwardConfig;
pub use deliver::DestStats;

use crate::screen::Outbox;
use crate::store::Store;
use deliver::Destination;

/// Longest sleep of the forwarding thread when nothing is due: it also wakes
/// on [`Forwarder::kick`], so this only bounds how late a missed kick is noticed.
const IDLE: Duration = Duration::from_secs(5);

/// The forwarding thread and what it shares with the serve loop.
pub struct Forwarder {
    names: Vec<String>,
    screens: bool,
    store: Arc<Store>,
    stats: Arc<Mutex<Vec<DestStats>>>,
    stop: Arc<AtomicBool>,
    kick: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Start delivering `dests`' queues from `store`; `changed` is told
    /// whenever the queue or a destination's state changed (the serve loop
    /// redraws its status line).
    pub fn spawn(
        store: Arc<Store>,
        dests: &[ForwardConfig],
        changed: mpsc::Sender<()>,
    ) -> std::io::Result<Forwarder> {
        let (kick, kicked) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut runners: Vec<Destination> = dests.iter().cloned().map(Destination::new).collect();
        let stats = Arc::new(Mutex::new(
            runners.iter().map(|d| d.stats.clone()).collect(),
        ));
        let thread = {
            let (store, stop, stats) = (store.clone(), stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("forward".into())
                .spawn(move || run(&store, &mut runners, &stop, &kicked, &stats, &changed))?
        };
        Ok(Forwarder {
            names: dests.iter().map(|d| d.name.clone()).collect(),
            screens: dests.iter().any(|d| d.send_screen),
            store,
            stats,
            stop,
            kick,
            thread: Some(thread),
        })
    }

    /// The destinations' names, for [`Store::enqueue`].
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether any destination wants the screen's Secondary Capture.
    pub fn wants_screens(&self) -> bool {
        self.screens
    }

    /// A study was reported: look at the queues now.
    pub fn kick(&self) {
        let _ = self.kick.send(());
    }

    /// Each destination's counts and state.
    pub fn stats(&self) -> Vec<DestStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The outbox state for the status line (see the module doc).
    pub fn outbox(&self) -> Outbox {
        outbox(&self.store, &self.stats())
    }
}

/// The status line's outbox state from the queue and the destinations' state.
pub fn outbox(store: &Store, stats: &[DestStats]) -> Outbox {
    let waiting = store.waiting_studies() as u32;
    let parked: usize = store.forward_summary().iter().map(|q| q.parked).sum();
    if parked > 0 || stats.iter().any(|s| s.misconfigured) {
        Outbox::Failing(waiting + parked as u32)
    } else if waiting > 0 {
        Outbox::Pending(waiting)
    } else {
        Outbox::Synced
    }
}

impl Drop for Forwarder {
    /// Stops the thread once the study it is sending is settled (each
    /// network wait is bounded by the destination's `timeout_s`).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.kick.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    store: &Store,
    dests: &mut [Destination],
    stop: &AtomicBool,
    kicked: &mpsc::Receiver<()>,
    stats: &Mutex<Vec<DestStats>>,
    changed: &mpsc::Sender<()>,
) {
    while !stop.load(Ordering::SeqCst) {
        let (mut busy, mut news) = (false, false);
        for dest in dests.iter_mut() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let before = dest.stats.clone();
            let progress = dest.pass(store, stop);
            busy |= progress;
            news |= progress || dest.stats != before;
        }
        if news {
            *stats.lock().unwrap_or_else(|p| p.into_inner()) = dests_stats(dests);
            let _ = changed.send(());
        }
        if busy {
            continue;
        }
        // A destination due now found nothing ready (its studies are still
        // being reported): the kick that follows a report wakes the thread.
        let now = Instant::now();
        let wait = dests
            .iter()
            .filter(|d| !store.waiting(&d.config.name, 1).is_empty())
            .map(|d| d.until_due(now))
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(IDLE)
            .min(IDLE);
        let _ = kicked.recv_timeout(wait);
        while kicked.try_recv().is_ok() {}
    }
}

fn dests_stats(dests: &[Destination]) -> Vec<DestStats> {
    dests.iter().map(|d| d.stats.clone()).collect()
}
