//! One destination's deliveries: take the oldest reported studies off its
//! queue, send each one's objects over one association, and settle each study
//! by what the peer answered.
//!
//! - every object stored → the study leaves the queue;
//! - an object refused for good (see [`StatusClass::Refused`]), or one that
//!   cannot be sent at all → the study is parked with the reason;
//! - an object refused with a status that may change ([`StatusClass::Busy`]:
//!   out of resources, processing failure) → the study stays queued and the
//!   destination backs off; after `park_after` such refusals in a row it is
//!   parked. A refusal does not count when the same association refused at
//!   least two studies and stored nothing: that is a full or failing archive,
//!   not one object it will not take. (Orthanc, for one, answers every
//!   refusal, its Lua filter's included, with A700 "out of resources".)
//! - the peer unreachable, the association rejected or broken, a timeout →
//!   nothing changes but the destination's backoff and its last error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::config::ForwardConfig;
use super::scu::{self, Answer, LinkError, Object, StatusClass};
use crate::output::{SC_DCM, SR_DCM};
use crate::retry::{Backoff, LogLimiter};
use crate::store::{Store, StudyState};

/// Studies sent over one association.
pub const BATCH: usize = 16;

/// What one destination's last attempts came to, for the screen, the status
/// command and measurements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestStats {
    pub dest: String,
    /// Studies delivered since the unit started.
    pub delivered: u64,
    /// Tries that failed (unreachable, rejected, broken, refused) since the unit started.
    pub failed_tries: u64,
    /// The error of the last try, while it keeps failing.
    pub failing: Option<String>,
    /// The peer refuses the association for good or accepts nothing we send.
    pub misconfigured: bool,
}

/// One destination's queue runner, driven by the forwarding thread.
pub(super) struct Destination {
    pub config: ForwardConfig,
    backoff: Backoff,
    due: Option<Instant>,
    log: LogLimiter,
    /// Busy refusals in a row, by study key.
    busy: HashMap<String, u32>,
    /// A `last-error.txt` may be on disk (from this run or an earlier one).
    error_on_disk: bool,
    pub stats: DestStats,
}

/// How one study of a batch ended.
enum Settled {
    Stored,
    Refused(String),
    Busy(String),
}

impl Destination {
    pub fn new(config: ForwardConfig) -> Destination {
        let backoff = Backoff::new(
            Duration::from_millis(config.retry_first_ms),
            Duration::from_millis(config.retry_max_ms),
        );
        let stats = DestStats {
            dest: config.name.clone(),
            ..DestStats::default()
        };
        Destination {
            config,
            backoff,
            due: None,
            log: LogLimiter::default(),
            busy: HashMap::new(),
            error_on_disk: true,
            stats,
        }
    }

    /// How long until the next try may start (zero: now).
    pub fn until_due(&self, now: Instant) -> Duration {
        self.due
            .map_or(Duration::ZERO, |d| d.saturating_duration_since(now))
    }

    /// One pass: deliver a batch if one is ready and the backoff allows,
    /// stopping between studies once `stop` is set. Returns true when it
    /// delivered or settled something (more may be ready).
    pub fn pass(&mut self, store: &Store, stop: &AtomicBool) -> bool {
        if !self.until_due(Instant::now()).is_zero() {
            return false;
        }
        let keys = self.ready(store);
        if keys.is_empty() {
            return false;
        }
        let objects: Vec<(String, Vec<Object>)> = keys
            .iter()
            .map(|k| (k.clone(), self.objects(store, k)))
            .collect();
        let all: Vec<Object> = objects.iter().flat_map(|(_, o)| o.clone()).collect();
        let (mut link, headers) = match scu::connect(&self.config, &all) {
            Ok(l) => l,
            Err(e) => {
                self.failed(store, &e);
                return false;
            }
        };
        let mut headers = headers.into_iter();
        let mut settled = Vec::new();
        let mut broken = None;
        'studies: for (key, objs) in &objects {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let mut answers = Vec::new();
            for obj in objs {
                let header = headers
                    .next()
                    .unwrap_or_else(|| Err("no header read".into()));
                let answer = match header {
                    Ok(h) => match link.store(obj, &h) {
                        Ok(a) => a,
                        Err(e) => {
                            broken = Some(e);
                            break 'studies;
                        }
                    },
                    Err(detail) => Answer {
                        class: StatusClass::Refused,
                        status: None,
                        detail,
                    },
                };
                answers.push(answer);
            }
            settled.push((key.clone(), settle(&answers)));
        }
        if broken.is_none() {
            link.release();
        }
        let progress = self.conclude(store, settled);
        match broken {
            Some(e) => self.failed(store, &e),
            None if progress.busy == 0 => self.succeeded(store),
            None => {}
        }
        progress.settled > 0
    }

    /// Keys of up to [`BATCH`] reported studies waiting, oldest first. Studies
    /// the unit refused (no report, nothing to send) or that left the store
    /// leave the queue here.
    fn ready(&mut self, store: &Store) -> Vec<String> {
        let mut out = Vec::new();
        let name = self.config.name.clone();
        for key in store.waiting(&name, BATCH * 4) {
            match store.study_state(&key) {
                Some(StudyState::Reported) => out.push(key),
                Some(StudyState::Pending) => {}
                state => {
                    tracing::info!(key, dest = name, ?state, "nothing to forward: no report");
                    if let Err(e) = store.delivered(&key, &name) {
                        tracing::error!(key, dest = name, error = %e, "cannot update the queue");
                    }
                }
            }
            if out.len() == BATCH {
                break;
            }
        }
        out
    }

    /// The files to send for `key`: its SR always (it is the last, so the
    /// image and the screen are in the archive when the report appears), the
    /// received image and the screen's Secondary Capture when configured.
    fn objects(&self, store: &Store, key: &str) -> Vec<Object> {
        let mut out = Vec::new();
        let report = store.report_dir(key).ok();
        if self.config.send_image {
            if let Some(path) = store.instance_path(key) {
                out.push(Object {
                    what: "image",
                    path,
                });
            }
        }
        if let Some(dir) = &report {
            let sc = dir.join(SC_DCM);
            if self.config.send_screen && sc.is_file() {
                out.push(Object {
                    what: "screen",
                    path: sc,
                });
            }
            out.push(Object {
                what: "SR",
                path: dir.join(SR_DCM),
            });
        }
        out
    }
}

/// A study's outcome from the answers to its objects (all of them, or up to
/// the first that broke the link).
fn settle(answers: &[Answer]) -> Settled {
    let details = |class| {
        answers
            .iter()
            .filter(|a| a.class == class)
            .map(|a| a.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if answers.iter().any(|a| a.class == StatusClass::Refused) {
        Settled::Refused(details(StatusClass::Refused))
    } else if answers.iter().any(|a| a.class == StatusClass::Busy) {
        Settled::Busy(details(StatusClass::Busy))
    } else {
        Settled::Stored
    }
}

/// What a batch came to.
struct Progress {
    settled: usize,
    busy: usize,
}

impl Destination {
    /// Apply the batch's outcomes to the queue (see the module doc).
    fn conclude(&mut self, store: &Store, settled: Vec<(String, Settled)>) -> Progress {
        let name = self.config.name.clone();
        let stored = settled
            .iter()
            .filter(|(_, s)| matches!(s, Settled::Stored))
            .count();
        let busy = settled
            .iter()
            .filter(|(_, s)| matches!(s, Settled::Busy(_)))
            .count();
        let archive_full = stored == 0 && busy >= 2;
        let mut progress = Progress { settled: 0, busy };
        for (key, outcome) in settled {
            let result = match outcome {
                Settled::Stored => {
                    self.busy.remove(&key);
                    self.stats.delivered += 1;
                    tracing::info!(key, dest = name, "delivered");
                    store.delivered(&key, &name)
                }
                Settled::Refused(reason) => {
                    self.busy.remove(&key);
                    tracing::warn!(
                        key,
                        dest = name,
                        reason,
                        "refused by the destination: parked"
                    );
                    store.park(&key, &name, &format!("refused: {reason}"))
                }
                Settled::Busy(reason) if !archive_full => {
                    let n = self.busy.entry(key.clone()).or_default();
                    *n += 1;
                    if *n < self.config.park_after {
                        tracing::warn!(
                            key,
                            dest = name,
                            reason,
                            refusals = *n,
                            "refused; will retry"
                        );
                        continue;
                    }
                    let n = *n;
                    self.busy.remove(&key);
                    tracing::warn!(key, dest = name, reason, "refused again and again: parked");
                    store.park(
                        &key,
                        &name,
                        &format!("refused {n} times in a row: {reason}"),
                    )
                }
                Settled::Busy(_) => continue,
            };
            progress.settled += 1;
            if let Err(e) = result {
                tracing::error!(key, dest = name, error = %e, "cannot update the queue");
            }
        }
        if busy > 0 {
            self.failed(
                store,
                &LinkError::Transient(format!("{busy} studies refused for now")),
            );
        }
        progress
    }

    fn failed(&mut self, store: &Store, error: &LinkError) {
        let wait = self.backoff.failed();
        self.due = Some(Instant::now() + wait);
        self.stats.failed_tries += 1;
        self.stats.misconfigured = matches!(error, LinkError::Misconfigured(_));
        let text = error.to_string();
        if let Some(repeats) = self.log.admit(&text) {
            tracing::warn!(
                dest = self.config.name,
                error = text,
                repeats,
                retry_in_ms = wait.as_millis() as u64,
                "cannot deliver; will retry"
            );
        }
        if self.stats.failing.as_deref() != Some(&text) {
            let line = format!("{} {text}", crate::reporter::now_rfc3339());
            if let Err(e) = store.set_forward_error(&self.config.name, Some(&line)) {
                tracing::error!(dest = self.config.name, error = %e, "cannot record the error");
            }
            self.stats.failing = Some(text);
            self.error_on_disk = true;
        }
    }

    fn succeeded(&mut self, store: &Store) {
        self.backoff.succeeded();
        self.due = None;
        self.stats.misconfigured = false;
        if self.stats.failing.take().is_some() || self.log.clear() {
            tracing::info!(dest = self.config.name, "delivering again");
        }
        if self.error_on_disk {
            match store.set_forward_error(&self.config.name, None) {
                Ok(()) => self.error_on_disk = false,
                Err(e) => {
                    tracing::error!(dest = self.config.name, error = %e, "cannot clear the error")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn busy(key: &str) -> (String, Settled) {
        (
            key.to_string(),
            Settled::Busy("image: status 0xA700".into()),
        )
    }

    #[test]
    fn busy_refusals_park_one_study_but_not_a_full_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), StoreOptions { min_free_bytes: 0 }).unwrap();
        for key in ["1.1", "1.2", "1.3"] {
            store.accept(key, b"x", "dcm").unwrap();
            store.enqueue(key, &["pacs".into()]).unwrap();
        }
        let config: ForwardConfig = toml::from_str(
            "name = \"pacs\"\nae_title = \"P\"\nhost = \"h\"\nport = 1\npark_after = 2",
        )
        .unwrap();
        let mut dest = Destination::new(config);
        // Everything refused: a full archive; nothing counts, however often.
        for _ in 0..5 {
            dest.conclude(&store, vec![busy("1.1"), busy("1.2")]);
        }
        assert_eq!(store.waiting("pacs", 10), ["1.1", "1.2", "1.3"]);
        // One refused while another is stored: it counts, and twice parks it.
        dest.conclude(&store, vec![busy("1.1"), ("1.2".into(), Settled::Stored)]);
        assert_eq!(store.waiting("pacs", 10), ["1.1", "1.3"]);
        dest.conclude(&store, vec![busy("1.1")]);
        assert_eq!(store.waiting("pacs", 10), ["1.3"]);
        let parked = crate::store::forward_status(tmp.path()).unwrap()[0]
            .parked
            .clone();
        assert_eq!(parked[0].0, "1.1");
        assert!(parked[0]
            .1
            .starts_with("refused 2 times in a row: image: status 0xA700"));
        assert_eq!(dest.stats.delivered, 1);
        assert!(dest.stats.failing.is_some());
    }
}
