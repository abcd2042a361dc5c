//! File-level durability primitives: atomic replace of one file or one directory,
//! directory fsync, free-space probing and leftover clean-up.
//!
//! The rule everywhere is "write under a hidden temporary name, fsync it, rename
//! it into place, fsync the parent directory". A rename within one directory is
//! atomic on POSIX file systems, and the directory fsync makes the rename itself
//! survive a power cut, so a reader sees either the old state or the complete new
//! file, never a prefix of it.

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

/// Write every `(file name, bytes)` pair into a fresh hidden directory inside
/// `parent`, fsync them, then rename the directory to `parent/name` and fsync
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
    for (file_name, bytes) in files {
        let path = staging.path().join(file_name);
        let mut f = File::create(&path).map_err(io_err(&path, "create"))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(io_err(&path, "write"))?;
    }
    sync_dir(staging.path())?;
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
