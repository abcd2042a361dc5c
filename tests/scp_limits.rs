//! The receiver's limits against peers that misbehave (issue #13): raw
//! sockets and dicom-ul's client for what no real sender does, dcmtk's
//! storescu for the real sender that must still get through. Times are
//! printed, never asserted; each wait has a generous bound.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cxr_edge::input::synth::SynthCr;
use cxr_edge::scp::{ScpConfig, VERIFICATION};
use cxr_edge::store::StoreOptions;
use dicom_ul::association::client::ClientAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use dicom_ul::ClientAssociationOptions;

use crate::scp::{start_with, text, uid, Peer, AE};

/// Longest any wait here may take before the test fails.
const BOUND: Duration = Duration::from_secs(60);

fn limits(idle_s: u64, deadline_s: u64, max: usize) -> ScpConfig {
    ScpConfig {
        idle_timeout_s: idle_s,
        association_timeout_s: deadline_s,
        max_associations: max,
        ..ScpConfig::default()
    }
}

fn associate(addr: SocketAddr) -> ClientAssociation<TcpStream> {
    ClientAssociationOptions::new()
        .calling_ae_title("RAW-PEER")
        .called_ae_title(AE)
        .with_abstract_syntax(VERIFICATION)
        .establish(addr)
        .expect("association with the receiver")
}

/// Block until the server closes `s`; true when it did within [`BOUND`].
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(BOUND)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an A-ABORT, say
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Write `bytes` one a second from another thread until the socket fails.
fn dribble(s: &TcpStream, bytes: Vec<u8>) {
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for b in bytes {
            if w.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

fn echo_rq(message_id: u16) -> Vec<u8> {
    let mut uid = VERIFICATION.as_bytes().to_vec();
    if uid.len() % 2 == 1 {
        uid.push(0);
    }
    let mut out = Vec::new();
    let mut put = |element: u16, value: &[u8]| {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    };
    put(0x0002, &uid);
    put(0x0100, &0x0030u16.to_le_bytes());
    put(0x0110, &message_id.to_le_bytes());
    put(0x0800, &0x0101u16.to_le_bytes());
    out
}

/// C-ECHO every half second until the association fails; its age then.
fn echo_until_closed(mut assoc: ClientAssociation<TcpStream>) -> Duration {
    let start = Instant::now();
    let pc = assoc.presentation_contexts()[0].id;
    for id in 1.. {
        let rq = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: echo_rq(id),
            }],
        };
        let answered = assoc.send(&rq).is_ok() && matches!(assoc.receive(), Ok(Pdu::PData { .. }));
        if !answered || start.elapsed() > BOUND {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    start.elapsed()
}

#[test]
fn idle_dribbling_and_overlong_associations_are_closed() {
    let peer = start_with(StoreOptions { min_free_bytes: 0 }, limits(2, 5, 4));
    let addr = peer.handle.local_addr();
    let start = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut slow_request = TcpStream::connect(addr).unwrap();
    dribble(&slow_request, [1u8, 0, 0, 0, 0, 0x44].repeat(20));
    let mut established = associate(addr);
    let mut slow_pdu = established.inner_stream().try_clone().unwrap();
    dribble(&slow_pdu, [4u8, 0, 0, 0, 0, 0x40].repeat(20));
    let chatty = std::thread::spawn(move || echo_until_closed(associate(addr)));

    for (what, s) in [
        ("silent connection", &mut silent),
        ("association request a byte a second", &mut slow_request),
        ("P-DATA a byte a second", &mut slow_pdu),
    ] {
        assert!(closed_by_server(s), "{what}: still open after {BOUND:?}");
        eprintln!("{what}: closed after {:?}", start.elapsed());
    }
    let age = chatty.join().unwrap();
    assert!(
        age < BOUND,
        "an association echoing every 0.5 s outlived {BOUND:?}"
    );
    eprintln!("association echoing every 0.5 s: closed after {age:?}");
    drop(established);
}

fn rejection(s: &mut TcpStream) -> [u8; 10] {
    // A request header declaring no body: the refuser answers at once.
    s.write_all(&[1, 0, 0, 0, 0, 0]).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    let mut rj = [0u8; 10];
    s.read_exact(&mut rj).unwrap();
    rj
}

fn storescu_one(peer: &Peer, n: u64) -> std::process::Output {
    let file = peer.write(n, 1);
    peer.storescu(&["-v"], &file)
}

#[test]
fn past_the_cap_associations_are_rejected_until_one_ends() {
    let peer = start_with(StoreOptions { min_free_bytes: 0 }, limits(60, 600, 2));
    let addr = peer.handle.local_addr();
    let holders = [associate(addr), associate(addr)];
    // A-ASSOCIATE-RJ, result 2 (transient), source 3 (service provider,
    // presentation), reason 2 (local limit exceeded).
    for _ in 0..6 {
        let mut extra = TcpStream::connect(addr).unwrap();
        assert_eq!(rejection(&mut extra), [3, 0, 0, 0, 0, 4, 0, 2, 3, 2]);
    }
    let out = storescu_one(&peer, 700);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("local limit exceeded"),
        "{}",
        text(&out)
    );
    for h in holders {
        h.release().unwrap();
    }
    let out = storescu_one(&peer, 701);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(peer.kept(), [uid(701)].into());
}

#[test]
fn a_pdu_declaring_2_gb_is_refused_from_its_header() {
    let peer = start_with(StoreOptions { min_free_bytes: 0 }, ScpConfig::default());
    let mut assoc = associate(peer.handle.local_addr());
    let s = assoc.inner_stream();
    s.write_all(&[4, 0, 0x7F, 0xFF, 0xFF, 0xF0]).unwrap();
    s.write_all(&[0u8; 1024]).unwrap();
    assert!(
        closed_by_server(s),
        "a 2 GB PDU header left the association open"
    );
    // The receiver goes on.
    let out = crate::scp::tool("echoscu", &["-aec", AE, "127.0.0.1", &peer.port()]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_instance_over_the_limit_is_answered_a700_and_the_next_one_kept() {
    let config = ScpConfig {
        max_instance_bytes: 200_000,
        ..ScpConfig::default()
    };
    let peer = start_with(StoreOptions { min_free_bytes: 0 }, config);
    let big = peer.files_dir().join("big.dcm");
    std::fs::write(&big, SynthCr::new(800, 600, 600).to_bytes()).unwrap();
    let small = peer.write(801, 1).remove(0);
    // -d shows the Error Comment; --no-halt goes on in the same association.
    let out = peer.storescu(&["-d", "--no-halt"], &[big, small]);
    let said = text(&out);
    assert!(
        said.contains("DIMSE Status                  : 0xa700"),
        "{said}"
    );
    assert!(
        said.contains("instance over the 200000 byte limit"),
        "{said}"
    );
    assert_eq!(said.matches("Association Accepted").count(), 1, "{said}");
    assert!(
        said.contains("DIMSE Status                  : 0x0000: Success"),
        "{said}"
    );
    assert_eq!(peer.kept(), [uid(801)].into());
}
