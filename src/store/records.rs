//! The store's per-study records on disk and the index built from them.
//!
//! `reported/<key>.done` says a report is complete. It is written after the
//! report directory has been renamed into `outbox/` and holds the report's size
//! in bytes, so whatever later happens to `outbox/` (reports moved away once
//! delivered, a folder deleted by hand) no study is reported twice. A store
//! written before these records existed gets them when it is first opened: a
//! study with a report directory and no record is recorded as reported then.
//!
//! `pruning/<key>.txt` says retention started removing a study; opening the
//! store finishes what a crash interrupted (see `retention.rs`).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::index::{Entry, Index, State};
use super::{fsutil, key, stem_of, StoreError};

/// The folders under the store root.
#[derive(Debug)]
pub(super) struct Dirs {
    pub inbox: PathBuf,
    pub outbox: PathBuf,
    pub refused: PathBuf,
    pub attempts: PathBuf,
    pub reported: PathBuf,
    pub held: PathBuf,
    pub pruning: PathBuf,
    /// The forwarding queue, one folder per destination (`queue.rs`).
    pub forward: PathBuf,
}

impl Dirs {
    pub fn new(root: &Path) -> Dirs {
        Dirs {
            inbox: root.join("inbox"),
            outbox: root.join("outbox"),
            refused: root.join("refused"),
            attempts: root.join("attempts"),
            reported: root.join("reported"),
            held: root.join("held"),
            pruning: root.join("pruning"),
            forward: root.join("forward"),
        }
    }

    pub fn all(&self) -> [&Path; 8] {
        [
            &self.inbox,
            &self.outbox,
            &self.refused,
            &self.attempts,
            &self.reported,
            &self.held,
            &self.pruning,
            &self.forward,
        ]
    }

    pub fn done(&self, stem: &str) -> PathBuf {
        self.reported.join(format!("{stem}.done"))
    }

    pub fn pruning_record(&self, stem: &str) -> PathBuf {
        self.pruning.join(format!("{stem}.txt"))
    }

    pub fn held_record(&self, stem: &str) -> PathBuf {
        self.held.join(format!("{stem}.txt"))
    }
}

/// Create `path` holding `text` and fsync its folder, which makes the file's
/// existence durable. Its text is not fsynced: a crash can leave the file
/// empty or short, and callers only rely on its existence (a text that does
/// not parse is read as missing, see [`build_index`]).
pub(super) fn write_record(path: &Path, text: &str) -> Result<(), StoreError> {
    create_record(path, text)?;
    fsutil::sync_dir(fsutil::parent_of(path))
}

/// [`write_record`] without the folder fsync, for a caller that fsyncs the
/// folder itself (together with others).
pub(super) fn create_record(path: &Path, text: &str) -> Result<(), StoreError> {
    File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(fsutil::io_err(path, "write record"))
}

/// Remove `path`; a file already gone is fine.
pub(super) fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(fsutil::io_err(path, "remove")(e)),
        _ => Ok(()),
    }
}

/// Total size of the files directly in `dir` (a report directory); 0 when it
/// cannot be read.
pub(super) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// `(stem, path)` of every file in `dir` named `<stem>.<ext>` with a stem that
/// [`key::encode`] could have made.
pub(super) fn stems(dir: &Path, ext: &str) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(fsutil::io_err(dir, "list"))? {
        let path = entry.map_err(fsutil::io_err(dir, "list"))?.path();
        let matches = path.extension().is_some_and(|e| e == ext);
        match stem_of(&path) {
            Some(stem) if matches && key::decode(&stem).is_some() => out.push((stem, path)),
            _ => tracing::warn!(path = %path.display(), "ignoring foreign file in the store"),
        }
    }
    Ok(out)
}

/// Every instance file in the inbox by stem, with its metadata.
pub(super) fn list_inbox(inbox: &Path) -> Result<HashMap<String, (PathBuf, Metadata)>, StoreError> {
    let mut out = HashMap::new();
    for entry in fs::read_dir(inbox).map_err(fsutil::io_err(inbox, "list"))? {
        let entry = entry.map_err(fsutil::io_err(inbox, "list"))?;
        let path = entry.path();
        match (stem_of(&path), entry.metadata()) {
            (Some(stem), Ok(meta)) if meta.is_file() && key::decode(&stem).is_some() => {
                out.insert(stem, (path, meta));
            }
            _ => tracing::warn!(path = %path.display(), "ignoring foreign file in inbox"),
        }
    }
    Ok(out)
}

/// Build the index from the inbox listing and the records. A study with a
/// report directory but no `.done` record (a store from before the records, or
/// a crash between the two writes) gets its record now.
pub(super) fn build_index(
    dirs: &Dirs,
    inbox: HashMap<String, (PathBuf, Metadata)>,
) -> Result<Index, StoreError> {
    let done: HashMap<String, PathBuf> = stems(&dirs.reported, "done")?.into_iter().collect();
    let refused: HashSet<String> = stems(&dirs.refused, "txt")?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let mut index = Index::default();
    for (stem, _) in stems(&dirs.held, "txt")? {
        index.hold(&stem);
    }
    let mut recorded = 0;
    for (stem, (path, meta)) in inbox {
        let (state, report_bytes) = if let Some(record) = done.get(&stem) {
            let bytes = fs::read_to_string(record)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            (
                State::Reported,
                bytes.unwrap_or_else(|| dir_bytes(&dirs.outbox.join(&stem))),
            )
        } else if refused.contains(&stem) {
            (State::Refused, 0)
        } else if dirs.outbox.join(&stem).is_dir() {
            let bytes = dir_bytes(&dirs.outbox.join(&stem));
            // Not synced one by one: a record lost to a power cut is written
            // again at the next opening, as the report directory is still there.
            let record = dirs.done(&stem);
            fs::write(&record, format!("{bytes}\n"))
                .map_err(fsutil::io_err(&record, "write record"))?;
            recorded += 1;
            (State::Reported, bytes)
        } else {
            (State::Pending, 0)
        };
        let accepted_at = meta.modified().unwrap_or_else(|_| SystemTime::now());
        let entry = Entry {
            path,
            accepted_at,
            bytes: meta.len() + report_bytes,
            state,
        };
        index.insert(stem, entry);
    }
    if recorded > 0 {
        fsutil::sync_dir(&dirs.reported)?;
        tracing::info!(recorded, "recorded reports found without a .done record");
    }
    Ok(index)
}
