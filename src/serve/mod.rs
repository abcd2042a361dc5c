//! `serve`: the unit's long-running loop. Inputs arrive from the DICOM receiver
//! (which keeps each instance in the store before acknowledging it) and from the
//! watched folder (whose files are put in the store, then deleted); the loop then
//! reports every pending instance of the store, writes the report crash-safely
//! and shows it. Everything between receiving and reporting lives in the store, so
//! after a crash or power cut a restart simply reports what is still pending:
//! nothing acknowledged is lost, and nothing is reported twice.

mod config;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use thiserror::Error;

pub use config::{ConfigError, ServeConfig, WatchConfig};

use crate::input::{self, FolderSource, InputError, Radiograph, Source, ValidateOptions};
use crate::scp::{Instance, InstanceStore, KeepError, Kept, Scp, ScpHandle};
use crate::screen::{Screen, Status};
use crate::sink::Sink;
use crate::store::{Store, StoreError, StoreOptions};
use crate::Report;

/// The model seam of the loop: turn a radiograph into a report. The device uses
/// the bundle's `Reporter`; any `Fn(&Radiograph) -> Result<Report, String>` works.
pub trait Analyse {
    fn analyse(&self, radiograph: &Radiograph) -> Result<Report, String>;

    /// Model id shown in the status line.
    fn model_id(&self) -> String {
        String::new()
    }
}

impl<F: Fn(&Radiograph) -> Result<Report, String>> Analyse for F {
    fn analyse(&self, radiograph: &Radiograph) -> Result<Report, String> {
        self(radiograph)
    }
}

impl Analyse for crate::reporter::Reporter {
    fn analyse(&self, radiograph: &Radiograph) -> Result<Report, String> {
        self.report(radiograph).map_err(|e| e.to_string())
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
    /// Not decodable or not a chest film; stays in the inbox, not retried until
    /// the next start.
    Refused(InputError),
    /// The model or the writing of the report failed.
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
    folder: Option<FolderSource>,
    scp: Option<ScpHandle>,
    wake: mpsc::Receiver<()>,
    poll: Duration,
    /// Keys refused or failed in this run, with the reason.
    failed: HashMap<String, String>,
    /// systemd readiness and watchdog (a no-op outside a `Type=notify` unit).
    notifier: crate::systemd::Notifier,
}

impl<A: Analyse> Server<A> {
    /// Open the store, start the receiver (if configured) and the folder source.
    pub fn start(
        config: &ServeConfig,
        analyser: A,
        sink: Box<dyn Sink>,
    ) -> Result<Self, ServeError> {
        let store = Arc::new(Store::open(
            &config.store,
            StoreOptions {
                min_free_bytes: config.min_free_bytes,
            },
        )?);
        let (tx, wake) = mpsc::channel();
        let scp = match &config.dicom {
            Some(dicom) => {
                let listen = |source| ServeError::Listen {
                    addr: dicom.bind,
                    source,
                };
                let notifying = Arc::new(Notifying {
                    store: store.clone(),
                    wake: Mutex::new(tx),
                });
                let scp = Scp::bind(dicom.clone(), notifying).map_err(listen)?;
                Some(scp.spawn().map_err(listen)?)
            }
            None => None,
        };
        let folder = config
            .watch
            .as_ref()
            .map(|w| FolderSource::new(&w.dir, w.settle()));
        Ok(Server {
            store,
            analyser,
            validate: config.validate_options(),
            sink,
            folder,
            scp,
            wake,
            poll: Duration::from_millis(config.poll_ms.max(10)),
            failed: HashMap::new(),
            notifier: crate::systemd::Notifier::from_env(),
        })
    }

    /// Replace the systemd notifier (tests use an explicit socket).
    pub fn set_notifier(&mut self, notifier: crate::systemd::Notifier) {
        self.notifier = notifier;
    }

    /// Where the receiver listens (port 0 in the configuration picks one).
    pub fn dicom_addr(&self) -> Option<std::net::SocketAddr> {
        self.scp.as_ref().map(|s| s.local_addr())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Run until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        self.show(Screen::idle(self.status()));
        if let Err(e) = self.notifier.ready() {
            tracing::warn!(error = %e, "systemd notification");
        }
        let ping = self.notifier.watchdog_interval();
        let mut last_ping = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if ping.is_some_and(|p| last_ping.elapsed() >= p / 2) {
                let _ = self.notifier.watchdog();
                last_ping = std::time::Instant::now();
            }
            let did = self.step();
            if did.is_empty() {
                let _ = self.wake.recv_timeout(self.poll);
            }
        }
    }

    /// One pass: take in the folder's files, then report everything pending.
    pub fn step(&mut self) -> Vec<(String, Outcome)> {
        self.intake_folder();
        let pending: Vec<_> = self
            .store
            .pending()
            .into_iter()
            .filter(|p| !self.failed.contains_key(&p.key))
            .collect();
        let mut out = Vec::new();
        for item in pending {
            let outcome = self.process(&item.key, &item.path);
            match &outcome {
                Outcome::Reported(r) => {
                    tracing::info!(key = %item.key, impression = %r.impression, "reported")
                }
                Outcome::Refused(e) => {
                    tracing::warn!(key = %item.key, code = e.code(), error = %e, "refused");
                    // Kept in the inbox; recorded so that a restart does not
                    // show the same refusal again (a failure may be transient
                    // and is retried after a restart).
                    if let Err(store_error) = self.store.refuse(&item.key, &e.to_string()) {
                        tracing::error!(key = %item.key, error = %store_error, "cannot record the refusal");
                        self.failed.insert(item.key.clone(), e.to_string());
                    }
                }
                Outcome::Failed(e) => {
                    tracing::error!(key = %item.key, error = %e, "failed");
                    self.failed.insert(item.key.clone(), e.clone());
                }
            }
            out.push((item.key, outcome));
        }
        out
    }

    fn intake_folder(&mut self) {
        let Some(folder) = self.folder.as_mut() else {
            return;
        };
        for item in folder.drain() {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(error = %e, "watched folder");
                    continue;
                }
            };
            let key = input::instance_key(&item.bytes);
            let ext = extension(&item.bytes);
            match self.store.accept(&key, &item.bytes, ext) {
                Ok(_) => {
                    if let Err(e) = folder.done(&item) {
                        tracing::warn!(error = %e, "cannot remove a stored file from the watched folder");
                    }
                }
                // Left in the folder: taken again once there is room.
                Err(e) => {
                    tracing::error!(file = %item.origin, error = %e, "cannot store");
                    folder.retry(&item);
                }
            }
        }
    }

    fn process(&mut self, key: &str, path: &Path) -> Outcome {
        let origin = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(source) => {
                return Outcome::Refused(InputError::Io {
                    input: origin,
                    source,
                })
            }
        };
        let mut radiograph = match input::decode_bytes(&bytes, &origin, &self.validate) {
            Ok(r) => r,
            Err(e) => {
                let screen = match &e {
                    InputError::NotChestFilm { .. } => Screen::not_chest_film(
                        &input::dicom::header_info(&bytes, &origin).unwrap_or_default(),
                        None,
                        self.status().with_error(&e.to_string()),
                    ),
                    _ => Screen::error(&e.to_string(), self.status()),
                };
                self.show(screen);
                return Outcome::Refused(e);
            }
        };
        radiograph.info.instance_key = key.to_string();
        self.show(Screen::processing(
            &radiograph.info,
            Some(&radiograph.image),
            self.status(),
        ));
        let report = match self.analyser.analyse(&radiograph) {
            Ok(r) => r,
            Err(e) => {
                self.show(Screen::error(&e, self.status()));
                return Outcome::Failed(format!("{origin}: model: {e}"));
            }
        };
        let dataset = input::dicom::is_dicom(&bytes)
            .then(|| {
                dicom_object::OpenFileOptions::new()
                    .from_reader(&bytes[128..])
                    .ok()
                    .map(|f| f.into_inner())
            })
            .flatten();
        let outputs = match crate::output::render_extra(&report, dataset.as_ref()) {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(format!("{origin}: {e}")),
        };
        if let Err(e) = self.store.complete(key, &report, &outputs) {
            return Outcome::Failed(format!("{origin}: {e}"));
        }
        self.show(Screen::result(
            &report,
            Some(&radiograph.image),
            self.status(),
        ));
        Outcome::Reported(Box::new(report))
    }

    fn status(&self) -> Status {
        let queue = self.store.pending().len().saturating_sub(self.failed.len());
        Status::new(&self.analyser.model_id(), queue as u32)
    }

    fn show(&mut self, screen: Screen) {
        if let Err(e) = self.sink.show(&screen) {
            tracing::warn!(error = %e, "display");
        }
    }
}

/// Store file extension for an input.
fn extension(bytes: &[u8]) -> &'static str {
    if input::dicom::is_dicom(bytes) {
        return "dcm";
    }
    match input::raster::sniff(bytes) {
        Some(image::ImageFormat::Png) => "png",
        Some(image::ImageFormat::Jpeg) => "jpg",
        _ => "bin",
    }
}
