//! A global allocator that counts live heap bytes and their high-water mark, so
//! `bench` can give the peak memory of one study (everything the process
//! allocates through Rust, tract's tensors included) rather than the process
//! lifetime maximum that `getrusage` reports. Installed only with the
//! `heap-stats` feature; without it the counters stay at zero and [`COUNTING`]
//! is false.

#[cfg(feature = "heap-stats")]
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Whether the counting allocator is installed in this binary.
pub const COUNTING: bool = cfg!(feature = "heap-stats");

/// The system allocator plus two relaxed atomic counters.
#[cfg(feature = "heap-stats")]
pub struct Counting;

#[cfg(feature = "heap-stats")]
fn grow(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[cfg(feature = "heap-stats")]
fn shrink(n: usize) {
    CURRENT.fetch_sub(n, Ordering::Relaxed);
}

#[cfg(feature = "heap-stats")]
// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counters never affect the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size > layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

/// Live heap bytes.
pub fn current() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Highest live heap bytes since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Start a new high-water mark at the current level; returns that level.
pub fn reset_peak() -> usize {
    let now = current();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The process's resident-set high-water mark in bytes (Linux `VmHWM`).
pub fn max_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
