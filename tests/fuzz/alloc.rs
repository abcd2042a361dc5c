//! The fuzz binary's global allocator: the system allocator plus a count of live
//! heap bytes and their high-water mark. Process-wide rather than per thread,
//! because dicom-pixeldata and image decode on rayon's threads; the harness runs
//! one case at a time (see `harness::RUN_LOCK`), so the mark is that case's.
//!
//! An allocation that would take the live total past [`HARD_CEILING`] is not
//! made: the case is named on stderr and the process exits, before the machine
//! starts swapping or the OOM killer takes the whole test run (a 168-byte DICOM
//! once asked for 1.6 GB). Peaks under it are judged by the harness against the
//! smaller bound it is configured with.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Live bytes past which the process stops instead of allocating.
pub const HARD_CEILING: usize = 1 << 30;

thread_local! {
    /// Set while this thread reports a ceiling breach, so the report's own
    /// allocations pass straight through.
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

/// Called with the requested size when [`HARD_CEILING`] would be passed; never returns.
static ON_CEILING: std::sync::OnceLock<fn(usize) -> !> = std::sync::OnceLock::new();

pub fn on_ceiling(report: fn(usize) -> !) {
    let _ = ON_CEILING.set(report);
}

pub struct Counting;

fn grow(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn check(n: usize) {
    if CURRENT.load(Ordering::Relaxed).saturating_add(n) > HARD_CEILING
        && !REPORTING.with(|r| r.replace(true))
    {
        if let Some(report) = ON_CEILING.get() {
            report(n);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counters never affect the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        let p = System.alloc(layout);
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            check(new_size - layout.size());
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size > layout.size() {
                grow(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Start a new high-water mark at the current level; returns that level.
pub fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Highest live heap bytes since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}
