//! The listening socket. The configured address is normally the unit's own
//! address on the X-ray unit's link; that address may not exist yet when the
//! service starts (cable unplugged, link still coming up), and a bind failing
//! then would restart the service, and reload the model, every few seconds.
//! So an address that is not there yet is bound with IP_FREEBIND: the socket
//! listens now and receives once the address appears.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
};

/// Bind `addr`, even before it is assigned to an interface. The second value
/// says the address was not there yet.
pub(super) fn listen_on(addr: SocketAddr) -> std::io::Result<(TcpListener, bool)> {
    match TcpListener::bind(addr) {
        Err(e) if e.raw_os_error() == Some(Errno::EADDRNOTAVAIL as i32) => {
            Ok((bind_free(addr)?, true))
        }
        other => Ok((other?, false)),
    }
}

fn bind_free(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::IpFreebind, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    listen(&fd, Backlog::new(128)?)?;
    Ok(TcpListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_not_yet_assigned_is_bound_anyway() {
        // 192.0.2.0/24 is TEST-NET-1: on no interface here.
        let (listener, early) = listen_on("192.0.2.77:0".parse().unwrap()).unwrap();
        assert!(early);
        assert_eq!(
            listener.local_addr().unwrap().ip().to_string(),
            "192.0.2.77"
        );
        let (_, early) = listen_on("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(!early);
    }
}
