//! Where inputs come from before they are decoded: a watched folder, memory (tests,
//! the `report` command), and the DICOM receiver (which hands its instances to the
//! store directly, see `crate::scp`). A source yields raw bytes; decoding happens
//! after the bytes are kept durably, so a crash never loses an input.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::InputError;

/// One input as received, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Names the input in errors and reports: a path, or `memory:<name>`.
    pub origin: String,
    pub bytes: Vec<u8>,
}

/// A supplier of inputs. One required method; [`done`](Source::done) lets a source
/// drop an input only once the caller has kept it durably.
pub trait Source {
    /// The next input that is ready now, or `None` when there is none yet.
    fn poll(&mut self) -> Result<Option<Received>, InputError>;

    /// The caller has kept `item` durably; the source may forget it.
    fn done(&mut self, _item: &Received) -> Result<(), InputError> {
        Ok(())
    }

    /// The caller could not keep `item` (e.g. the disk is full): offer it again
    /// on a later poll.
    fn retry(&mut self, _item: &Received) {}

    /// Every input ready now, up to and including the first error. Stopping
    /// there matters: a source whose every poll fails (a watched folder that
    /// vanished) would otherwise be polled forever, collecting errors. The next
    /// drain carries on after the input that failed.
    fn drain(&mut self) -> Vec<Result<Received, InputError>> {
        let mut out = Vec::new();
        loop {
            match self.poll() {
                Ok(Some(r)) => out.push(Ok(r)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
}

/// Inputs held in memory, in order.
#[derive(Debug, Default)]
pub struct MemorySource {
    queue: VecDeque<Received>,
}

impl MemorySource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, name: &str, bytes: Vec<u8>) {
        self.queue.push_back(Received {
            origin: format!("memory:{name}"),
            bytes,
        });
    }
}

impl Source for MemorySource {
    fn poll(&mut self) -> Result<Option<Received>, InputError> {
        Ok(self.queue.pop_front())
    }
}

/// A folder that a modality or a person drops files into. Files whose names start
/// with `.` or end in `.part`/`.tmp` are being written and are skipped, as are
/// files modified within the last `settle` (a copy still in progress). A file is
/// deleted by [`done`](Source::done), after the caller has stored it; until then
/// it is not yielded twice.
#[derive(Debug)]
pub struct FolderSource {
    dir: PathBuf,
    settle: Duration,
    /// Largest file read; a larger one is refused from its size alone.
    max_bytes: u64,
    handed_out: HashSet<PathBuf>,
    ready: VecDeque<PathBuf>,
}

impl FolderSource {
    pub fn new(dir: impl Into<PathBuf>, settle: Duration) -> Self {
        FolderSource {
            dir: dir.into(),
            settle,
            max_bytes: crate::input::ValidateOptions::default().max_input_bytes,
            handed_out: HashSet::new(),
            ready: VecDeque::new(),
        }
    }

    /// Refuse files larger than `max_bytes` without reading them (default: the
    /// [`ValidateOptions`](crate::input::ValidateOptions) input cap), so memory
    /// is bounded by this, not by what is dropped in the folder.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read one file, refusing it from its size before reading, and stopping
    /// one byte past the limit in case it grows meanwhile.
    fn read_capped(&self, path: &Path) -> Result<Vec<u8>, InputError> {
        use std::io::Read;
        let input = path.display().to_string();
        let too_large = |size| InputError::InputTooLarge {
            input: input.clone(),
            what: "file",
            size,
            max_bytes: self.max_bytes,
        };
        let file = std::fs::File::open(path).map_err(|e| self.io(path, e))?;
        let size = file.metadata().map_err(|e| self.io(path, e))?.len();
        if size > self.max_bytes {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(path, e))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Whether the folder can be listed now. When it cannot (missing, not a
    /// directory, no permission), what was remembered about its files is
    /// dropped, so a folder that comes back is read afresh.
    pub fn check(&mut self) -> Result<(), InputError> {
        match std::fs::read_dir(&self.dir) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.ready.clear();
                self.handed_out.clear();
                Err(self.io(&self.dir, e))
            }
        }
    }

    fn io(&self, path: &Path, source: std::io::Error) -> InputError {
        InputError::Io {
            input: path.display().to_string(),
            source,
        }
    }

    fn scan(&mut self) -> Result<(), InputError> {
        let now = SystemTime::now();
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io(&self.dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
                continue;
            }
            if self.handed_out.contains(&path) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(Duration::MAX);
            if age >= self.settle {
                found.push(path);
            }
        }
        found.sort();
        self.ready.extend(found);
        Ok(())
    }
}

impl Source for FolderSource {
    fn poll(&mut self) -> Result<Option<Received>, InputError> {
        if self.ready.is_empty() {
            self.scan()?;
        }
        let Some(path) = self.ready.pop_front() else {
            return Ok(None);
        };
        // Handed out before reading: a file that fails is not read again
        // until a restart (or `retry`), so an error is not repeated per poll.
        self.handed_out.insert(path.clone());
        let bytes = self.read_capped(&path)?;
        Ok(Some(Received {
            origin: path.display().to_string(),
            bytes,
        }))
    }

    fn retry(&mut self, item: &Received) {
        self.handed_out.remove(Path::new(&item.origin));
    }

    fn done(&mut self, item: &Received) -> Result<(), InputError> {
        let path = PathBuf::from(&item.origin);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(&path, e)),
        }
        self.handed_out.remove(&path);
        Ok(())
    }
}
