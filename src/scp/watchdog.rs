//! Timeouts that fire whatever the peer sends. A socket read timeout alone
//! cannot do it: dicom-ul's `establish` sets its own (none, by default) over
//! ours, and a timeout per read is reset by every byte, so a peer sending one
//! byte a second holds the association for ever. Instead one thread watches
//! every association's clock and shuts the socket down (which wakes the
//! blocked read) when the peer has kept us waiting longer than the idle
//! timeout for one PDU, or the association has outlived its deadline.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const NOT_WAITING: u64 = u64::MAX;

/// Which limit closed an association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    Idle,
    Deadline,
}

/// One association's clock, shared with the watchdog thread.
struct Clock {
    started: Instant,
    idle: Duration,
    deadline: Duration,
    /// Milliseconds after `started` since which we wait on the peer.
    waiting_since_ms: AtomicU64,
    /// 0: running, 1: idle timeout fired, 2: deadline fired.
    expired: AtomicU8,
    done: AtomicBool,
}

impl Clock {
    fn check(&self, now: Instant) -> Option<Expired> {
        let age = now.duration_since(self.started);
        if age > self.deadline {
            return Some(Expired::Deadline);
        }
        let since = self.waiting_since_ms.load(Ordering::SeqCst);
        let waited = age.saturating_sub(Duration::from_millis(since));
        (since != NOT_WAITING && waited > self.idle).then_some(Expired::Idle)
    }
}

struct Watched {
    clock: Arc<Clock>,
    socket: TcpStream,
}

#[derive(Default)]
struct Shared {
    watched: Mutex<Vec<Watched>>,
}

/// The watching thread's handle; it ends when the handle and every
/// [`Watch`] are gone.
pub(super) struct Watchdog {
    shared: Arc<Shared>,
}

/// An association's side of its clock; dropping it ends the watch.
pub(super) struct Watch {
    clock: Arc<Clock>,
    _shared: Arc<Shared>,
}

impl Watchdog {
    /// Start the thread; it looks at the clocks every `period`.
    pub fn spawn(period: Duration) -> std::io::Result<Watchdog> {
        let shared = Arc::new(Shared::default());
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("scp-watchdog".into())
            .spawn(move || watch_loop(&weak, period))?;
        Ok(Watchdog { shared })
    }

    /// Watch `socket`; the clock starts now, waiting on the peer (for its
    /// association request).
    pub fn watch(
        &self,
        socket: &TcpStream,
        idle: Duration,
        deadline: Duration,
    ) -> std::io::Result<Watch> {
        let clock = Arc::new(Clock {
            started: Instant::now(),
            idle,
            deadline,
            waiting_since_ms: AtomicU64::new(0),
            expired: AtomicU8::new(0),
            done: AtomicBool::new(false),
        });
        let socket = socket.try_clone()?;
        let mut watched = self
            .shared
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        watched.push(Watched {
            clock: clock.clone(),
            socket,
        });
        Ok(Watch {
            clock,
            _shared: self.shared.clone(),
        })
    }
}

fn watch_loop(shared: &Weak<Shared>, period: Duration) {
    loop {
        std::thread::sleep(period);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut watched = shared.watched.lock().unwrap_or_else(|e| e.into_inner());
        watched.retain(|w| {
            if w.clock.done.load(Ordering::SeqCst) {
                return false;
            }
            let Some(expired) = w.clock.check(now) else {
                return true;
            };
            w.clock.expired.store(expired as u8 + 1, Ordering::SeqCst);
            let _ = w.socket.shutdown(Shutdown::Both);
            false
        });
    }
}

impl Watch {
    /// From now on we wait on the peer: the idle timeout runs.
    pub fn waiting(&self) {
        let ms = self.clock.started.elapsed().as_millis() as u64;
        self.clock.waiting_since_ms.store(ms, Ordering::SeqCst);
    }

    /// The peer has delivered; we are working (the deadline still runs).
    pub fn working(&self) {
        self.clock
            .waiting_since_ms
            .store(NOT_WAITING, Ordering::SeqCst);
    }

    /// The limit that shut the socket down, if one did.
    pub fn expired(&self) -> Option<Expired> {
        match self.clock.expired.load(Ordering::SeqCst) {
            1 => Some(Expired::Idle),
            2 => Some(Expired::Deadline),
            _ => None,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.clock.done.store(true, Ordering::SeqCst);
    }
}

/// How often to look: often enough that a limit fires within a quarter of
/// the idle timeout, never busier than every 50 ms.
pub(super) fn period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    use crate::scp::socket_pair as pair;

    #[test]
    fn an_idle_peer_is_shut_out_and_a_working_one_is_not() {
        let dog = Watchdog::spawn(Duration::from_millis(20)).unwrap();
        let (mut idle_srv, _idle_cli) = pair();
        let (busy_srv, _busy_cli) = pair();
        let idle = dog
            .watch(
                &idle_srv,
                Duration::from_millis(100),
                Duration::from_secs(60),
            )
            .unwrap();
        let busy = dog
            .watch(
                &busy_srv,
                Duration::from_millis(100),
                Duration::from_secs(60),
            )
            .unwrap();
        busy.working();
        // The blocked read returns once the watchdog shuts the socket down.
        assert_eq!(idle_srv.read(&mut [0u8; 8]).unwrap(), 0);
        assert_eq!(idle.expired(), Some(Expired::Idle));
        assert_eq!(busy.expired(), None);
    }

    #[test]
    fn the_deadline_fires_while_working() {
        let dog = Watchdog::spawn(Duration::from_millis(20)).unwrap();
        let (mut srv, _cli) = pair();
        let w = dog
            .watch(&srv, Duration::from_secs(60), Duration::from_millis(100))
            .unwrap();
        w.working();
        assert_eq!(srv.read(&mut [0u8; 8]).unwrap(), 0);
        assert_eq!(w.expired(), Some(Expired::Deadline));
    }
}
