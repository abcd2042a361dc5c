//! Durable storage of received instances and of their reports.
//!
//! Layout under the store root:
//! ```text
//! inbox/<key>.<ext>        accepted instances (what a C-STORE acknowledged)
//! outbox/<key>/report.json  one directory per reported instance, plus the
//! outbox/<key>/<output>     other formats (FHIR, DICOM SR)
//! reported/<key>.done       the report is complete (see `records.rs`); what
//!                           happens to outbox/ afterwards does not matter
//! refused/<key>.txt         why an accepted instance can never be reported
//!                           (kept in the inbox; delete this file and restart
//!                           to retry it)
//! attempts/<key>.txt        how many times processing of a pending instance
//!                           started and never finished (see `attempts.rs`)
//! held/<key>.txt            waiting to be delivered: retention keeps it
//! pruning/<key>.txt         retention is removing it (see `retention.rs`)
//! forward/<dest>/…          the forwarding queue per destination (`queue.rs`)
//! .lock                     held while a process has the store open
//! ```
//! `<key>` is the instance key (SOP Instance UID or `sha256:<hex>`) made
//! file-name safe by [`key::encode`]. Every file is written crash-safely
//! ([`fsutil`]): an instance is in the inbox completely or not at all, and a report
//! directory appears in the outbox only once all its files are on disk, so a crash
//! at any point leaves either no report or a complete one. "Pending" is "in the
//! inbox, neither a `.done` nor a refusal record"; the records are read once
//! when the store opens into an in-memory index (`index.rs`) that every change
//! keeps current, so asking what is pending costs nothing per stored study.
//!
//! [`OutDir`] is the plain-files mode: the same atomic writes into a user's
//! directory, for the `report --out` command and the watched folder.

mod attempts;
pub mod fsutil;
mod index;
pub mod key;
mod plain;
mod queue;
mod records;
mod retention;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

use crate::output::Output;
use crate::Report;

pub use plain::OutDir;
pub use queue::{check_dest, forward_status, DestStatus, QueueSummary, StudyState};
pub use retention::{Retention, PRUNE_BATCH};

use index::{Entry, Index, State};
use records::Dirs;

/// Name of the JSON report inside each report directory.
pub const REPORT_JSON: &str = "report.json";

/// Why the store could not keep something. The DICOM receiver maps these to a
/// C-STORE failure status ([`StoreError::dicom_status`]) instead of acknowledging.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: only {available} bytes free, {needed} needed (instance plus the configured margin)", path.display())]
    InsufficientSpace {
        path: PathBuf,
        available: u64,
        needed: u64,
    },
    #[error("invalid instance key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("instance {key:?} is not in the store")]
    NotStored { key: String },
    #[error("{}: store is already open in another process", path.display())]
    Locked { path: PathBuf },
    #[error("rendering the JSON report for {key:?}: {source}")]
    Render {
        key: String,
        #[source]
        source: crate::output::OutputError,
    },
}

impl StoreError {
    /// True when retrying later may succeed because space or quota ran out.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            StoreError::InsufficientSpace { .. } => true,
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// The C-STORE response status for this failure: 0xA700 "Refused: Out of
    /// Resources" when space ran out, 0x0110 "Processing failure" otherwise
    /// (PS3.4 Annex B.2.3 and PS3.7 Annex C).
    pub fn dicom_status(&self) -> u16 {
        if self.is_out_of_space() {
            0xA700
        } else {
            0x0110
        }
    }
}

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Refuse an instance unless this many bytes stay free after writing it, so
    /// that the reports of what was already accepted can still be written.
    pub min_free_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Result of [`Store::accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Newly written and durable; safe to acknowledge.
    New(PathBuf),
    /// The key was already in the store (reported or pending); nothing written.
    /// Also safe to acknowledge: the first copy is durable.
    Duplicate(PathBuf),
}

impl Accepted {
    pub fn path(&self) -> &Path {
        match self {
            Accepted::New(p) | Accepted::Duplicate(p) => p,
        }
    }
}

/// An accepted instance without a report yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingItem {
    pub key: String,
    pub path: PathBuf,
    pub accepted_at: SystemTime,
}

/// Result of [`Store::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// The report directory was written now.
    Written(PathBuf),
    /// A complete report already existed and was left untouched.
    AlreadyReported(PathBuf),
}

/// Inbox and outbox under one root, shared by the receiver's threads (`&self`).
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    dirs: Dirs,
    options: StoreOptions,
    retention: Retention,
    /// Every instance in the inbox and its state.
    index: Mutex<Index>,
    busy: KeyLocks,
    /// One removal by retention at a time (it locks several keys at once).
    pruner: Mutex<()>,
    _lock: Flock<File>,
}

impl Store {
    /// Open (creating if needed) the store at `root`, take its process lock,
    /// remove temporaries left by a crash, finish removals that retention
    /// started, and index the inbox. Keeps everything until
    /// [`with_retention`](Store::with_retention) says otherwise.
    pub fn open(root: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let root = root.as_ref().to_path_buf();
        let dirs = Dirs::new(&root);
        for dir in dirs.all() {
            fsutil::ensure_dir(dir)?;
        }
        let lock_path = root.join(".lock");
        // Held open read-only: a descriptor open for writing would, among other
        // things, stop the file system from being remounted read-only.
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock_path)
            .and_then(|_| File::open(&lock_path))
            .map_err(fsutil::io_err(&lock_path, "open lock file"))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| StoreError::Locked { path: root.clone() })?;
        let mut removed = 0;
        for dir in dirs.all() {
            removed += fsutil::remove_leftovers(dir)?;
        }
        let mut inbox = records::list_inbox(&dirs.inbox)?;
        let unfinished = retention::finish_interrupted(&dirs, &mut inbox)?;
        let mut index = records::build_index(&dirs, inbox)?;
        queue::load(&dirs, &mut index)?;
        tracing::info!(
            root = %root.display(),
            removed_temporaries = removed,
            finished_removals = unfinished,
            stored = index.len(),
            pending = index.pending_count(),
            "store opened"
        );
        Ok(Store {
            root,
            dirs,
            options,
            retention: Retention::default(),
            index: Mutex::new(index),
            busy: KeyLocks::default(),
            pruner: Mutex::new(()),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keep `bytes` as the instance `key` (extension `ext`, e.g. `"dcm"`), durably,
    /// before the sender is acknowledged. A key already present is not written
    /// again. When less than `bytes.len() + min_free_bytes` is free, retention
    /// removes old finished studies if its `when_full` allows, else (or if that
    /// is not enough) the instance is refused; nothing partial is left behind
    /// on any error.
    pub fn accept(&self, key: &str, bytes: &[u8], ext: &str) -> Result<Accepted, StoreError> {
        let stem = key::encode(key)?;
        key::check_ext(ext)?;
        let _guard = self.busy.lock(format!("in:{stem}"));
        if let Some(existing) = self.lock_index().get(&stem) {
            return Ok(Accepted::Duplicate(existing.path.clone()));
        }
        let needed = (bytes.len() as u64).saturating_add(self.options.min_free_bytes);
        self.make_room(needed)?;
        let path = self.dirs.inbox.join(format!("{stem}.{ext}"));
        fsutil::write_atomic(&path, bytes)?;
        let accepted_at = fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        let entry = Entry {
            path: path.clone(),
            accepted_at,
            bytes: bytes.len() as u64,
            state: State::Pending,
        };
        self.lock_index().insert(stem, entry);
        Ok(Accepted::New(path))
    }

    /// Ok when `needed` bytes are free, after retention removed old finished
    /// studies if it may.
    fn make_room(&self, needed: u64) -> Result<(), StoreError> {
        let mut available = fsutil::available_bytes(&self.dirs.inbox)?;
        if available < needed && self.retention.when_full {
            let freed = self.prune_for_space(needed - available)?;
            if freed > 0 {
                available = fsutil::available_bytes(&self.dirs.inbox)?;
            }
        }
        if available < needed {
            return Err(StoreError::InsufficientSpace {
                path: self.dirs.inbox.clone(),
                available,
                needed,
            });
        }
        Ok(())
    }

    /// Accepted instances without a complete report or a refusal, oldest
    /// first. Costs work per pending instance only.
    pub fn pending(&self) -> Vec<PendingItem> {
        let mut items: Vec<PendingItem> = self
            .lock_index()
            .pending()
            .filter_map(|(stem, entry)| {
                Some(PendingItem {
                    key: key::decode(stem)?,
                    path: entry.path.clone(),
                    accepted_at: entry.accepted_at,
                })
            })
            .collect();
        items.sort_by(|a, b| a.accepted_at.cmp(&b.accepted_at).then(a.key.cmp(&b.key)));
        items
    }

    /// How many instances are pending.
    pub fn pending_count(&self) -> usize {
        self.lock_index().pending_count()
    }

    /// How many instances the inbox holds, and their bytes plus their reports'.
    pub fn stored(&self) -> (usize, u64) {
        let index = self.lock_index();
        (index.len(), index.total_bytes())
    }

    /// Where the instance `key` is kept, if it was accepted.
    pub fn instance_path(&self, key: &str) -> Option<PathBuf> {
        let stem = key::encode(key).ok()?;
        self.lock_index().get(&stem).map(|e| e.path.clone())
    }

    /// The report directory of `key` (it exists only once the report is
    /// complete, and only until someone moves it away).
    pub fn report_dir(&self, key: &str) -> Result<PathBuf, StoreError> {
        Ok(self.dirs.outbox.join(key::encode(key)?))
    }

    /// Whether the report of `key` was completed (`reported/<key>.done`),
    /// whether or not its directory is still in the outbox.
    pub fn is_reported(&self, key: &str) -> bool {
        let Ok(stem) = key::encode(key) else {
            return false;
        };
        match self.lock_index().get(&stem) {
            Some(entry) => entry.state == State::Reported,
            None => self.dirs.done(&stem).is_file(),
        }
    }

    /// Write the report of `key`: `report.json` from `report` plus every extra
    /// output (e.g. from [`crate::output::render_extra`]), all into a staging
    /// directory that is renamed into the outbox in one step, then the `.done`
    /// record; the attempt record of `key`, if any, goes with it (so
    /// [`finish_attempt`](Store::finish_attempt) then has nothing left to do). A study already reported is left as it is, even when its report
    /// directory is gone from the outbox.
    pub fn complete(
        &self,
        key: &str,
        report: &Report,
        outputs: &[Output],
    ) -> Result<Completed, StoreError> {
        let stem = key::encode(key)?;
        for o in outputs {
            key::check_output_name(&o.name)?;
            if o.name == REPORT_JSON {
                return Err(StoreError::InvalidName {
                    name: o.name.clone(),
                    reason: "report.json is written from the report itself",
                });
            }
        }
        let json = crate::output::json::to_json(report).map_err(|source| StoreError::Render {
            key: key.to_string(),
            source,
        })?;
        let _guard = self.busy.lock(format!("out:{stem}"));
        let dir = self.dirs.outbox.join(&stem);
        if self.is_reported(key) {
            return Ok(Completed::AlreadyReported(dir));
        }
        // A directory without a record: a crash came between the two writes.
        let (done, bytes) = if dir.is_dir() {
            (
                Completed::AlreadyReported(dir.clone()),
                records::dir_bytes(&dir),
            )
        } else {
            let mut files: Vec<(&str, &[u8])> = vec![(REPORT_JSON, &json)];
            files.extend(
                outputs
                    .iter()
                    .map(|o| (o.name.as_str(), o.bytes.as_slice())),
            );
            let bytes = files.iter().map(|(_, b)| b.len() as u64).sum();
            (
                Completed::Written(fsutil::publish_dir(&self.dirs.outbox, &stem, &files)?),
                bytes,
            )
        };
        // The record, and the end of the attempt (`attempts.rs`): a reported
        // study is not processed again, so its attempt count is done with.
        // Both folders are fsynced together; if only the attempt's removal
        // survives a crash, the report directory without a record is recorded
        // as reported when the store opens (`records::build_index`).
        records::create_record(&self.dirs.done(&stem), &format!("{bytes}\n"))?;
        let attempt_removed = self.remove_attempt_record(&stem)?;
        let dirs: &[&Path] = if attempt_removed {
            &[&self.dirs.reported, &self.dirs.attempts]
        } else {
            &[&self.dirs.reported]
        };
        fsutil::sync_together(&[], dirs)?;
        self.lock_index().finish(&stem, State::Reported, bytes);
        Ok(done)
    }

    /// Record, durably, that the instance `key` can never be reported (`reason`,
    /// e.g. not a chest film): it stays in the inbox but is no longer pending, so
    /// a restart does not try it again. Deleting `refused/<key>.txt` and
    /// restarting retries it (afresh: its attempt record goes with the refusal).
    pub fn refuse(&self, key: &str, reason: &str) -> Result<PathBuf, StoreError> {
        let stem = key::encode(key)?;
        let path = self.dirs.refused.join(format!("{stem}.txt"));
        fsutil::write_atomic(&path, format!("{reason}\n").as_bytes())?;
        self.finish_attempt(key)?;
        let mut index = self.lock_index();
        if index.get(&stem).is_some_and(|e| e.state == State::Pending) {
            index.finish(&stem, State::Refused, 0);
        }
        Ok(path)
    }

    /// Refused instances with their reasons, by key.
    pub fn refused(&self) -> Vec<(String, String)> {
        let Ok(entries) = fs::read_dir(&self.dirs.refused) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let path = e.path();
                let key = key::decode(&stem_of(&path)?)?;
                let reason = fs::read_to_string(&path).ok()?;
                Some((key, reason.trim_end().to_string()))
            })
            .collect();
        out.sort();
        out
    }

    fn lock_index(&self) -> MutexGuard<'_, Index> {
        // Every change to the index is made whole under the lock and nothing in
        // it panics midway, so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Per-key mutual exclusion: two associations sending the same instance at once
/// write it once, and the second waits to learn that it is a duplicate.
#[derive(Debug, Default)]
struct KeyLocks {
    held: Mutex<HashSet<String>>,
    freed: Condvar,
}

struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
}

impl KeyLocks {
    fn lock(&self, key: String) -> KeyGuard<'_> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while held.contains(&key) {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        held.insert(key.clone());
        KeyGuard { locks: self, key }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
        self.locks.freed.notify_all();
    }
}

fn stem_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    Some(name.rsplit_once('.')?.0.to_string())
}
