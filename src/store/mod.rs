//! Durable storage of received instances and of their reports.
//!
//! Layout under the store root:
//! ```text
//! inbox/<key>.<ext>        accepted instances (what a C-STORE acknowledged)
//! outbox/<key>/report.json  one directory per reported instance, plus the
//! outbox/<key>/<output>     other formats (FHIR, DICOM SR)
//! refused/<key>.txt         why an accepted instance can never be reported
//!                           (kept in the inbox; delete this file to retry it)
//! attempts/<key>.txt        how many times processing of a pending instance
//!                           started and never finished (see `attempts.rs`)
//! .lock                     held while a process has the store open
//! ```
//! `<key>` is the instance key (SOP Instance UID or `sha256:<hex>`) made
//! file-name safe by [`key::encode`]. Every file is written crash-safely
//! ([`fsutil`]): an instance is in the inbox completely or not at all, and a report
//! directory appears in the outbox only once all its files are on disk, so a crash
//! at any point leaves either no report or a complete one. "Pending" is simply
//! "in the inbox, no report directory and no refusal yet", which is what a restart
//! re-processes; nothing else records state, so nothing else can disagree.
//!
//! [`OutDir`] is the plain-files mode: the same atomic writes into a user's
//! directory, for the `report --out` command and the watched folder.

mod attempts;
pub mod fsutil;
pub mod key;
mod plain;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

use crate::output::Output;
use crate::Report;

pub use plain::OutDir;

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
    inbox: PathBuf,
    outbox: PathBuf,
    refused: PathBuf,
    attempts: PathBuf,
    options: StoreOptions,
    /// Encoded key → instance path, for everything in the inbox.
    index: Mutex<HashMap<String, PathBuf>>,
    busy: KeyLocks,
    _lock: Flock<File>,
}

impl Store {
    /// Open (creating if needed) the store at `root`, take its process lock,
    /// remove temporaries left by a crash and index the inbox.
    pub fn open(root: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let root = root.as_ref().to_path_buf();
        let inbox = root.join("inbox");
        let outbox = root.join("outbox");
        let refused = root.join("refused");
        let attempts = root.join("attempts");
        fsutil::ensure_dir(&inbox)?;
        fsutil::ensure_dir(&outbox)?;
        fsutil::ensure_dir(&refused)?;
        fsutil::ensure_dir(&attempts)?;
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
        let removed = fsutil::remove_leftovers(&inbox)?
            + fsutil::remove_leftovers(&outbox)?
            + fsutil::remove_leftovers(&refused)?
            + fsutil::remove_leftovers(&attempts)?;
        let mut index = HashMap::new();
        for entry in fs::read_dir(&inbox).map_err(fsutil::io_err(&inbox, "list"))? {
            let path = entry.map_err(fsutil::io_err(&inbox, "list"))?.path();
            match stem_of(&path) {
                Some(stem) if key::decode(&stem).is_some() => {
                    index.insert(stem, path);
                }
                _ => tracing::warn!(path = %path.display(), "ignoring foreign file in inbox"),
            }
        }
        let store = Store {
            root,
            inbox,
            outbox,
            refused,
            attempts,
            options,
            index: Mutex::new(index),
            busy: KeyLocks::default(),
            _lock: lock,
        };
        tracing::info!(
            root = %store.root.display(),
            removed_temporaries = removed,
            pending = store.pending().len(),
            "store opened"
        );
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keep `bytes` as the instance `key` (extension `ext`, e.g. `"dcm"`), durably,
    /// before the sender is acknowledged. A key already present is not written
    /// again. Refuses when less than `bytes.len() + min_free_bytes` is free, or on
    /// any write error; nothing partial is left behind either way.
    pub fn accept(&self, key: &str, bytes: &[u8], ext: &str) -> Result<Accepted, StoreError> {
        let stem = key::encode(key)?;
        key::check_ext(ext)?;
        let _guard = self.busy.lock(format!("in:{stem}"));
        if let Some(existing) = self.lock_index().get(&stem) {
            return Ok(Accepted::Duplicate(existing.clone()));
        }
        let available = fsutil::available_bytes(&self.inbox)?;
        let needed = (bytes.len() as u64).saturating_add(self.options.min_free_bytes);
        if available < needed {
            return Err(StoreError::InsufficientSpace {
                path: self.inbox.clone(),
                available,
                needed,
            });
        }
        let path = self.inbox.join(format!("{stem}.{ext}"));
        fsutil::write_atomic(&path, bytes)?;
        self.lock_index().insert(stem, path.clone());
        Ok(Accepted::New(path))
    }

    /// Accepted instances without a complete report, oldest first.
    pub fn pending(&self) -> Vec<PendingItem> {
        let index = self.lock_index().clone();
        let mut items: Vec<PendingItem> = index
            .into_iter()
            .filter(|(stem, _)| !self.outbox.join(stem).is_dir() && !self.is_refused_stem(stem))
            .filter_map(|(stem, path)| {
                let accepted_at = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
                Some(PendingItem {
                    key: key::decode(&stem)?,
                    path,
                    accepted_at,
                })
            })
            .collect();
        items.sort_by(|a, b| a.accepted_at.cmp(&b.accepted_at).then(a.key.cmp(&b.key)));
        items
    }

    /// Where the instance `key` is kept, if it was accepted.
    pub fn instance_path(&self, key: &str) -> Option<PathBuf> {
        let stem = key::encode(key).ok()?;
        self.lock_index().get(&stem).cloned()
    }

    /// The report directory of `key` (it exists only once the report is complete).
    pub fn report_dir(&self, key: &str) -> Result<PathBuf, StoreError> {
        Ok(self.outbox.join(key::encode(key)?))
    }

    /// Whether a complete report for `key` exists.
    pub fn is_reported(&self, key: &str) -> bool {
        self.report_dir(key).map(|d| d.is_dir()).unwrap_or(false)
    }

    /// Write the report of `key`: `report.json` from `report` plus every extra
    /// output (e.g. from [`crate::output::render_extra`]), all into a staging
    /// directory that is renamed into the outbox in one step. A report that is
    /// already complete is left as it is.
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
        let dir = self.outbox.join(&stem);
        if dir.is_dir() {
            return Ok(Completed::AlreadyReported(dir));
        }
        let mut files: Vec<(&str, &[u8])> = vec![(REPORT_JSON, &json)];
        files.extend(
            outputs
                .iter()
                .map(|o| (o.name.as_str(), o.bytes.as_slice())),
        );
        fsutil::publish_dir(&self.outbox, &stem, &files).map(Completed::Written)
    }

    /// Record, durably, that the instance `key` can never be reported (`reason`,
    /// e.g. not a chest film): it stays in the inbox but is no longer pending, so
    /// a restart does not try it again. Deleting `refused/<key>.txt` retries it
    /// (afresh: its attempt record goes with the refusal).
    pub fn refuse(&self, key: &str, reason: &str) -> Result<PathBuf, StoreError> {
        let stem = key::encode(key)?;
        let path = self.refused.join(format!("{stem}.txt"));
        fsutil::write_atomic(&path, format!("{reason}\n").as_bytes())?;
        self.finish_attempt(key)?;
        Ok(path)
    }

    /// Refused instances with their reasons, by key.
    pub fn refused(&self) -> Vec<(String, String)> {
        let Ok(entries) = fs::read_dir(&self.refused) else {
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

    fn is_refused_stem(&self, stem: &str) -> bool {
        self.refused.join(format!("{stem}.txt")).is_file()
    }

    fn lock_index(&self) -> MutexGuard<'_, HashMap<String, PathBuf>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (single inserts), so a poisoned lock is still usable.
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
