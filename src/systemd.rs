//! systemd readiness and watchdog notifications (`sd_notify`) over a plain
//! unix datagram, so the service unit's `Type=notify` and `WatchdogSec=` work
//! without linking libsystemd.
//!
//! The serve loop calls [`Notifier::ready`] once it listens and pings the
//! watchdog through a [`Heartbeat`]: before every study and at least every
//! [`Notifier::watchdog_interval`] while it waits. If the loop hangs (or one
//! study runs longer than `WatchdogSec`), systemd kills and restarts the service
//! (`Restart=on-failure`), and the store's attempt record of that study keeps a
//! film that always hangs from doing it again and again.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::retry::LogLimiter;

/// Where to send notifications; a no-op when not started by systemd.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<PathBuf>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (checking `WATCHDOG_PID` when set).
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from);
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// A notifier for an explicit socket (tests).
    pub fn with_socket(socket: impl Into<PathBuf>, watchdog: Option<Duration>) -> Self {
        Notifier {
            socket: Some(socket.into()),
            watchdog,
        }
    }

    /// Half the watchdog period, as `sd_watchdog_enabled(3)` recommends; `None`
    /// when the unit has no watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// `READY=1`: start-up finished.
    pub fn ready(&self) -> io::Result<()> {
        self.send("READY=1")
    }

    /// `WATCHDOG=1`: the main loop is alive.
    pub fn watchdog(&self) -> io::Result<()> {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1")
        } else {
            Ok(())
        }
    }

    /// `STATUS=...`: one line shown by `systemctl status`.
    pub fn status(&self, text: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}", text.replace('\n', " ")))
    }

    /// `STOPPING=1`: orderly shutdown began.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }

    fn send(&self, message: &str) -> io::Result<()> {
        let Some(path) = &self.socket else {
            return Ok(());
        };
        let sock = UnixDatagram::unbound()?;
        let text = path.to_string_lossy();
        if let Some(name) = text.strip_prefix('@') {
            // Abstract namespace socket.
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(message.as_bytes(), &addr)?;
                return Ok(());
            }
            #[cfg(not(target_os = "linux"))]
            return Err(io::Error::other(format!(
                "abstract socket {name} unsupported"
            )));
        }
        sock.send_to(message.as_bytes(), path)?;
        Ok(())
    }
}

/// The loop's side of the watchdog: pings when asked or when due, and says how
/// long the loop may block before the next ping is due.
#[derive(Debug)]
pub struct Heartbeat {
    notifier: Notifier,
    interval: Option<Duration>,
    last: Instant,
    errors: LogLimiter,
}

impl Heartbeat {
    pub fn new(notifier: Notifier) -> Self {
        Heartbeat {
            interval: notifier.watchdog_interval(),
            notifier,
            last: Instant::now(),
            errors: LogLimiter::default(),
        }
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Ping now. Called before each study, so a backlog of studies that each
    /// take less than the watchdog period never starves it.
    pub fn beat(&mut self) {
        if self.interval.is_none() {
            return;
        }
        self.last = Instant::now();
        match self.notifier.watchdog() {
            Ok(()) => {
                self.errors.clear();
            }
            Err(e) => {
                if let Some(repeats) = self.errors.admit(&e.to_string()) {
                    tracing::warn!(error = %e, repeats, "systemd watchdog notification");
                }
            }
        }
    }

    /// Ping if half the watchdog period passed since the last ping.
    pub fn beat_if_due(&mut self) {
        if self.until_due() == Some(Duration::ZERO) {
            self.beat();
        }
    }

    /// How long until the next ping is due; `None` without a watchdog.
    pub fn until_due(&self) -> Option<Duration> {
        self.interval
            .map(|interval| interval.saturating_sub(self.last.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_ready_and_watchdog_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::with_socket(&path, Some(Duration::from_secs(30)));
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        n.ready().unwrap();
        n.watchdog().unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn silent_without_socket() {
        let n = Notifier::default();
        assert!(n.ready().is_ok() && n.watchdog().is_ok());
        assert_eq!(n.watchdog_interval(), None);
        assert_eq!(Heartbeat::new(n).until_due(), None);
    }

    #[test]
    fn heartbeat_pings_on_demand_and_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let mut slow = Heartbeat::new(Notifier::with_socket(
            &path,
            Some(Duration::from_secs(3600)),
        ));
        slow.beat_if_due();
        let mut buf = [0u8; 64];
        assert!(server.recv(&mut buf).is_err(), "not due yet");
        slow.beat();
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        assert!(slow.until_due().unwrap() > Duration::from_secs(1000));

        let mut fast = Heartbeat::new(Notifier::with_socket(&path, Some(Duration::ZERO)));
        assert_eq!(fast.until_due(), Some(Duration::ZERO));
        fast.beat_if_due();
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
