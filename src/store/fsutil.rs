//! File-level durability primitives: atomic replace of one file or one directory,
//! directory fsync, free-space probing and leftover clean-up.
//!
//! The rule everywhere is "write under a hidden temporary name, fsync it, rename
//! it into place, fsync the parent directory". A rename within one directory is
//! atomic on POSIX file systems, and the directory fsync makes the rename itself
//! survive a power cut, so a reader sees either the old state or the complete new
//! file, never a prefix of it.
//!
//! Where several files go durable at once (a report's set), they are written
//! first and then fsynced together, each on its own thread ([`sync_together`]):
//! every fsync still returns before anything is renamed, but the file system can
//! commit them in one journal transaction instead of one after another (each
//! fsync is a journal commit and a device cache flush, milliseconds on an SD
//! card or a virtual disk, far more than writing a report's bytes).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Prefix of every temporary file or directory; [`remove_leftovers`] deletes
/// whatever carries it after a crash.
pub const TMP_PREFIX: &str = ".tmp-";

pub(crate) fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, op, source }
}

/// Fsync a directory so that renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

/// Fsync every `(path, file)` and every directory in `dirs`, all at once (one
/// thread each); the first error is returned, after every fsync has ended.
pub fn sync_together(files: &[(&Path, &File)], dirs: &[&Path]) -> Result<(), StoreError> {
    let file_jobs = files.iter().map(|&(path, file)| {
        Box::new(move || file.sync_all().map_err(io_err(path, "fsync"))) as Job
    });
    let dir_jobs = dirs
        .iter()
        .map(|&dir| Box::new(move || sync_dir(dir)) as Job);
    let mut jobs: Vec<Job> = file_jobs.chain(dir_jobs).collect();
    let Some(mine) = jobs.pop() else {
        return Ok(());
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs.into_iter().map(|job| scope.spawn(job)).collect();
        let mut result = mine();
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(StoreError::Io {
                    path: PathBuf::new(),
                    op: "fsync (thread panicked)",
                    source: io::Error::other("fsync thread panicked"),
                })
            });
            result = result.and(r);
        }
        result
    })
}

type Job<'a> = Box<dyn FnOnce() -> Result<(), StoreError> + Send + 'a>;

/// Create `dir` (and parents) if missing, and make the new entries durable.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Write `bytes` to a new hidden temporary file in `dir` and fsync it; the caller
/// renames it into place. Returns the temporary path.
fn write_temp_file(dir: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io_err(dir, "create temporary file"))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(io_err(&tmp_path, "write"))?;
    // Keep the file: on success the caller renames it, on a crash it is a
    // leftover for `remove_leftovers`; on an error below we delete it ourselves.
    let (_, path) = tmp.keep().map_err(|e| StoreError::Io {
        path: tmp_path,
        op: "keep temporary file",
        source: e.error,
    })?;
    Ok(path)
}

/// Atomically create or replace `path` with `bytes` (temp file, fsync, rename,
/// fsync of the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = parent_of(path);
    let tmp = write_temp_file(dir, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, "rename into place")(e));
    }
    sync_dir(dir)
}

/// [`write_atomic`] for several files of one directory, the last one published
/// only after all the others: every file is written to a temporary, all are
/// fsynced together, the others are renamed into place and the directory
/// fsynced, then the last is renamed and the directory fsynced again. So each
/// file is absent or complete, and the last one's presence means all are there
/// (two directory fsyncs and one round of file fsyncs, instead of two fsyncs
/// per file).
pub fn write_atomic_set(dir: &Path, files: &[(PathBuf, &[u8])]) -> Result<(), StoreError> {
    let mut temps = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        if parent_of(path) != dir {
            return Err(io_err(path, "write into the set's directory")(
                io::Error::other(format!("not in {}", dir.display())),
            ));
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(dir)
            .map_err(io_err(dir, "create temporary file"))?;
        let tmp_path = tmp.path().to_path_buf();
        tmp.write_all(bytes).map_err(io_err(&tmp_path, "write"))?;
        temps.push((tmp_path, tmp));
    }
    let synced: Vec<(&Path, &File)> = temps
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_file()))
        .collect();
    sync_together(&synced, &[])?;
    let last = temps.pop();
    for ((_, tmp), (path, _)) in temps.into_iter().zip(files) {
        tmp.persist(path)
            .map_err(|e| io_err(path, "rename into place")(e.error))?;
    }
    if let (Some((_, tmp)), Some((path, _))) = (last, files.last()) {
        if files.len() > 1 {
            sync_dir(dir)?;
        }
        tmp.persist(path)
            .map_err(|e| io_err(path, "rename into place")(e.error))?;
        sync_dir(dir)?;
    }
    Ok(())
}

/// Write every `(file name, bytes)` pair into a fresh hidden directory inside
/// `parent`, fsync them and the directory together, then rename the directory to `parent/name` and fsync
/// `parent`. Either the whole set appears under `name` or none of it does.
/// Fails with `AlreadyExists`-kind I/O error if `parent/name` already exists.
pub fn publish_dir(
    parent: &Path,
    name: &str,
    files: &[(&str, &[u8])],
) -> Result<PathBuf, StoreError> {
    let staging = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempdir_in(parent)
        .map_err(io_err(parent, "create staging directory"))?;
    let mut written = Vec::with_capacity(files.len());
    for (file_name, bytes) in files {
        let path = staging.path().join(file_name);
        let mut f = File::create(&path).map_err(io_err(&path, "create"))?;
        f.write_all(bytes).map_err(io_err(&path, "write"))?;
        written.push((path, f));
    }
    let synced: Vec<(&Path, &File)> = written.iter().map(|(p, f)| (p.as_path(), f)).collect();
    // The files' contents and their names in the staging directory, together.
    sync_together(&synced, &[staging.path()])?;
    let target = parent.join(name);
    // `rename` over an existing non-empty directory fails (ENOTEMPTY/EEXIST), which
    // is what keeps an existing complete report from being replaced.
    fs::rename(staging.path(), &target)
        .map_err(io_err(&target, "rename report directory into place"))?;
    // The staging path no longer exists; dropping the guard is then a no-op.
    let _ = staging.keep();
    sync_dir(parent)?;
    Ok(target)
}

/// Delete temporary files and staging directories left by an interrupted write.
/// Returns how many were removed.
pub fn remove_leftovers(dir: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let entry = entry.map_err(io_err(dir, "list"))?;
        if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let res = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        res.map_err(io_err(&path, "remove leftover temporary"))?;
        removed += 1;
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Bytes available to an unprivileged writer on the file system holding `path`.
pub fn available_bytes(path: &Path) -> Result<u64, StoreError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|errno| StoreError::Io {
        path: path.to_path_buf(),
        op: "statvfs",
        source: io::Error::from(errno),
    })?;
    #[allow(clippy::useless_conversion)] // the field widths differ between targets
    Ok(u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())))
}

pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
