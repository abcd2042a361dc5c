//! The `serve` loop end to end: inputs from dcmtk's `storescu` and a watched
//! folder, the committed tiny bundle as the model, the real store. Bad inputs are
//! refused with their reason while the rest are reported; and `kill -9` at random
//! moments loses no acknowledged instance and leaves no half-written report.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxr_edge::input::instance_key;
use cxr_edge::input::synth::SynthCr;
use cxr_edge::reporter::{Reporter, ReporterOptions};
use cxr_edge::serve::{Outcome, ServeConfig, Server};
use cxr_edge::sink::NoSink;
use cxr_edge::store::{key, Store, StoreOptions, REPORT_JSON};
use cxr_edge::Report;
use rand::{Rng, SeedableRng};

const AE: &str = "CXR-SERVE";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> PathBuf {
    root().join("tests/fixtures/bundle/tiny")
}

fn config(dir: &Path, watch: Option<&Path>) -> ServeConfig {
    let mut text = format!(
        "store = {:?}\nmodel = {:?}\nmin_free_bytes = 0\npoll_ms = 50\n\
         [dicom]\nae_title = {AE:?}\nbind = \"127.0.0.1:0\"\n",
        dir.join("store"),
        tiny()
    );
    if let Some(w) = watch {
        text.push_str(&format!("[watch]\ndir = {w:?}\nsettle_ms = 0\n"));
    }
    let path = dir.join("unit.toml");
    std::fs::write(&path, &text).unwrap();
    ServeConfig::load(&path).unwrap()
}

fn storescu(port: u16, files: &[PathBuf]) -> std::process::Output {
    let port = port.to_string();
    let mut cmd = Command::new("storescu");
    cmd.args(["-v", "-aec", AE, "127.0.0.1", &port]).args(files);
    cmd.output()
        .expect("storescu (dcmtk, see scripts/apt-test.txt)")
}

/// The files storescu got a success response for, from its `-v` log.
fn acknowledged(out: &std::process::Output) -> Vec<PathBuf> {
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut current = None;
    let mut acked = Vec::new();
    for line in log.lines() {
        if let Some(f) = line.strip_prefix("I: Sending file: ") {
            current = Some(PathBuf::from(f.trim()));
        } else if line.contains("Received Store Response (Success)") {
            acked.extend(current.take());
        }
    }
    acked
}

fn write_cr(dir: &Path, name: &str, cr: &SynthCr) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, cr.to_bytes()).unwrap();
    p
}

#[test]
fn bad_inputs_are_refused_and_the_others_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = tmp.path().join("drop");
    let send = tmp.path().join("send");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::create_dir_all(&send).unwrap();
    let reporter = Reporter::open(&tiny(), &ReporterOptions::default()).unwrap();
    let mut server =
        Server::start(&config(tmp.path(), Some(&drop)), reporter, Box::new(NoSink)).unwrap();

    // Over DICOM: two good films and a lateral (the receiver keeps all three;
    // refusing a film is the reporter's business, not the network's).
    let mut lateral = SynthCr::new(2, 300, 260);
    lateral.view_position = Some("LATERAL".into());
    let files = vec![
        write_cr(&send, "a.dcm", &SynthCr::new(0, 300, 260)),
        write_cr(&send, "b.dcm", &SynthCr::new(1, 300, 260)),
        write_cr(&send, "lat.dcm", &lateral),
    ];
    let out = storescu(server.dicom_addr().unwrap().port(), &files);
    assert_eq!(acknowledged(&out).len(), 3, "{out:?}");

    // Into the watched folder: one good PNG and a row of bad files.
    let png = std::fs::read(root().join("samples/nih_00001638_000_normal.png")).unwrap();
    let mut ct = SynthCr::new(3, 300, 260);
    ct.modality = "CT".into();
    let mut no_pixels = SynthCr::new(4, 300, 260);
    no_pixels.pixels = None;
    let dcm = SynthCr::new(5, 300, 260).to_bytes();
    let dropped: Vec<(&str, Vec<u8>, &str)> = vec![
        ("good.png", png.clone(), "reported"),
        ("zero.png", vec![], "empty"),
        ("trunc.png", png[..png.len() / 3].to_vec(), "corrupt"),
        (
            "huge.png",
            super::input::png_header_only(60_000, 60_000),
            "too-large",
        ),
        ("trunc.dcm", dcm[..dcm.len() / 2].to_vec(), "corrupt"),
        ("ct.dcm", ct.to_bytes(), "wrong-modality"),
        ("nopixels.dcm", no_pixels.to_bytes(), "no-pixel-data"),
    ];
    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    for (name, bytes, code) in &dropped {
        std::fs::write(drop.join(name), bytes).unwrap();
        expected.insert(instance_key(bytes), code);
    }
    for (i, code) in [(0, "reported"), (1, "reported")] {
        expected.insert(SynthCr::new(i, 1, 1).sop_instance_uid, code);
    }
    expected.insert(lateral.sop_instance_uid.clone(), "lateral-view");

    let outcomes = server.step();
    let got: BTreeMap<String, &str> = outcomes
        .iter()
        .map(|(k, o)| {
            let code = match o {
                Outcome::Reported(r) => {
                    assert_eq!(&r.study.instance_key, k);
                    "reported"
                }
                Outcome::Refused(e) => e.code(),
                Outcome::Failed(e) => panic!("{k}: {e}"),
            };
            (k.clone(), code)
        })
        .collect();
    assert_eq!(got, expected);
    for (k, o) in &outcomes {
        if let Outcome::Refused(e) = o {
            assert!(
                e.to_string().contains("inbox"),
                "names the stored input: {e}"
            );
        }
        assert_eq!(
            server.store().is_reported(k),
            matches!(o, Outcome::Reported(_)),
            "{k}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&drop).unwrap().count(),
        0,
        "folder emptied once stored"
    );
    assert!(server.step().is_empty(), "nothing is processed twice");

    // Refusals are recorded with their reason; the instances stay in the inbox,
    // and a restarted unit does not show them again.
    let refused = server.store().refused();
    let expected_refused: Vec<&String> = expected
        .iter()
        .filter(|(_, code)| **code != "reported")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        refused.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        expected_refused
    );
    for (k, reason) in &refused {
        assert!(reason.contains("inbox"), "{k}: {reason}");
        assert!(server.store().instance_path(k).is_some_and(|p| p.is_file()));
    }
    std::mem::drop(server);
    let reporter = Reporter::open(&tiny(), &ReporterOptions::default()).unwrap();
    let mut again =
        Server::start(&config(tmp.path(), Some(&drop)), reporter, Box::new(NoSink)).unwrap();
    assert!(
        again.step().is_empty(),
        "refusals are not retried after a restart"
    );
}

/// A `cxr-edge serve` process and the DICOM port it reported.
struct Unit {
    child: Child,
    port: u16,
}

fn start_unit(config: &Path) -> Unit {
    let mut child = crate::util::own_binary(env!("CARGO_BIN_EXE_cxr-edge"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("serving DICOM") {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let port = addr
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .rsplit(':')
                        .next()
                        .unwrap();
                    let _ = tx.send(port.parse::<u16>().unwrap());
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("serve never reported its DICOM port");
    Unit { child, port }
}

impl Unit {
    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

#[test]
fn kill_9_loses_no_acknowledged_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let send = tmp.path().join("send");
    std::fs::create_dir_all(&send).unwrap();
    let cfg = config(tmp.path(), None);
    let cfg_path = tmp.path().join("unit.toml");
    drop(cfg);
    // The kills here are not the films' fault: on a busy machine several can
    // land on the same film, which `max_attempts` (3) would then refuse. This
    // test is about losing nothing, so the unit tries each film many times.
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, format!("max_attempts = 100\n{text}")).unwrap();
    let files: Vec<PathBuf> = (0..16)
        .map(|i| {
            write_cr(
                &send,
                &format!("cr{i:02}.dcm"),
                &SynthCr::new(600 + i, 600, 500),
            )
        })
        .collect();
    let uid_of = |p: &Path| {
        let i: u64 = p.file_stem().unwrap().to_str().unwrap()[2..]
            .parse()
            .unwrap();
        SynthCr::new(600 + i, 1, 1).sop_instance_uid
    };
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for _round in 0..4 {
        let unit = start_unit(&cfg_path);
        let todo: Vec<PathBuf> = files
            .iter()
            .filter(|f| !acked.contains(&uid_of(f)))
            .cloned()
            .collect();
        let port = unit.port;
        // One association per file, so the kill lands between and inside them.
        let sender = std::thread::spawn(move || {
            let mut done = Vec::new();
            for f in todo {
                let out = storescu(port, std::slice::from_ref(&f));
                let acked = acknowledged(&out);
                if acked.is_empty() {
                    break;
                }
                done.extend(acked);
            }
            done
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..400)));
        unit.kill9();
        let before = acked.len();
        acked.extend(sender.join().unwrap().iter().map(|p| uid_of(p)));
        eprintln!(
            "round {_round}: {} more acknowledged before kill -9",
            acked.len() - before
        );
    }
    // Last run: send the rest, wait for every acknowledged instance's report.
    let unit = start_unit(&cfg_path);
    let todo: Vec<PathBuf> = files
        .iter()
        .filter(|f| !acked.contains(&uid_of(f)))
        .cloned()
        .collect();
    let out = storescu(unit.port, &todo);
    acked.extend(acknowledged(&out).iter().map(|p| uid_of(p)));
    assert_eq!(acked.len(), files.len(), "all sent in the end");
    let outbox = tmp.path().join("store/outbox");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !acked.iter().all(|k| {
        outbox
            .join(key::encode(k).unwrap())
            .join(REPORT_JSON)
            .is_file()
    }) {
        assert!(Instant::now() < deadline, "reports never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    unit.kill9();

    let store = Store::open(tmp.path().join("store"), StoreOptions { min_free_bytes: 0 }).unwrap();
    assert!(store.pending().is_empty());
    let dirs: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        dirs.len(),
        acked.len(),
        "one report directory per instance: {dirs:?}"
    );
    for k in &acked {
        let json = std::fs::read(store.report_dir(k).unwrap().join(REPORT_JSON)).unwrap();
        let report: Report = cxr_edge::output::json::from_json(&json).unwrap();
        assert_eq!(&report.study.instance_key, k);
        assert!(!report.impression.is_empty());
        // Reading and decoding the film is timed where serve does it.
        let t = &report.timings;
        assert!(t.decode_image_ms > 0.0, "{t:?}");
        assert!(t.total_ms >= t.decode_image_ms + t.encoder_ms, "{t:?}");
    }
}

/// Under systemd (`Type=notify`, `WatchdogSec`) the loop reports readiness once
/// and keeps pinging the watchdog while it idles, however long its poll period.
#[test]
fn serve_tells_systemd_it_is_ready_and_alive() {
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reporter = Reporter::open(&tiny(), &ReporterOptions::default()).unwrap();
    let mut config = config(tmp.path(), None);
    // Three times the listener's wait: the loop must not sleep a whole poll.
    config.poll_ms = 30_000;
    let mut server = Server::start(&config, reporter, Box::new(NoSink)).unwrap();
    server.set_notifier(cxr_edge::systemd::Notifier::with_socket(
        &sock_path,
        Some(Duration::from_millis(400)),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // The server is not Send (its display sink may own hardware): it runs here,
    // and the listener stops it once it has heard enough.
    let listener = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 3 {
            match sock.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        flag.store(true, Ordering::SeqCst);
        got
    });
    server.run(&stop);
    let got = listener.join().unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], "READY=1");
    assert!(got[1..].iter().all(|m| m == "WATCHDOG=1"), "{got:?}");
}
