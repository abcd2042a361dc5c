//! Pacing for loops that keep meeting the same error: a watched folder that is
//! gone, a disk that is full, a listener that cannot accept. [`Backoff`] says
//! when to try again (doubling waits up to a ceiling, so a lasting fault costs
//! flat CPU), and [`LogLimiter`] says when to log (the first time, when the
//! fault changes, then a reminder now and then), so a fault that lasts a
//! weekend leaves a few lines in the journal, not millions.
//!
//! Both are plain state machines that the caller consults; neither sleeps nor
//! spawns. The retry crates on crates.io (`backoff`, `backon`) run the retry
//! themselves, blocking or async, which does not fit a loop that must keep doing
//! other work (other studies, the watchdog) while one thing waits.

use std::time::{Duration, Instant};

/// When to try a failing operation again: after the first failure wait
/// `first`, then twice as long after each further failure, never more than
/// `max`. A success starts over.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next_wait: Duration,
    due: Option<Instant>,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        let max = max.max(first);
        Backoff {
            first,
            max,
            next_wait: first,
            due: None,
        }
    }

    /// True unless a failure was recorded and its wait has not passed yet.
    pub fn is_due(&self) -> bool {
        self.due.is_none_or(|due| Instant::now() >= due)
    }

    /// True while the last attempt failed.
    pub fn is_failing(&self) -> bool {
        self.due.is_some()
    }

    /// Record a failure; returns how long until the next attempt is due.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next_wait;
        self.due = Some(Instant::now() + wait);
        self.next_wait = wait.saturating_mul(2).min(self.max);
        wait
    }

    /// Record a success: the next failure waits `first` again.
    pub fn succeeded(&mut self) {
        self.due = None;
        self.next_wait = self.first;
    }
}

/// How often a fault that keeps recurring unchanged is logged again.
pub const REMIND_EVERY: Duration = Duration::from_secs(15 * 60);

/// Decides whether a recurring error is logged now: the first time, whenever
/// the fault changes, and then once per `remind` with the number of repeats
/// that were not logged in between. A fault is named by the caller: the error
/// message itself where it is stable, a fixed name where the message carries
/// parts that vary from try to try (a temporary file's name, a byte count).
#[derive(Debug, Clone)]
pub struct LogLimiter {
    remind: Duration,
    last: Option<Logged>,
}

#[derive(Debug, Clone)]
struct Logged {
    fault: String,
    at: Instant,
    unlogged: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(REMIND_EVERY)
    }
}

impl LogLimiter {
    pub fn new(remind: Duration) -> Self {
        LogLimiter { remind, last: None }
    }

    /// `Some(repeats)` when `fault` should be logged now, with how many times
    /// it recurred unlogged since it was last logged; `None` to stay quiet.
    pub fn admit(&mut self, fault: &str) -> Option<u64> {
        self.admit_at(fault, Instant::now())
    }

    fn admit_at(&mut self, fault: &str, now: Instant) -> Option<u64> {
        match &mut self.last {
            Some(last) if last.fault == fault => {
                if now.duration_since(last.at) < self.remind {
                    last.unlogged += 1;
                    return None;
                }
                let repeats = last.unlogged;
                last.at = now;
                last.unlogged = 0;
                Some(repeats)
            }
            _ => {
                self.last = Some(Logged {
                    fault: fault.to_string(),
                    at: now,
                    unlogged: 0,
                });
                Some(0)
            }
        }
    }

    /// The fault is over. True when one had been logged, so that the caller
    /// can say once that it recovered.
    pub fn clear(&mut self) -> bool {
        self.last.take().is_some()
    }

    /// True while a fault is being reported.
    pub fn is_active(&self) -> bool {
        self.last.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_a_success_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        assert!(b.is_due() && !b.is_failing());
        let waits: Vec<u128> = (0..4).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [10, 20, 35, 35]);
        assert!(b.is_failing());
        b.succeeded();
        assert!(b.is_due() && !b.is_failing());
        assert_eq!(b.failed(), Duration::from_millis(10));
    }

    #[test]
    fn a_long_wait_is_not_due_yet() {
        let mut b = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        b.failed();
        assert!(!b.is_due());
    }

    #[test]
    fn limiter_logs_first_and_changed_messages_then_reminds_with_a_count() {
        let mut l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.admit("folder gone"), Some(0));
        assert_eq!(l.admit("folder gone"), None);
        assert_eq!(l.admit("folder gone"), None);
        assert_eq!(l.admit("permission denied"), Some(0));
        assert!(l.is_active());
        assert!(l.clear());
        assert!(!l.clear(), "recovery is reported once");
        assert_eq!(l.admit("folder gone"), Some(0));

        let hour = Duration::from_secs(3600);
        let mut l = LogLimiter::new(hour);
        let t0 = Instant::now();
        assert_eq!(l.admit_at("disk full", t0), Some(0));
        assert_eq!(l.admit_at("disk full", t0 + hour / 2), None);
        assert_eq!(l.admit_at("disk full", t0 + hour / 2), None);
        assert_eq!(l.admit_at("disk full", t0 + hour), Some(2), "reminder");
        assert_eq!(l.admit_at("disk full", t0 + hour), None);
    }
}
