//! The process's open-file limit. Each association holds a socket, the store
//! a few files at a time; the soft limit a login shell or an old init gives
//! (often 1024) is raised towards the hard limit so that a burst of
//! connections meets the association cap and the refusing thread, not
//! EMFILE. systemd sets both limits from `LimitNOFILE=` (board/cxr-edge.service).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The soft limit `serve` asks for: far above what the capped receiver uses.
pub const WANTED_OPEN_FILES: u64 = 4096;

/// Raise the soft RLIMIT_NOFILE to `want`, or to the hard limit if that is
/// lower; never lowers it. Returns the soft limit now in force.
pub fn raise_fd_limit(want: u64) -> std::io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let target = want.min(hard);
    if target <= soft {
        return Ok(soft);
    }
    setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
    Ok(target)
}
