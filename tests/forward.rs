//! Forwarding against a real archive: Orthanc from Debian (`Orthanc <config>`,
//! started here on free loopback ports with its own temporary storage, killed
//! by a guard however the test ends), counted through its REST API; dcmtk's
//! `storescp` as a second peer. The studies are small synthetic CRs put in the
//! store as the receiver would have; the model is a stand-in (`quick_report`)
//! except in the `kill -9` test, which runs the real `cxr-edge serve` binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxr_edge::input::synth::SynthCr;
use cxr_edge::input::Radiograph;
use cxr_edge::screen::Outbox;
use cxr_edge::serve::{Outcome, ServeConfig, Server};
use cxr_edge::sink::NoSink;
use cxr_edge::store::{forward_status, Store, StoreOptions};
use cxr_edge::Report;

/// Longest wait for anything in these tests: a bound that turns a hang into a
/// failure, not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(180);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `done` until it holds; fail naming `what` after [`PATIENCE`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An Orthanc process with its own storage; killed when dropped.
struct Orthanc {
    child: Child,
    dir: tempfile::TempDir,
    http: u16,
}

/// A Lua filter that makes Orthanc refuse every instance of patient
/// `REFUSE-ME` (an error in the filter: Orthanc 1.10 answers A700).
const REFUSE_PATIENT: &str = r#"
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.PatientID == 'REFUSE-ME' then
    error('patient REFUSE-ME is not accepted here')
  end
  return true
end
"#;

impl Orthanc {
    fn start(dicom: u16, http: u16, lua: Option<&str>) -> Orthanc {
        let dir = tempfile::tempdir().unwrap();
        let mut config = serde_json::json!({
            "Name": "cxr-edge-test",
            "StorageDirectory": dir.path().join("storage"),
            "IndexDirectory": dir.path().join("index"),
            "DicomAet": "ORTHANC",
            "DicomPort": dicom,
            "HttpPort": http,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomCheckCalledAet": true,
            "StorageCompression": false,
            "SaveJobs": false,
            "Plugins": [],
        });
        if let Some(lua) = lua {
            let script = dir.path().join("filter.lua");
            std::fs::write(&script, lua).unwrap();
            config["LuaScripts"] = serde_json::json!([script]);
        }
        let path = dir.path().join("orthanc.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("orthanc.log")).unwrap();
        let child = Command::new("Orthanc")
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("Orthanc (Debian package orthanc, see scripts/apt-test.txt)");
        let orthanc = Orthanc { child, dir, http };
        wait_for("Orthanc to answer", || orthanc.try_get("/system").is_some());
        orthanc
    }

    fn try_get(&self, path: &str) -> Option<serde_json::Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200")
            .then(|| serde_json::from_str(body).ok())
            .flatten()
    }

    /// `(studies, series, instances)` from `/statistics`.
    fn counts(&self) -> (u64, u64, u64) {
        let s = self.try_get("/statistics").expect("Orthanc /statistics");
        let n = |k: &str| s[k].as_u64().unwrap();
        (n("CountStudies"), n("CountSeries"), n("CountInstances"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orthanc.log")).unwrap_or_default()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dcmtk's `storescp` writing what it receives into a folder; killed when dropped.
struct StoreScp {
    child: Child,
    dir: tempfile::TempDir,
}

impl StoreScp {
    fn start(port: u16) -> StoreScp {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("storescp")
            .args(["-aet", "STORESCP", "-od"])
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("storescp (dcmtk)");
        wait_for("storescp to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        StoreScp { child, dir }
    }

    fn files(&self) -> usize {
        std::fs::read_dir(self.dir.path()).unwrap().count()
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `[[forward]]` table.
struct Peer {
    name: &'static str,
    ae: &'static str,
    port: u16,
    image: bool,
    screen: bool,
}

fn unit_toml(dir: &Path, peers: &[Peer]) -> PathBuf {
    let mut text = format!(
        "store = {:?}\nmodel = {:?}\nmin_free_bytes = 0\npoll_ms = 20\nmax_attempts = 100\n\
         [dicom]\nae_title = \"CXR-EDGE\"\nbind = \"127.0.0.1:0\"\n",
        dir.join("store"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle/tiny"),
    );
    for p in peers {
        text.push_str(&format!(
            "[[forward]]\nname = {:?}\nae_title = {:?}\nhost = \"127.0.0.1\"\nport = {}\n\
             send_image = {}\nsend_screen = {}\ntimeout_s = 10\nretry_first_ms = 50\n\
             retry_max_ms = 400\npark_after = 3\n",
            p.name, p.ae, p.port, p.image, p.screen
        ));
    }
    let path = dir.join("unit.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A report for the film as the model would make it, without running one.
fn quick_report(r: &Radiograph) -> Result<Report, String> {
    let mut report = crate::output::sample_report(&r.info.instance_key);
    report.study = r.info.clone();
    Ok(report)
}

type QuickServer = Server<fn(&Radiograph) -> Result<Report, String>>;

/// A unit with the stand-in model, and `n` films (from number `first`) in its
/// store, all reported; `patient` names the patient of film `first`.
fn unit_with_studies(config: &Path, first: u64, n: u64, patient: Option<&str>) -> QuickServer {
    let config = ServeConfig::load(config).unwrap();
    let analyse: fn(&Radiograph) -> Result<Report, String> = quick_report;
    let mut server = Server::start(&config, analyse, Box::new(NoSink)).unwrap();
    for i in first..first + n {
        let mut cr = SynthCr::new(i, 256, 256);
        if let (Some(p), true) = (patient, i == first) {
            cr.patient_id = p.into();
        }
        server
            .store()
            .accept(&cr.sop_instance_uid, &cr.to_bytes(), "dcm")
            .unwrap();
    }
    let mut reported = 0;
    wait_for("every study reported", || {
        for (key, outcome) in server.step() {
            match outcome {
                Outcome::Reported(_) => reported += 1,
                other => panic!("{key}: {other:?}"),
            }
        }
        reported == n
    });
    server
}

#[test]
fn fifty_studies_reach_orthanc_and_storescp_exactly_once() {
    let (dicom, http, scp_port) = (free_port(), free_port(), free_port());
    let orthanc = Orthanc::start(dicom, http, None);
    let storescp = StoreScp::start(scp_port);
    let tmp = tempfile::tempdir().unwrap();
    let config = unit_toml(
        tmp.path(),
        &[
            Peer {
                name: "pacs",
                ae: "ORTHANC",
                port: dicom,
                image: true,
                screen: false,
            },
            Peer {
                name: "second",
                ae: "STORESCP",
                port: scp_port,
                image: false,
                screen: false,
            },
        ],
    );
    let started = Instant::now();
    let mut server = unit_with_studies(&config, 0, 50, None);
    let reported = started.elapsed();
    let store = server.store();
    wait_for("both queues to drain", || store.waiting_studies() == 0);
    let drained = started.elapsed();
    // Each study: the image and the SR, each in a series of its own.
    assert_eq!(orthanc.counts(), (50, 100, 100), "{}", orthanc.log());
    assert_eq!(storescp.files(), 50, "one SR per study");
    assert_eq!(server.outbox(), Outbox::Synced);
    let forwarder = server.forwarder().unwrap();
    wait_for("the counts", || {
        forwarder.stats().iter().all(|s| s.delivered == 50)
    });
    println!(
        "MEASURE 50 studies reported in {reported:?}, all delivered to 2 peers after {drained:?}"
    );
    // Nothing is sent twice: the queue stays empty and Orthanc unchanged.
    assert!(server.step().is_empty());
    assert_eq!(orthanc.counts().2, 100);
}

#[test]
fn studies_that_arrive_while_orthanc_is_down_arrive_once_it_is_up() {
    let (dicom, http) = (free_port(), free_port());
    let tmp = tempfile::tempdir().unwrap();
    let config = unit_toml(
        tmp.path(),
        &[Peer {
            name: "pacs",
            ae: "ORTHANC",
            port: dicom,
            image: false,
            screen: true,
        }],
    );
    let server = unit_with_studies(&config, 100, 10, None);
    let forwarder = server.forwarder().unwrap();
    wait_for("three failed tries", || {
        forwarder.stats()[0].failed_tries >= 3
    });
    assert_eq!(
        server.outbox(),
        Outbox::Pending(10),
        "down is pending, not failing"
    );
    assert_eq!(
        server.status().outbox,
        Outbox::Pending(10),
        "on the status line"
    );
    let status = forward_status(&tmp.path().join("store")).unwrap();
    assert_eq!(status[0].waiting.len(), 10);
    let error = status[0].last_error.clone().unwrap_or_default();
    assert!(error.contains(&format!("127.0.0.1:{dicom}")), "{error}");

    let orthanc = Orthanc::start(dicom, http, None);
    wait_for("the queue to drain", || {
        server.store().waiting_studies() == 0
    });
    // Each study: the SR and the screen capture, each in a series of its own.
    assert_eq!(orthanc.counts(), (10, 20, 20), "{}", orthanc.log());
    // The UIDs the unit fixed when it wrote the SR and the capture.
    let mut expected: Vec<String> = (100..110)
        .flat_map(|i| {
            let report = crate::output::sample_report(&SynthCr::new(i, 256, 256).sop_instance_uid);
            [
                cxr_edge::output::report_uid(&report),
                cxr_edge::output::sc::sc_uid(&report),
            ]
        })
        .collect();
    let instances = orthanc.try_get("/instances?expand").unwrap();
    let mut stored: Vec<String> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["MainDicomTags"]["SOPInstanceUID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    expected.sort();
    stored.sort();
    assert_eq!(stored, expected);
    wait_for("the counts", || forwarder.stats()[0].delivered == 10);
    let stats = &forwarder.stats()[0];
    println!(
        "MEASURE down/up: {} failed tries before Orthanc came up",
        stats.failed_tries
    );
    let status = forward_status(&tmp.path().join("store")).unwrap();
    assert_eq!(status[0].last_error, None, "cleared once delivering again");
    assert_eq!(server.outbox(), Outbox::Synced);
}

#[test]
fn a_study_orthanc_refuses_is_parked_and_the_others_delivered() {
    let (dicom, http) = (free_port(), free_port());
    let orthanc = Orthanc::start(dicom, http, Some(REFUSE_PATIENT));
    let tmp = tempfile::tempdir().unwrap();
    let config = unit_toml(
        tmp.path(),
        &[Peer {
            name: "pacs",
            ae: "ORTHANC",
            port: dicom,
            image: false,
            screen: false,
        }],
    );
    let server = unit_with_studies(&config, 200, 6, Some("REFUSE-ME"));
    let summary = || server.store().forward_summary()[0].clone();
    wait_for("one parked, none waiting", || {
        let s = summary();
        (s.waiting, s.parked) == (0, 1)
    });
    assert_eq!(orthanc.counts(), (5, 5, 5), "{}", orthanc.log());
    let status = forward_status(&tmp.path().join("store")).unwrap();
    let (key, reason) = &status[0].parked[0];
    assert_eq!(key, &SynthCr::new(200, 256, 256).sop_instance_uid);
    assert!(
        reason.contains("refused 3 times") && reason.contains("0xA700"),
        "{reason}"
    );
    assert_eq!(server.outbox(), Outbox::Failing(1));
    let output = crate::util::own_binary(env!("CARGO_BIN_EXE_cxr-edge"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        text.contains(&format!(
            "pacs (ORTHANC@127.0.0.1:{dicom}): 0 waiting, 1 parked"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("parked {key}: refused 3 times")),
        "{text}"
    );
}

/// A `cxr-edge serve` child process; killed (SIGKILL) when dropped.
struct Unit(Child);

impl Unit {
    fn start(config: &Path) -> Unit {
        let child = crate::util::own_binary(env!("CARGO_BIN_EXE_cxr-edge"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Unit(child)
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_during_delivery_loses_nothing_and_duplicates_nothing() {
    let (dicom, http) = (free_port(), free_port());
    let orthanc = Orthanc::start(dicom, http, None);
    let tmp = tempfile::tempdir().unwrap();
    let config = unit_toml(
        tmp.path(),
        &[Peer {
            name: "pacs",
            ae: "ORTHANC",
            port: dicom,
            image: true,
            screen: false,
        }],
    );
    {
        let store =
            Store::open(tmp.path().join("store"), StoreOptions { min_free_bytes: 0 }).unwrap();
        for i in 300..340 {
            let cr = SynthCr::new(i, 256, 256);
            store
                .accept(&cr.sop_instance_uid, &cr.to_bytes(), "dcm")
                .unwrap();
        }
    }
    for kill_at in [5, 40] {
        let unit = Unit::start(&config);
        wait_for("deliveries to start", || orthanc.counts().2 >= kill_at);
        drop(unit); // kill -9, mid-delivery
    }
    let _unit = Unit::start(&config);
    wait_for("every study in Orthanc", || orthanc.counts().2 >= 80);
    let status = || {
        let out = crate::util::own_binary(env!("CARGO_BIN_EXE_cxr-edge"))
            .args(["status", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("the queue to be empty", || {
        status().contains(": 0 waiting, 0 parked")
    });
    assert_eq!(orthanc.counts(), (40, 80, 80), "{}", orthanc.log());
}

#[test]
fn queued_studies_survive_a_reopen_and_retention_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || {
        Store::open(tmp.path(), StoreOptions { min_free_bytes: 0 })
            .unwrap()
            .with_retention(cxr_edge::store::Retention {
                max_age: Some(Duration::from_nanos(1)),
                ..Default::default()
            })
    };
    let keys: Vec<String> = (0..3).map(|i| format!("1.2.3.{i}")).collect();
    {
        let store = open();
        for key in &keys {
            store.accept(key, b"x", "dcm").unwrap();
            store.enqueue(key, &["a".into(), "b".into()]).unwrap();
            let report = crate::output::sample_report(key);
            store.complete(key, &report, &[]).unwrap();
        }
        store.delivered(&keys[0], "a").unwrap();
        store.delivered(&keys[0], "b").unwrap();
        store.park(&keys[1], "a", "refused: status 0xA900").unwrap();
    }
    let store = open();
    assert_eq!(store.waiting("a", 10), [keys[2].clone()]);
    assert_eq!(store.waiting("b", 10), [keys[1].clone(), keys[2].clone()]);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(store.prune(std::time::SystemTime::now()).unwrap(), 1);
    assert!(
        store.instance_path(&keys[0]).is_none(),
        "delivered everywhere: pruned"
    );
    assert!(store.instance_path(&keys[1]).is_some(), "parked by a: kept");
    assert!(store.instance_path(&keys[2]).is_some(), "waiting: kept");
    let status = forward_status(tmp.path()).unwrap();
    assert_eq!(
        status[0].parked,
        [(keys[1].clone(), "refused: status 0xA900".into())]
    );
    assert_eq!(status[1].waiting, [keys[1].clone(), keys[2].clone()]);
    let e = store.enqueue("1.2.3.9", &["a".into()]).unwrap_err();
    assert!(e.to_string().contains("not in the store"), "{e}");
    let e = store.enqueue(&keys[2], &["../x".into()]).unwrap_err();
    assert!(e.to_string().contains("destination name"), "{e}");
}
