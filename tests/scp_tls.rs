//! DICOM over TLS (`[dicom.tls]`, cargo feature `tls`) against dcmtk's
//! `storescu +tls`, with certificates made here by the openssl command line
//! tool: a test CA, the receiver's certificate for 127.0.0.1, a client
//! certificate from that CA and one from another CA.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use cxr_edge::scp::{ScpConfig, TlsConfig};
use cxr_edge::store::StoreOptions;

use crate::scp::{start_with, text, tool, uid, Peer, AE};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// `name.key` and `name.pem`, a P-256 key and its certificate from `ca` (a
/// self-signed CA when `ca` is None), with `ext` as its v3 extensions.
fn certificate(dir: &Path, name: &str, ca: Option<&str>, ext: &str) {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let csr = format!("{name}.csr");
    let extfile = format!("{name}.ext");
    std::fs::write(dir.join(&extfile), ext).unwrap();
    let subject = format!("/CN={name}");
    let newkey = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut req = vec!["req"];
    req.extend(newkey);
    req.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
    openssl(dir, &req);
    let mut sign = vec!["x509", "-req", "-in", &csr, "-out", &pem, "-days", "2"];
    sign.extend(["-extfile", &extfile]);
    let (ca_pem, ca_key) = ca.map(|c| (format!("{c}.pem"), format!("{c}.key"))).unzip();
    match (&ca_pem, &ca_key) {
        (Some(p), Some(k)) => sign.extend(["-CA", p, "-CAkey", k, "-CAcreateserial"]),
        _ => sign.extend(["-key", &key]),
    }
    openssl(dir, &sign);
}

const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
const SERVER_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
    extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n";
const CLIENT_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
    extendedKeyUsage=clientAuth\n";

/// Store one synthetic CR over TLS as the holder of `client` (`name.key`,
/// `name.pem` in `dir`), trusting `ca.pem`.
fn storescu_tls(peer: &Peer, dir: &Path, client: &str, n: u64) -> std::process::Output {
    let file = peer.write(n, 1).remove(0);
    let key = dir.join(format!("{client}.key"));
    let pem = dir.join(format!("{client}.pem"));
    let ca = dir.join("ca.pem");
    let port = peer.port();
    tool(
        "storescu",
        &[
            "+tls",
            key.to_str().unwrap(),
            pem.to_str().unwrap(),
            "+cf",
            ca.to_str().unwrap(),
            "-aec",
            AE,
            "127.0.0.1",
            &port,
            file.to_str().unwrap(),
        ],
    )
}

#[test]
fn storescu_over_mutual_tls_is_served_and_other_clients_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificate(d, "ca", None, CA_EXT);
    certificate(d, "server", Some("ca"), SERVER_EXT);
    certificate(d, "xray", Some("ca"), CLIENT_EXT);
    certificate(d, "rogue-ca", None, CA_EXT);
    certificate(d, "rogue", Some("rogue-ca"), CLIENT_EXT);
    let config = ScpConfig {
        tls: Some(TlsConfig {
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            client_ca: Some(d.join("ca.pem")),
        }),
        max_associations: 1,
        ..ScpConfig::default()
    };
    let peer = start_with(StoreOptions { min_free_bytes: 0 }, config);

    // A peer that closes halfway through its ClientHello does not keep the
    // one association slot (dicom-ul's TLS accept loop would spin on it).
    let mut half = TcpStream::connect(peer.handle.local_addr()).unwrap();
    half.write_all(&[0x16, 3, 1, 0, 100, 1, 0, 0, 96, 3, 3])
        .unwrap();
    drop(half);
    let mut out = storescu_tls(&peer, d, "xray", 1000);
    for _ in 0..20 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        out = storescu_tls(&peer, d, "xray", 1000);
    }
    assert!(out.status.success(), "{}", text(&out));
    // A client certificate from another CA, and plain TCP, are refused.
    let out = storescu_tls(&peer, d, "rogue", 1001);
    assert!(!out.status.success(), "{}", text(&out));
    let plain = peer.storescu(&[], &peer.write(1002, 1));
    assert!(!plain.status.success(), "{}", text(&plain));
    assert_eq!(peer.kept(), [uid(1000)].into());
}

#[test]
fn an_unusable_tls_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.pem");
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let config = ScpConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsConfig {
            cert: dir.path().join("empty.pem"),
            key: missing,
            client_ca: None,
        }),
        ..ScpConfig::default()
    };
    let store = std::sync::Arc::new(
        cxr_edge::store::Store::open(dir.path().join("store"), StoreOptions::default()).unwrap(),
    );
    let e = cxr_edge::scp::Scp::bind(config, store)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("empty.pem"), "{e}");
}
