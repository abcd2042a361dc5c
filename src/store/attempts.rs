//! Attempt records: `attempts/<key>.txt` counts how many times processing of a
//! pending instance started and never finished.
//!
//! A panic can be caught, but a film that makes a C decoder crash, runs the
//! process out of memory or hangs it until the watchdog kills it takes the whole
//! process down; after the restart the same film is the oldest pending one and
//! would be taken first again, forever. So the count is written durably *before*
//! processing starts and removed once processing returns: a record that survives
//! a restart is the trace of a crash, and the serve loop refuses an instance
//! whose count reached its limit instead of crashing on it once more.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::{fsutil, key, Store, StoreError};

impl Store {
    /// How many times processing of `key` started without finishing (0 when
    /// there is no record, or the record is not a number).
    pub fn unfinished_attempts(&self, key: &str) -> Result<u32, StoreError> {
        let path = self.attempt_path(key)?;
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(fsutil::io_err(&path, "read attempt record")(e)),
        }
    }

    /// Record, durably, that processing of `key` starts now; returns the count
    /// including this attempt. Call before anything that could crash on the
    /// instance, and [`finish_attempt`](Store::finish_attempt) once it returns.
    pub fn start_attempt(&self, key: &str) -> Result<u32, StoreError> {
        let count = self.unfinished_attempts(key)?.saturating_add(1);
        fsutil::write_atomic(&self.attempt_path(key)?, format!("{count}\n").as_bytes())?;
        Ok(count)
    }

    /// Processing of `key` returned (whatever its outcome): drop the record, so
    /// only attempts cut short by a crash are counted.
    pub fn finish_attempt(&self, key: &str) -> Result<(), StoreError> {
        let path = self.attempt_path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => fsutil::sync_dir(&self.dirs.attempts),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fsutil::io_err(&path, "remove attempt record")(e)),
        }
    }

    /// Remove the attempt record of `stem` without fsyncing the folder; true
    /// when there was one (the caller fsyncs `attempts/`).
    pub(super) fn remove_attempt_record(&self, stem: &str) -> Result<bool, StoreError> {
        let path = self.dirs.attempts.join(format!("{stem}.txt"));
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(fsutil::io_err(&path, "remove attempt record")(e)),
        }
    }

    fn attempt_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .dirs
            .attempts
            .join(format!("{}.txt", key::encode(key)?)))
    }
}
