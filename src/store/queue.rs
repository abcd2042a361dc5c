//! The forwarding queue: per destination, the studies waiting to be delivered
//! and those the destination refused for good (parked).
//!
//! ```text
//! forward/<dest>/queued/<key>.txt   waits for delivery to <dest>
//! forward/<dest>/parked/<key>.txt   <dest> refused it for good; holds the reason
//! forward/<dest>/last-error.txt     the last failed try, while <dest> keeps failing
//! ```
//! A queued record is written and synced (with its folder) before the study's
//! report is completed (see `serve::process`), so a crash never leaves a
//! reported study that no destination will get; a study queued and then
//! refused by the model is simply dropped from the queue by the forwarder. A
//! delivery removes the record; parking writes the parked record first, then
//! removes the queued one, so a crash between the two leaves the study parked
//! and queued, which loading resolves as parked. Moving a parked record back to
//! `queued/` and restarting retries the study.
//!
//! Queued and parked studies are held: retention never removes them
//! (`index.rs`). The queue is read once when the store opens and kept in the
//! in-memory index, so asking what waits costs nothing per stored study.
//! [`forward_status`] reads the same folders without the store's lock, for
//! `cxr-edge status` beside a running unit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::index::{Index, State};
use super::records::{self, Dirs};
use super::{fsutil, key, stem_of, Store, StoreError};

/// File in a destination's folder holding its last failed try.
const LAST_ERROR: &str = "last-error.txt";

/// Where a study stands in the store (see [`Store::study_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyState {
    /// Accepted, not reported yet.
    Pending,
    Reported,
    /// Refused by the unit: it has no report.
    Refused,
}

/// One destination's queue as kept in memory.
#[derive(Debug, Default)]
struct DestQueue {
    /// `(accepted_at, stem)`: oldest study first.
    waiting: BTreeSet<(SystemTime, String)>,
    /// Stem → reason.
    parked: BTreeMap<String, String>,
}

/// Every destination's queue, and how many destinations hold each study.
#[derive(Debug, Default)]
pub(super) struct ForwardIndex {
    dests: BTreeMap<String, DestQueue>,
    holds: HashMap<String, usize>,
}

impl ForwardIndex {
    /// Whether any destination still waits for, or parked, `stem`.
    pub fn holds(&self, stem: &str) -> bool {
        self.holds.contains_key(stem)
    }

    fn is_listed(&self, dest: &str, stem: &str) -> bool {
        self.dests.get(dest).is_some_and(|q| {
            q.parked.contains_key(stem) || q.waiting.iter().any(|(_, s)| s == stem)
        })
    }

    fn add_waiting(&mut self, dest: &str, stem: &str, at: SystemTime) {
        if self.is_listed(dest, stem) {
            return;
        }
        let q = self.dests.entry(dest.to_string()).or_default();
        q.waiting.insert((at, stem.to_string()));
        *self.holds.entry(stem.to_string()).or_default() += 1;
    }

    /// Take `stem` off `dest`'s list (waiting or parked); true if it was on it.
    fn remove(&mut self, dest: &str, stem: &str) -> bool {
        let Some(q) = self.dests.get_mut(dest) else {
            return false;
        };
        let before = q.waiting.len() + q.parked.len();
        q.waiting.retain(|(_, s)| s != stem);
        q.parked.remove(stem);
        let removed = q.waiting.len() + q.parked.len() < before;
        if removed {
            if let Some(n) = self.holds.get_mut(stem) {
                *n -= 1;
                if *n == 0 {
                    self.holds.remove(stem);
                }
            }
        }
        removed
    }

    fn park(&mut self, dest: &str, stem: &str, reason: &str) {
        if !self.remove(dest, stem) {
            return;
        }
        let q = self.dests.entry(dest.to_string()).or_default();
        q.parked.insert(stem.to_string(), reason.to_string());
        *self.holds.entry(stem.to_string()).or_default() += 1;
    }
}

/// One destination's queue as [`Store::forward_summary`] counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSummary {
    pub dest: String,
    pub waiting: usize,
    pub parked: usize,
}

/// One destination's queue as the files say ([`forward_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestStatus {
    pub dest: String,
    /// Keys of the studies waiting.
    pub waiting: Vec<String>,
    /// `(key, reason)` of the parked studies.
    pub parked: Vec<(String, String)>,
    /// The last failed try, while the destination keeps failing.
    pub last_error: Option<String>,
}

impl Dirs {
    fn dest(&self, dest: &str) -> PathBuf {
        self.forward.join(dest)
    }
    fn queued(&self, dest: &str, stem: &str) -> PathBuf {
        self.dest(dest).join("queued").join(format!("{stem}.txt"))
    }
    fn parked(&self, dest: &str, stem: &str) -> PathBuf {
        self.dest(dest).join("parked").join(format!("{stem}.txt"))
    }
}

/// A destination name must be a plain folder name.
pub fn check_dest(dest: &str) -> Result<(), StoreError> {
    let ok = !dest.is_empty()
        && dest.len() <= 32
        && dest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: dest.to_string(),
            reason: "a destination name is 1 to 32 ASCII letters, digits, '-' or '_'",
        })
    }
}

impl Store {
    /// Where the study `key` stands; `None` when it is not in the store.
    pub fn study_state(&self, key: &str) -> Option<StudyState> {
        let stem = key::encode(key).ok()?;
        Some(match self.lock_index().get(&stem)?.state {
            State::Pending => StudyState::Pending,
            State::Reported => StudyState::Reported,
            State::Refused => StudyState::Refused,
        })
    }

    /// Queue the study `key` for delivery to each of `dests`, durably (a study
    /// already waiting for or parked by a destination stays as it is). Retention
    /// keeps it until every destination has it.
    pub fn enqueue(&self, key: &str, dests: &[String]) -> Result<(), StoreError> {
        let stem = key::encode(key)?;
        let at = match self.lock_index().get(&stem) {
            Some(e) => e.accepted_at,
            None => {
                return Err(StoreError::NotStored {
                    key: key.to_string(),
                })
            }
        };
        for dest in dests {
            check_dest(dest)?;
            if self.lock_index().forward.is_listed(dest, &stem) {
                continue;
            }
            let path = self.dirs.queued(dest, &stem);
            fsutil::ensure_dir(fsutil::parent_of(&path))?;
            fsutil::ensure_dir(fsutil::parent_of(&self.dirs.parked(dest, &stem)))?;
            records::write_record(&path, &format!("{key}\n"))?;
            self.lock_index().forward.add_waiting(dest, &stem, at);
        }
        Ok(())
    }

    /// Up to `limit` keys waiting for `dest`, oldest study first.
    pub fn waiting(&self, dest: &str, limit: usize) -> Vec<String> {
        let index = self.lock_index();
        let Some(q) = index.forward.dests.get(dest) else {
            return Vec::new();
        };
        q.waiting
            .iter()
            .filter_map(|(_, s)| key::decode(s))
            .take(limit)
            .collect()
    }

    /// `dest` has the study `key` (or need not get it): off its queue.
    pub fn delivered(&self, key: &str, dest: &str) -> Result<(), StoreError> {
        let stem = key::encode(key)?;
        check_dest(dest)?;
        let path = self.dirs.queued(dest, &stem);
        records::remove(&path)?;
        fsutil::sync_dir(fsutil::parent_of(&path))?;
        self.lock_index().forward.remove(dest, &stem);
        Ok(())
    }

    /// `dest` refused the study `key` for good: it is kept with `reason` and
    /// not tried again (see the module doc for how to retry it).
    pub fn park(&self, key: &str, dest: &str, reason: &str) -> Result<(), StoreError> {
        let stem = key::encode(key)?;
        check_dest(dest)?;
        fsutil::write_atomic(
            &self.dirs.parked(dest, &stem),
            format!("{reason}\n").as_bytes(),
        )?;
        let queued = self.dirs.queued(dest, &stem);
        records::remove(&queued)?;
        fsutil::sync_dir(fsutil::parent_of(&queued))?;
        self.lock_index().forward.park(dest, &stem, reason);
        Ok(())
    }

    /// Record `error` as `dest`'s last failed try (`None`: it works again).
    pub fn set_forward_error(&self, dest: &str, error: Option<&str>) -> Result<(), StoreError> {
        check_dest(dest)?;
        let dir = self.dirs.dest(dest);
        fsutil::ensure_dir(&dir)?;
        let path = dir.join(LAST_ERROR);
        match error {
            Some(e) => fsutil::write_atomic(&path, format!("{e}\n").as_bytes()),
            None => {
                records::remove(&path)?;
                fsutil::sync_dir(&dir)
            }
        }
    }

    /// Waiting and parked counts of every destination with a queue.
    pub fn forward_summary(&self) -> Vec<QueueSummary> {
        let index = self.lock_index();
        index
            .forward
            .dests
            .iter()
            .map(|(dest, q)| QueueSummary {
                dest: dest.clone(),
                waiting: q.waiting.len(),
                parked: q.parked.len(),
            })
            .collect()
    }

    /// How many studies wait for at least one destination.
    pub fn waiting_studies(&self) -> usize {
        let index = self.lock_index();
        let mut stems: std::collections::HashSet<&str> = Default::default();
        for q in index.forward.dests.values() {
            stems.extend(q.waiting.iter().map(|(_, s)| s.as_str()));
        }
        stems.len()
    }
}

/// Read the queue from disk into `index` (whose instances are already in it),
/// removing temporaries a crash left. A study both parked and queued (a crash
/// while parking) is parked.
pub(super) fn load(dirs: &Dirs, index: &mut Index) -> Result<(), StoreError> {
    for dest in dest_names(&dirs.forward)? {
        let dir = dirs.dest(&dest);
        fsutil::remove_leftovers(&dir)?;
        let (queued, parked) = (dir.join("queued"), dir.join("parked"));
        fsutil::ensure_dir(&queued)?;
        fsutil::ensure_dir(&parked)?;
        fsutil::remove_leftovers(&queued)?;
        fsutil::remove_leftovers(&parked)?;
        for (stem, path) in records::stems(&queued, "txt")? {
            let at = match index.get(&stem) {
                Some(e) => e.accepted_at,
                None => fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now()),
            };
            index.forward.add_waiting(&dest, &stem, at);
        }
        for (stem, path) in records::stems(&parked, "txt")? {
            let reason = fs::read_to_string(&path).unwrap_or_default();
            let at = SystemTime::UNIX_EPOCH;
            index.forward.add_waiting(&dest, &stem, at);
            index.forward.park(&dest, &stem, reason.trim_end());
        }
    }
    Ok(())
}

/// The destination folders under `forward/`.
fn dest_names(forward: &Path) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(forward) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(fsutil::io_err(forward, "list")(e)),
    };
    for entry in entries {
        let entry = entry.map_err(fsutil::io_err(forward, "list"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && check_dest(&name).is_ok() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Every destination's queue under the store `root`, read from the files
/// without taking the store's lock (a running unit holds it). A study both
/// queued and parked counts as parked.
pub fn forward_status(root: &Path) -> Result<Vec<DestStatus>, StoreError> {
    let dirs = Dirs::new(root);
    let mut out = Vec::new();
    for dest in dest_names(&dirs.forward)? {
        let dir = dirs.dest(&dest);
        let parked: Vec<(String, String)> = keys_in(&dir.join("parked"))
            .into_iter()
            .map(|(key, path)| {
                let reason = fs::read_to_string(&path).unwrap_or_default();
                (key, reason.trim_end().to_string())
            })
            .collect();
        let waiting = keys_in(&dir.join("queued"))
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !parked.iter().any(|(p, _)| p == k))
            .collect();
        let last_error = fs::read_to_string(dir.join(LAST_ERROR))
            .ok()
            .map(|t| t.trim_end().to_string());
        out.push(DestStatus {
            dest,
            waiting,
            parked,
            last_error,
        });
    }
    Ok(out)
}

/// `(key, path)` of the records in `dir`, sorted by key; nothing when `dir` is missing.
fn keys_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .filter_map(|p| Some((key::decode(&stem_of(&p)?)?, p)))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_count_destinations_and_parking_moves_a_study() {
        let mut f = ForwardIndex::default();
        let t = SystemTime::UNIX_EPOCH;
        f.add_waiting("a", "s1", t);
        f.add_waiting("b", "s1", t);
        f.add_waiting("a", "s1", t);
        assert!(f.holds("s1"));
        assert!(f.remove("a", "s1"));
        assert!(f.holds("s1"), "b still waits");
        f.park("b", "s1", "refused");
        assert!(f.holds("s1"), "parked studies stay held");
        assert_eq!(f.dests["b"].parked["s1"], "refused");
        assert!(f.dests["b"].waiting.is_empty());
        assert!(f.remove("b", "s1"));
        assert!(!f.holds("s1"));
        assert!(!f.remove("b", "s1"));
    }

    #[test]
    fn destination_names_are_plain() {
        assert!(check_dest("pacs-1_main").is_ok());
        for bad in ["", "../x", "a b", &"x".repeat(33)] {
            assert!(check_dest(bad).is_err(), "{bad:?}");
        }
    }
}
