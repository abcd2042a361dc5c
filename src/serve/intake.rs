//! The watched folder's side of the loop: files are taken into the store one at
//! a time (so one file's bytes are in memory at once, however full the folder),
//! then deleted from the folder. `FolderSource::poll` reads a file whole before
//! any size check, so the bound is the largest single file, not the
//! configuration: 100 files of 18 MB dropped at once cost 20 MB over the
//! unit's baseline, one 2 GB file 2.1 GB (it is then refused as too large).
//!
//! Faults that would repeat on every poll are paced with [`Backoff`] and logged
//! through a [`LogLimiter`]: a folder that is missing, unreadable or vanished
//! (an error on the screen and in the log once, retried with growing waits) and
//! a store that cannot keep a file (the disk is full; the file stays in the
//! folder and is taken once there is room). A file whose instance identifier
//! cannot name a store file is kept under its content hash instead, so it is
//! processed like any other rather than retried for ever.

use std::time::Duration;

use crate::input::{self, FolderSource, InputError, Received, Source};
use crate::retry::{Backoff, LogLimiter};
use crate::store::{Store, StoreError};
use crate::systemd::Heartbeat;

/// The watched folder and the state of its faults.
#[derive(Debug)]
pub(super) struct FolderIntake {
    source: FolderSource,
    backoff: Backoff,
    /// Why the folder cannot be read, for the status line; `None` when it can.
    problem: Option<String>,
    problem_log: LogLimiter,
    store_log: LogLimiter,
    file_log: LogLimiter,
}

impl FolderIntake {
    pub(super) fn new(source: FolderSource, first_retry: Duration, max_retry: Duration) -> Self {
        FolderIntake {
            source,
            backoff: Backoff::new(first_retry, max_retry),
            problem: None,
            problem_log: LogLimiter::default(),
            store_log: LogLimiter::default(),
            file_log: LogLimiter::default(),
        }
    }

    /// Why the folder cannot be read, in words for the status line.
    pub(super) fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Look at the folder now (at start-up, so a missing one is on the first
    /// screen); true when it can be listed.
    pub(super) fn check(&mut self) -> bool {
        match self.source.check() {
            Ok(()) => {
                self.folder_ok();
                true
            }
            Err(e) => {
                self.folder_failed(&e);
                false
            }
        }
    }

    /// Take every ready file into the store, unless a fault's wait is still
    /// running. Pings the watchdog when due, as a full folder takes a while.
    pub(super) fn take_in(&mut self, store: &Store, heartbeat: &mut Heartbeat) {
        if !self.backoff.is_due() || !self.check() {
            return;
        }
        loop {
            heartbeat.beat_if_due();
            let item = match self.source.poll() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                // The source does not hand out a file that failed again, and a
                // folder that vanished fails the next check: no repeat either way.
                Err(e) => {
                    self.file_failed(&e);
                    break;
                }
            };
            if let Err(e) = self.keep(store, &item) {
                self.source.retry(&item);
                let wait = self.backoff.failed();
                // Messages carry byte counts and temporary names that change
                // from try to try: the fault is "the store cannot keep files".
                if let Some(repeats) = self.store_log.admit("cannot store") {
                    tracing::error!(file = %item.origin, error = %e, repeats,
                        retry_in_ms = wait.as_millis() as u64,
                        "cannot store a file from the watched folder; it stays there");
                }
                return;
            }
        }
        self.backoff.succeeded();
    }

    /// Keep one file in the store, then delete it from the folder.
    fn keep(&mut self, store: &Store, item: &Received) -> Result<(), StoreError> {
        let ext = extension(&item.bytes);
        let key = input::instance_key(&item.bytes);
        let kept = match store.accept(&key, &item.bytes, ext) {
            Err(StoreError::InvalidKey { reason, .. }) => {
                tracing::warn!(file = %item.origin, key = %key, reason,
                    "instance identifier unusable as a store key; keeping the file under its content hash");
                store.accept(&input::content_key(&item.bytes), &item.bytes, ext)
            }
            other => other,
        };
        kept?;
        if self.store_log.clear() {
            tracing::info!("storing files from the watched folder works again");
        }
        if let Err(e) = self.source.done(item) {
            // The source keeps the file handed out, so this is said once.
            tracing::warn!(error = %e, "cannot remove a stored file from the watched folder");
        }
        Ok(())
    }

    fn folder_ok(&mut self) {
        self.problem = None;
        if self.problem_log.clear() {
            tracing::info!(dir = %self.source.dir().display(), "watched folder is readable again");
        }
    }

    fn folder_failed(&mut self, e: &InputError) {
        let problem = match e {
            InputError::Io { source, .. } => format!("watched folder: {source}"),
            other => other.to_string(),
        };
        let wait = self.backoff.failed();
        if let Some(repeats) = self.problem_log.admit(&problem) {
            tracing::error!(dir = %self.source.dir().display(), error = %e, repeats,
                retry_in_ms = wait.as_millis() as u64, "watched folder cannot be read");
        }
        self.problem = Some(problem);
    }

    fn file_failed(&mut self, e: &InputError) {
        if let Some(repeats) = self.file_log.admit(&e.to_string()) {
            tracing::warn!(error = %e, repeats, "watched folder");
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
