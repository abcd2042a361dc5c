//! Wait until the peer's first message is whole in the socket's receive
//! buffer (peeked, not read) before dicom-ul sees the connection.
//!
//! Why: with dicom-ul's `sync-tls` feature on (our `tls` feature), dicom-ul
//! 0.10.1 hands the bytes of any failed association request to rustls's
//! `Acceptor` in a loop (`accept_tls` in its server.rs) that never ends when
//! those bytes are a short or empty prefix: a peer that connects and closes,
//! or stalls until the idle timeout shuts the socket, left a thread spinning
//! at 100 % CPU and its association slot taken for good (found by
//! `serve_at_its_open_file_limit_serves_a_sender_after_a_flood` in a `tls`
//! build). The same loop reads the TLS ClientHello from the socket. So the
//! request (an A-ASSOCIATE-RQ, or a ClientHello in one TLS record) must be
//! complete before `establish` runs; a peer that closes or stalls first is
//! dropped here. It costs one peek in a plain build, where it is harmless.

use std::net::TcpStream;
use std::os::fd::AsRawFd;

use nix::sys::socket::{recv, MsgFlags};

/// Longest first message waited for: association requests are a few
/// hundred bytes, a ClientHello at most one 16 KiB TLS record.
const MAX_FIRST: usize = 64 * 1024;

/// Peek exactly `n` bytes, blocking until they are there; fewer when the
/// peer closed, the socket was shut down or its read timeout passed.
fn peek(stream: &TcpStream, n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_WAITALL;
    let got = recv(stream.as_raw_fd(), &mut buf, flags).map_err(|e| e.to_string())?;
    if got < n {
        return Err(format!("closed or stalled after {got} of {n} bytes"));
    }
    Ok(buf)
}

/// Block until the first message is whole: an A-ASSOCIATE-RQ PDU, or with
/// `tls` a TLS handshake record holding a whole ClientHello.
pub(super) fn wait_whole(stream: &TcpStream, tls: bool) -> Result<(), String> {
    let total = if tls {
        let h = peek(stream, 9)?;
        let record = u16::from_be_bytes([h[3], h[4]]) as usize;
        let hello = u32::from_be_bytes([0, h[6], h[7], h[8]]) as usize;
        if h[0] != 0x16 || h[5] != 1 || hello + 4 > record {
            return Err("not a TLS ClientHello in one record".into());
        }
        5 + record
    } else {
        let h = peek(stream, 6)?;
        if h[0] != 0x01 {
            return Err(format!(
                "PDU type {:#04x} where an association request belongs",
                h[0]
            ));
        }
        6 + u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize
    };
    if total > MAX_FIRST {
        return Err(format!(
            "first message of {total} bytes (at most {MAX_FIRST})"
        ));
    }
    peek(stream, total).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::Shutdown;

    use crate::scp::socket_pair as pair;

    #[test]
    fn a_whole_request_passes_and_short_or_foreign_ones_do_not() {
        let (srv, mut cli) = pair();
        cli.write_all(&[1, 0, 0, 0, 0, 3, 9, 9, 9]).unwrap();
        assert_eq!(wait_whole(&srv, false), Ok(()));
        let (srv, mut cli) = pair();
        cli.write_all(&[1, 0, 0, 0, 0, 3, 9]).unwrap();
        cli.shutdown(Shutdown::Write).unwrap();
        assert!(wait_whole(&srv, false)
            .unwrap_err()
            .contains("after 7 of 9"));
        let (srv, cli) = pair();
        drop(cli);
        assert!(wait_whole(&srv, false).is_err());
        let (srv, mut cli) = pair();
        cli.write_all(&[4, 0, 0x7F, 0xFF, 0xFF, 0xF0]).unwrap();
        assert!(wait_whole(&srv, false).unwrap_err().contains("0x04"));
        // A ClientHello split over two records is refused.
        let (srv, mut cli) = pair();
        cli.write_all(&[0x16, 3, 1, 0, 8, 1, 0, 0, 40, 0, 0, 0, 0])
            .unwrap();
        assert!(wait_whole(&srv, true).unwrap_err().contains("one record"));
    }
}
