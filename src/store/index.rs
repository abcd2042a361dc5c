//! The store's in-memory index: every instance in the inbox with its state,
//! built once when the store opens and kept up to date by every change, so the
//! serve loop's questions ("what is pending?", "what may retention prune?")
//! cost work per pending or prunable study, never per stored study.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::SystemTime;

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Accepted, neither reported nor refused yet.
    Pending,
    /// Its report is complete (`reported/<key>.done`).
    Reported,
    /// It can never be reported (`refused/<key>.txt`).
    Refused,
}

/// One instance in the inbox.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub path: PathBuf,
    pub accepted_at: SystemTime,
    /// Bytes on disk: the instance, plus its report once written.
    pub bytes: u64,
    pub state: State,
}

/// Encoded key → entry, with the pending and finished (reported or refused)
/// instances kept apart, the finished ones oldest first.
#[derive(Debug, Default)]
pub(super) struct Index {
    entries: HashMap<String, Entry>,
    pending: HashSet<String>,
    finished: BTreeSet<(SystemTime, String)>,
    /// Sum of `bytes` over all entries.
    bytes: u64,
    /// Waiting to be delivered: never pruned.
    held: HashSet<String>,
    /// The forwarding queue; what it holds is never pruned either.
    pub forward: super::queue::ForwardIndex,
}

impl Index {
    pub fn get(&self, stem: &str) -> Option<&Entry> {
        self.entries.get(stem)
    }

    pub fn insert(&mut self, stem: String, entry: Entry) {
        self.remove(&stem);
        self.bytes += entry.bytes;
        match entry.state {
            State::Pending => {
                self.pending.insert(stem.clone());
            }
            State::Reported | State::Refused => {
                self.finished.insert((entry.accepted_at, stem.clone()));
            }
        }
        self.entries.insert(stem, entry);
    }

    pub fn remove(&mut self, stem: &str) -> Option<Entry> {
        let entry = self.entries.remove(stem)?;
        self.bytes -= entry.bytes;
        self.pending.remove(stem);
        self.finished.remove(&(entry.accepted_at, stem.to_string()));
        Some(entry)
    }

    /// Move `stem` to `state`, adding `extra_bytes` (its report); false when
    /// `stem` is not in the inbox.
    pub fn finish(&mut self, stem: &str, state: State, extra_bytes: u64) -> bool {
        let Some(mut entry) = self.remove(stem) else {
            return false;
        };
        entry.state = state;
        entry.bytes += extra_bytes;
        self.insert(stem.to_string(), entry);
        true
    }

    /// `(stem, entry)` of every pending instance, in no order.
    pub fn pending(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.pending
            .iter()
            .filter_map(|s| Some((s.as_str(), self.entries.get(s)?)))
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Finished instances that are not held, oldest first, leaving out the
    /// newest `keep_last` finished ones (held or not).
    pub fn prunable(&self, keep_last: usize) -> impl Iterator<Item = (&str, &Entry)> {
        let count = self.finished.len().saturating_sub(keep_last);
        self.finished
            .iter()
            .take(count)
            .filter(|(_, s)| !self.is_held(s))
            .filter_map(|(_, s)| Some((s.as_str(), self.entries.get(s)?)))
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn hold(&mut self, stem: &str) {
        self.held.insert(stem.to_string());
    }

    pub fn release(&mut self, stem: &str) {
        self.held.remove(stem);
    }

    pub fn is_held(&self, stem: &str) -> bool {
        self.held.contains(stem) || self.forward.holds(stem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(secs: u64, bytes: u64, state: State) -> Entry {
        Entry {
            path: PathBuf::from(format!("inbox/{secs}.dcm")),
            accepted_at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            bytes,
            state,
        }
    }

    #[test]
    fn states_bytes_and_the_prunable_order_follow_every_change() {
        let mut index = Index::default();
        index.insert("c".into(), entry(3, 30, State::Reported));
        index.insert("a".into(), entry(1, 10, State::Refused));
        index.insert("b".into(), entry(2, 20, State::Pending));
        index.insert("d".into(), entry(4, 40, State::Reported));
        assert_eq!(index.total_bytes(), 100);
        assert_eq!(index.pending_count(), 1);
        let order = |i: &Index, keep| {
            i.prunable(keep)
                .map(|(s, _)| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&index, 0), ["a", "c", "d"]);
        assert_eq!(order(&index, 1), ["a", "c"]);
        index.hold("a");
        assert_eq!(order(&index, 1), ["c"], "held: never prunable");
        assert!(index.finish("b", State::Reported, 5));
        assert_eq!((index.pending_count(), index.total_bytes()), (0, 105));
        assert_eq!(order(&index, 0), ["b", "c", "d"]);
        index.remove("c");
        assert_eq!((index.len(), index.total_bytes()), (3, 75));
        assert!(!index.finish("c", State::Reported, 0));
    }
}
