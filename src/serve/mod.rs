//! `serve`: the unit's long-running loop. Inputs arrive from the DICOM receiver
//! (which keeps each instance in the store before acknowledging it) and from the
//! watched folder (whose files are put in the store, then deleted); the loop then
//! reports every pending instance of the store, writes the report crash-safely
//! and shows it. With `[[forward]]` peers, each DICOM study is queued for them
//! before its report is completed, and `crate::forward`'s thread delivers it. Everything between receiving and reporting lives in the store, so
//! after a crash or power cut a restart simply reports what is still pending:
//! nothing acknowledged is lost, and nothing is reported twice.
//!
//! The unit runs unattended for months, so no single input and no lasting fault
//! may stop it: each study is processed in isolation (`process`: panics caught,
//! crashes counted in the store), failures are retried with growing waits, the
//! watched folder's faults are reported once and retried (`intake`), and the
//! systemd watchdog is pinged per study and while waiting.

mod config;
mod intake;
mod pages;
mod process;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use config::{ConfigError, RetentionConfig, ServeConfig, WatchConfig};
pub use process::RefuseReason;

use crate::forward::Forwarder;
use crate::input::{FolderSource, InputError, Radiograph, ValidateOptions};
use crate::retry::{Backoff, LogLimiter};
use crate::scp::{Instance, InstanceStore, KeepError, Kept, Scp, ScpHandle};
use crate::screen::{Outbox, Rotation, Screen, Status};
use crate::sink::{ButtonSource, Layout, Sink};
use crate::store::{Store, StoreError, StoreOptions};
use crate::systemd::Heartbeat;
use crate::Report;

use intake::FolderIntake;

/// The model seam of the loop: turn a radiograph into a report. The device uses
/// the bundle's `Reporter`; any `Fn(&Radiograph) -> Result<Report, String>` works
/// (its errors are failures, retried).
pub trait Analyse {
    fn analyse(&self, radiograph: &Radiograph) -> Result<Report, AnalyseError>;

    /// Model id shown in the status line.
    fn model_id(&self) -> String {
        String::new()
    }
}

/// Why a radiograph got no report from the model stage.
#[derive(Debug, Error)]
pub enum AnalyseError {
    /// The film is refused for good (e.g. the view check finds it is not a
    /// frontal chest film): recorded, not retried.
    #[error(transparent)]
    Refused(InputError),
    /// The model failed; the study is retried.
    #[error("{0}")]
    Failed(String),
}

impl<F: Fn(&Radiograph) -> Result<Report, String>> Analyse for F {
    fn analyse(&self, radiograph: &Radiograph) -> Result<Report, AnalyseError> {
        self(radiograph).map_err(AnalyseError::Failed)
    }
}

impl Analyse for crate::reporter::Reporter {
    fn analyse(&self, radiograph: &Radiograph) -> Result<Report, AnalyseError> {
        self.report(radiograph).map_err(|e| match e {
            crate::reporter::ReportError::Input(e) => AnalyseError::Refused(e),
            other => AnalyseError::Failed(other.to_string()),
        })
    }

    fn model_id(&self) -> String {
        crate::reporter::Reporter::model_id(self).to_string()
    }
}

/// What stops `serve` from starting.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the forwarding thread: {0}")]
    Forward(#[source] std::io::Error),
    #[error("DICOM receiver on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What happened to one pending instance.
#[derive(Debug)]
pub enum Outcome {
    Reported(Box<Report>),
    /// Never reportable (bad input, a panic, too many attempts cut short): the
    /// reason is recorded in the store, the instance stays in the inbox and is
    /// not tried again.
    Refused(RefuseReason),
    /// The model or the writing of the report failed (e.g. the disk is full):
    /// tried again after a growing wait, without a restart.
    Failed(String),
}

/// Wakes the loop whenever the receiver keeps a new instance.
struct Notifying {
    store: Arc<Store>,
    wake: Mutex<mpsc::Sender<()>>,
}

impl InstanceStore for Notifying {
    fn keep(&self, instance: &Instance) -> Result<Kept, KeepError> {
        let kept = self.store.keep(instance)?;
        if kept == Kept::New {
            let _ = self.wake.lock().map(|tx| tx.send(()));
        }
        Ok(kept)
    }
}

/// A running unit: store, optional receiver and folder, the loop's state.
pub struct Server<A: Analyse> {
    store: Arc<Store>,
    analyser: A,
    validate: ValidateOptions,
    sink: Box<dyn Sink>,
    /// What is on the display, so a change of the status line can redraw it.
    shown: Option<Screen>,
    /// The display's layout, which decides how many pages a result has.
    layout: Layout,
    /// Timed turning of a result's pages.
    rotation: Rotation,
    /// Push buttons that turn pages, when configured.
    buttons: Option<Box<dyn ButtonSource>>,
    folder: Option<FolderIntake>,
    scp: Option<ScpHandle>,
    /// Delivers reported studies to the `[[forward]]` peers, when configured.
    forwarder: Option<Forwarder>,
    wake: mpsc::Receiver<()>,
    /// Keeps `wake` open when no receiver holds a sender: a channel without
    /// senders returns at once from every wait, and the loop would spin.
    _wake_sender: mpsc::Sender<()>,
    poll: Duration,
    max_retry: Duration,
    max_attempts: u32,
    /// Pending instances whose last attempt failed, waiting to be tried again.
    retrying: HashMap<String, Retry>,
    /// systemd readiness and watchdog (a no-op outside a `Type=notify` unit).
    heartbeat: Heartbeat,
    prune_log: LogLimiter,
}

/// The pacing of one failed instance's retries.
#[derive(Debug)]
struct Retry {
    backoff: Backoff,
    log: LogLimiter,
}

impl<A: Analyse> Server<A> {
    /// Open the store, start the receiver (if configured) and look at the
    /// watched folder (a missing one is reported, not fatal: it is retried).
    pub fn start(
        config: &ServeConfig,
        analyser: A,
        sink: Box<dyn Sink>,
    ) -> Result<Self, ServeError> {
        let store = Store::open(
            &config.store,
            StoreOptions {
                min_free_bytes: config.min_free_bytes,
            },
        )?;
        let store = Arc::new(store.with_retention(config.retention_policy()));
        let (tx, wake) = mpsc::channel();
        let scp = match &config.dicom {
            Some(dicom) => {
                let listen = |source| ServeError::Listen {
                    addr: dicom.bind,
                    source,
                };
                let notifying = Arc::new(Notifying {
                    store: store.clone(),
                    wake: Mutex::new(tx.clone()),
                });
                let scp = Scp::bind(dicom.clone(), notifying).map_err(listen)?;
                Some(scp.spawn().map_err(listen)?)
            }
            None => None,
        };
        let forwarder = match config.forward.is_empty() {
            true => None,
            false => Some(
                Forwarder::spawn(store.clone(), &config.forward, tx.clone())
                    .map_err(ServeError::Forward)?,
            ),
        };
        let poll = Duration::from_millis(config.poll_ms.max(10));
        let max_retry = Duration::from_millis(config.retry_max_ms).max(poll);
        let folder = config.watch.as_ref().map(|w| {
            let source = FolderSource::new(&w.dir, w.settle())
                .with_max_bytes(config.validate_options().max_input_bytes);
            let mut intake = FolderIntake::new(source, poll, max_retry);
            intake.check();
            intake
        });
        Ok(Server {
            store,
            analyser,
            validate: config.validate_options(),
            sink,
            shown: None,
            layout: config.display.shown_layout(),
            rotation: Rotation::new(Duration::from_millis(config.display.page_ms)),
            buttons: None,
            folder,
            scp,
            forwarder,
            wake,
            _wake_sender: tx,
            poll,
            max_retry,
            max_attempts: config.max_attempts,
            retrying: HashMap::new(),
            heartbeat: Heartbeat::new(crate::systemd::Notifier::from_env()),
            prune_log: LogLimiter::default(),
        })
    }

    /// Replace the systemd notifier (tests use an explicit socket).
    pub fn set_notifier(&mut self, notifier: crate::systemd::Notifier) {
        self.heartbeat = Heartbeat::new(notifier);
    }

    /// Where the receiver listens (port 0 in the configuration picks one).
    pub fn dicom_addr(&self) -> Option<std::net::SocketAddr> {
        self.scp.as_ref().map(|s| s.local_addr())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The forwarding thread, when `[[forward]]` peers are configured.
    pub fn forwarder(&self) -> Option<&Forwarder> {
        self.forwarder.as_ref()
    }

    /// Run until `stop` is set. The watchdog is pinged before every study and,
    /// while waiting, whenever half its period has passed.
    pub fn run(&mut self, stop: &AtomicBool) {
        self.show(Screen::idle(self.status()));
        if let Err(e) = self.heartbeat.notifier().ready() {
            tracing::warn!(error = %e, "systemd notification");
        }
        while !stop.load(Ordering::SeqCst) {
            self.heartbeat.beat_if_due();
            if self.step().is_empty() {
                let wait = self
                    .heartbeat
                    .until_due()
                    .map_or(self.poll, |due| due.min(self.poll));
                self.wait(wait);
            }
            self.redraw_if_outbox_changed();
        }
    }

    /// One pass: take in the folder's files, let retention remove what it
    /// must, then process every pending instance except those whose retry is
    /// not due yet.
    pub fn step(&mut self) -> Vec<(String, Outcome)> {
        self.take_in_folder();
        self.prune();
        let pending = self.store.pending();
        let keys: HashSet<&str> = pending.iter().map(|p| p.key.as_str()).collect();
        self.retrying.retain(|k, _| keys.contains(k.as_str()));
        let due: Vec<_> = pending
            .iter()
            .filter(|p| self.retrying.get(&p.key).is_none_or(|r| r.backoff.is_due()))
            .collect();
        let mut out = Vec::new();
        for item in due {
            self.heartbeat.beat();
            let outcome = self.attempt(&item.key, &item.path);
            self.conclude(&item.key, &outcome);
            out.push((item.key.clone(), outcome));
        }
        out
    }

    /// The status line as the display shows it now.
    pub fn status(&self) -> Status {
        let queue = self.store.pending_count();
        let status =
            Status::new(&self.analyser.model_id(), queue as u32).with_outbox(self.outbox());
        match self.folder.as_ref().and_then(FolderIntake::problem) {
            Some(problem) => status.with_error(problem),
            None => status,
        }
    }

    /// The forwarding queue's state for the status line.
    pub fn outbox(&self) -> Outbox {
        self.forwarder
            .as_ref()
            .map_or(Outbox::Off, Forwarder::outbox)
    }

    /// The forwarding thread delivered or failed something: show it.
    fn redraw_if_outbox_changed(&mut self) {
        let shown = self.shown.as_ref().map(|s| s.status.outbox);
        if self.forwarder.is_some() && shown != Some(self.outbox()) {
            self.redraw_status();
        }
    }

    /// One batch of retention (nothing to do costs no work per stored study).
    fn prune(&mut self) {
        if let Err(e) = self.store.prune(std::time::SystemTime::now()) {
            if let Some(repeats) = self.prune_log.admit("prune") {
                tracing::error!(error = %e, repeats, "retention cannot remove old studies");
            }
        } else if self.prune_log.clear() {
            tracing::info!("retention works again");
        }
    }

    fn take_in_folder(&mut self) {
        let Some(folder) = self.folder.as_mut() else {
            return;
        };
        let before = folder.problem().map(str::to_owned);
        folder.take_in(&self.store, &mut self.heartbeat);
        if folder.problem() != before.as_deref() {
            self.redraw_status();
        }
    }

    /// Log the outcome and keep the store's and the loop's records of it.
    fn conclude(&mut self, key: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Reported(r) => {
                tracing::info!(key, impression = %r.impression, "reported");
                self.retrying.remove(key);
                if let Some(f) = &self.forwarder {
                    f.kick();
                }
            }
            Outcome::Refused(e) => {
                tracing::warn!(key, code = e.code(), error = %e, "refused");
                match self.store.refuse(key, &e.to_string()) {
                    Ok(_) => {
                        self.retrying.remove(key);
                    }
                    Err(store_error) => {
                        self.retry_later(key, &format!("cannot record the refusal: {store_error}"))
                    }
                }
            }
            Outcome::Failed(e) => self.retry_later(key, e),
        }
    }

    fn retry_later(&mut self, key: &str, error: &str) {
        let (first, max) = (self.poll, self.max_retry);
        let retry = self
            .retrying
            .entry(key.to_string())
            .or_insert_with(|| Retry {
                backoff: Backoff::new(first, max),
                log: LogLimiter::default(),
            });
        let wait = retry.backoff.failed();
        // Messages differ from try to try (temporary names, byte counts), so
        // the fault is "this study keeps failing": one line, then reminders.
        if let Some(repeats) = retry.log.admit("failed") {
            tracing::error!(
                key,
                error,
                repeats,
                retry_in_ms = wait.as_millis() as u64,
                "failed; will retry"
            );
        }
    }

    fn show(&mut self, screen: Screen) {
        if let Err(e) = self.sink.show(&screen) {
            tracing::warn!(error = %e, "display");
        }
        self.rotation.restart(Instant::now());
        self.shown = Some(screen);
    }

    /// Show the current screen again with the current status line.
    fn redraw_status(&mut self) {
        let mut screen = self
            .shown
            .take()
            .unwrap_or_else(|| Screen::idle(Status::default()));
        screen.status = self.status();
        self.show(screen);
    }
}
