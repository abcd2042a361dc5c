//! Retention: finished studies (reported or refused) are removed, oldest first,
//! when they are older than the policy allows, when the store holds more bytes
//! than it allows, or when the free-space margin is reached; never a pending
//! study, never one held for delivery ([`Store::hold`]) or waiting in (or parked by)
//! the forwarding queue (`queue.rs`), never one of the newest
//! `keep_last`.
//!
//! Removing a study touches five folders, so it is made crash-safe with an
//! intent record: the study leaves the in-memory index, `pruning/<key>.txt` is
//! written and synced, then its inbox file, report directory and records are
//! removed and synced, and only then the intent record. A crash at any point
//! leaves either the study untouched (no intent yet: still reported, as its
//! `.done` record was not touched) or an intent record that the next opening
//! finishes ([`finish_interrupted`]). A study is never left looking pending.

use std::collections::HashMap;
use std::fs::Metadata;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::index::{Entry, State};
use super::records::{self, Dirs};
use super::{fsutil, key, Store, StoreError};

/// How long finished studies are kept. The default keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Remove finished studies received longer ago than this.
    pub max_age: Option<Duration>,
    /// Remove the oldest finished studies while the store (instances plus
    /// reports) holds more than this many bytes.
    pub max_bytes: Option<u64>,
    /// Never remove the newest this many finished studies.
    pub keep_last: usize,
    /// When an instance would leave less than the free-space margin, remove the
    /// oldest finished studies until it fits, instead of refusing it.
    pub when_full: bool,
}

/// Studies removed per call of [`Store::prune`], so that one call stays short
/// (the serve loop feeds the watchdog between calls).
pub const PRUNE_BATCH: usize = 64;

impl Store {
    /// Use `retention` from now on.
    pub fn with_retention(mut self, retention: Retention) -> Store {
        self.retention = retention;
        self
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Remove up to [`PRUNE_BATCH`] studies that the age and size limits say
    /// must go at `now`; returns how many were removed. Costs no work per
    /// stored study when there is nothing to remove.
    pub fn prune(&self, now: SystemTime) -> Result<usize, StoreError> {
        let stems = self.select(now, 0, PRUNE_BATCH);
        self.remove_studies(stems)
    }

    /// Remove the oldest prunable studies until about `shortfall` bytes are
    /// freed (the free-space margin was reached); returns the bytes freed.
    pub(super) fn prune_for_space(&self, shortfall: u64) -> Result<u64, StoreError> {
        let mut freed = 0;
        while freed < shortfall {
            let stems = self.select(SystemTime::UNIX_EPOCH, shortfall - freed, PRUNE_BATCH);
            if stems.is_empty() {
                break;
            }
            let bytes: u64 = {
                let index = self.lock_index();
                stems
                    .iter()
                    .filter_map(|s| index.get(s))
                    .map(|e| e.bytes)
                    .sum()
            };
            if self.remove_studies(stems)? == 0 {
                break;
            }
            freed += bytes;
        }
        Ok(freed)
    }

    /// Mark `key` as waiting to be delivered (`reason` says to where): retention
    /// never removes it until [`release`](Store::release). Durable
    /// (`held/<key>.txt`); the instance must be in the store.
    pub fn hold(&self, key: &str, reason: &str) -> Result<PathBuf, StoreError> {
        let stem = key::encode(key)?;
        let mut index = self.lock_index();
        if index.get(&stem).is_none() {
            return Err(StoreError::NotStored {
                key: key.to_string(),
            });
        }
        let path = self.dirs.held_record(&stem);
        records::write_record(&path, &format!("{reason}\n"))?;
        index.hold(&stem);
        Ok(path)
    }

    /// `key` was delivered: retention may remove it again.
    pub fn release(&self, key: &str) -> Result<(), StoreError> {
        let stem = key::encode(key)?;
        let mut index = self.lock_index();
        records::remove(&self.dirs.held_record(&stem))?;
        fsutil::sync_dir(&self.dirs.held)?;
        index.release(&stem);
        Ok(())
    }

    pub fn is_held(&self, key: &str) -> bool {
        key::encode(key).is_ok_and(|stem| self.lock_index().is_held(&stem))
    }

    /// Oldest prunable studies that must go: older than `max_age` at `now`,
    /// or while the store is over `max_bytes`, or until `want` bytes are freed.
    /// Stops at the first one that need not go (the rest are younger).
    fn select(&self, now: SystemTime, mut want: u64, limit: usize) -> Vec<String> {
        let r = &self.retention;
        if r.max_age.is_none() && r.max_bytes.is_none() && want == 0 {
            return Vec::new();
        }
        let index = self.lock_index();
        let mut over = r
            .max_bytes
            .map_or(0, |max| index.total_bytes().saturating_sub(max));
        let mut out = Vec::new();
        for (stem, entry) in index.prunable(r.keep_last).take(limit) {
            let old = r.max_age.is_some_and(|max| {
                now.duration_since(entry.accepted_at)
                    .is_ok_and(|age| age > max)
            });
            if !old && over == 0 && want == 0 {
                break;
            }
            over = over.saturating_sub(entry.bytes);
            want = want.saturating_sub(entry.bytes);
            out.push(stem.to_string());
        }
        out
    }

    /// Remove the finished, not held studies among `stems` (see the module
    /// doc for the order); returns how many were removed.
    fn remove_studies(&self, stems: Vec<String>) -> Result<usize, StoreError> {
        if stems.is_empty() {
            return Ok(0);
        }
        let _one_pruner = self.pruner.lock().unwrap_or_else(|p| p.into_inner());
        let _guards: Vec<_> = stems
            .iter()
            .map(|s| self.busy.lock(format!("in:{s}")))
            .collect();
        let taken: Vec<(String, Entry)> = {
            let mut index = self.lock_index();
            let mut taken = Vec::new();
            for stem in stems {
                let finished = index.get(&stem).is_some_and(|e| e.state != State::Pending);
                if finished && !index.is_held(&stem) {
                    if let Some(entry) = index.remove(&stem) {
                        taken.push((stem, entry));
                    }
                }
            }
            taken
        };
        if let Err(e) = self.record_intents(&taken) {
            let mut index = self.lock_index();
            for (stem, entry) in taken {
                index.insert(stem, entry);
            }
            return Err(e);
        }
        let bytes: u64 = taken.iter().map(|(_, e)| e.bytes).sum();
        let count = taken.len();
        let studies: Vec<(String, Option<PathBuf>)> =
            taken.into_iter().map(|(s, e)| (s, Some(e.path))).collect();
        remove_files(&self.dirs, &studies)?;
        tracing::info!(studies = count, bytes, "retention removed finished studies");
        Ok(count)
    }

    fn record_intents(&self, taken: &[(String, Entry)]) -> Result<(), StoreError> {
        for (stem, _) in taken {
            let path = self.dirs.pruning_record(stem);
            std::fs::write(&path, b"").map_err(fsutil::io_err(&path, "write record"))?;
        }
        fsutil::sync_dir(&self.dirs.pruning)
    }
}

/// Finish the removals a crash interrupted: every study with a
/// `pruning/<key>.txt` record goes, and leaves `inbox` (the inbox listing).
/// Returns how many were finished.
pub(super) fn finish_interrupted(
    dirs: &Dirs,
    inbox: &mut HashMap<String, (PathBuf, Metadata)>,
) -> Result<usize, StoreError> {
    let studies: Vec<(String, Option<PathBuf>)> = records::stems(&dirs.pruning, "txt")?
        .into_iter()
        .map(|(stem, _)| {
            let path = inbox.remove(&stem).map(|(p, _)| p);
            (stem, path)
        })
        .collect();
    remove_files(dirs, &studies)?;
    if !studies.is_empty() {
        tracing::info!(
            studies = studies.len(),
            "finished removals a restart interrupted"
        );
    }
    Ok(studies.len())
}

/// Remove each study's inbox file (when known), report directory and records,
/// sync the folders, then remove the intent records. An error leaves the
/// intent records, so the next opening tries again.
fn remove_files(dirs: &Dirs, studies: &[(String, Option<PathBuf>)]) -> Result<(), StoreError> {
    if studies.is_empty() {
        return Ok(());
    }
    for (stem, inbox_file) in studies {
        if let Some(path) = inbox_file {
            records::remove(path)?;
        }
        let report = dirs.outbox.join(stem);
        match std::fs::remove_dir_all(&report) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(fsutil::io_err(&report, "remove report directory")(e))
            }
            _ => {}
        }
        records::remove(&dirs.done(stem))?;
        records::remove(&dirs.refused.join(format!("{stem}.txt")))?;
        records::remove(&dirs.attempts.join(format!("{stem}.txt")))?;
    }
    for dir in [
        &dirs.inbox,
        &dirs.outbox,
        &dirs.reported,
        &dirs.refused,
        &dirs.attempts,
    ] {
        fsutil::sync_dir(dir)?;
    }
    for (stem, _) in studies {
        records::remove(&dirs.pruning_record(stem))?;
    }
    fsutil::sync_dir(&dirs.pruning)
}
