//! Durable store: idempotence, crash leftovers, a real kill -9 of a writer,
//! write errors (read-only and full file systems), concurrent associations.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cxr_edge::output::{self, json};
use cxr_edge::store::{
    fsutil, Accepted, Completed, OutDir, Store, StoreError, StoreOptions, REPORT_JSON,
};

use crate::output::{sample_report, SOP_UID};

fn no_margin() -> StoreOptions {
    StoreOptions { min_free_bytes: 0 }
}

/// Bytes of a fake instance, a function of the key so a reader can check them.
fn instance_bytes(key: &str, len: usize) -> Vec<u8> {
    key.bytes().cycle().take(len).collect()
}

/// Everything a complete report directory must hold, parsed.
fn assert_complete_report(dir: &Path, key: &str) {
    let report = json::from_json(&fs::read(dir.join(REPORT_JSON)).unwrap()).unwrap();
    assert_eq!(report.study.instance_key, key);
    let fhir: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(output::FHIR_JSON)).unwrap()).unwrap();
    assert_eq!(fhir["resourceType"], "DiagnosticReport");
    let sr = fs::read(dir.join(output::SR_DCM)).unwrap();
    dicom_object::from_reader(&sr[128..]).unwrap();
}

fn complete(store: &Store, key: &str) -> Completed {
    let report = sample_report(key);
    let extra = output::render_extra(&report, None).unwrap();
    store.complete(key, &report, &extra).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn accept_pending_complete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let a = store.accept(SOP_UID, b"first", "dcm").unwrap();
    assert!(matches!(a, Accepted::New(_)));
    assert_eq!(fs::read(a.path()).unwrap(), b"first");
    store.accept("sha256:beef", b"second", "png").unwrap();
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.key).collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.contains(&"sha256:beef".to_string()) && pending.contains(&SOP_UID.to_string()));

    assert!(matches!(complete(&store, SOP_UID), Completed::Written(_)));
    assert!(store.is_reported(SOP_UID) && !store.is_reported("sha256:beef"));
    assert_complete_report(&store.report_dir(SOP_UID).unwrap(), SOP_UID);
    assert_eq!(
        store
            .pending()
            .iter()
            .map(|p| p.key.as_str())
            .collect::<Vec<_>>(),
        ["sha256:beef"]
    );

    drop(store);
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert_eq!(store.pending().len(), 1);
    assert_eq!(store.pending()[0].key, "sha256:beef");
    assert!(store.is_reported(SOP_UID));
}

#[test]
fn refused_instances_stay_kept_but_leave_the_queue_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    store.accept(SOP_UID, b"lateral film", "dcm").unwrap();
    store.accept("sha256:beef", b"good", "png").unwrap();
    let record = store.refuse(SOP_UID, "lateral view").unwrap();
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.key).collect();
    assert_eq!(pending, ["sha256:beef"]);
    assert_eq!(
        store.refused(),
        [(SOP_UID.to_string(), "lateral view".to_string())]
    );
    assert!(store.instance_path(SOP_UID).is_some_and(|p| p.is_file()));

    drop(store);
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert_eq!(store.pending().len(), 1, "the refusal survives a restart");
    drop(store);
    fs::remove_file(record).unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert_eq!(
        store.pending().len(),
        2,
        "deleting the record and restarting retries it"
    );
}

#[test]
fn attempts_are_counted_durably_until_finished_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    store.accept(SOP_UID, b"film", "dcm").unwrap();
    assert_eq!(store.unfinished_attempts(SOP_UID).unwrap(), 0);
    assert_eq!(store.start_attempt(SOP_UID).unwrap(), 1);
    assert_eq!(store.start_attempt(SOP_UID).unwrap(), 2);

    drop(store);
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert_eq!(store.unfinished_attempts(SOP_UID).unwrap(), 2, "survives");
    assert_eq!(store.pending().len(), 1, "still pending");
    store.finish_attempt(SOP_UID).unwrap();
    store.finish_attempt(SOP_UID).unwrap();
    assert_eq!(store.unfinished_attempts(SOP_UID).unwrap(), 0);

    store.start_attempt(SOP_UID).unwrap();
    store.refuse(SOP_UID, "crashed").unwrap();
    assert_eq!(
        store.unfinished_attempts(SOP_UID).unwrap(),
        0,
        "a refusal ends the count, so deleting it retries afresh"
    );
    assert!(names(&dir.path().join("attempts")).is_empty());
    assert!(store.start_attempt("").is_err(), "keys are checked");

    // Completing the report ends the attempt with it (the record and the
    // attempt's end are made durable together); finishing it after is a no-op.
    let other = "1.2.3.4.5";
    store.accept(other, b"film", "dcm").unwrap();
    assert_eq!(store.start_attempt(other).unwrap(), 1);
    complete(&store, other);
    assert!(names(&dir.path().join("attempts")).is_empty());
    store.finish_attempt(other).unwrap();
    drop(store);
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert!(store.is_reported(other));
    assert_eq!(store.unfinished_attempts(other).unwrap(), 0);
}

#[test]
fn same_instance_twice_is_kept_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let first = store.accept(SOP_UID, b"one", "dcm").unwrap();
    let again = store.accept(SOP_UID, b"two", "dcm").unwrap();
    assert_eq!(again, Accepted::Duplicate(first.path().to_path_buf()));
    assert_eq!(
        fs::read(first.path()).unwrap(),
        b"one",
        "the first copy is kept"
    );
    assert_eq!(names(&dir.path().join("inbox")).len(), 1);
    assert!(matches!(complete(&store, SOP_UID), Completed::Written(_)));
    assert!(matches!(
        complete(&store, SOP_UID),
        Completed::AlreadyReported(_)
    ));
    drop(store);
    // After a restart the index comes from the disk; still a duplicate.
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert!(matches!(
        store.accept(SOP_UID, b"three", "dcm").unwrap(),
        Accepted::Duplicate(_)
    ));
    assert!(store.pending().is_empty());
}

#[test]
fn hostile_keys_stay_inside_the_inbox_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let a = store.accept("../../escape", b"x", "dcm").unwrap();
    assert_eq!(a.path().parent().unwrap(), dir.path().join("inbox"));
    assert_eq!(store.pending()[0].key, "../../escape");
    assert!(matches!(
        store.accept("", b"x", "dcm"),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        store.accept(&"9".repeat(200), b"x", "dcm"),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        store.accept("k", b"x", "d/cm"),
        Err(StoreError::InvalidName { .. })
    ));
    let bad = vec![output::Output {
        name: "../x".into(),
        bytes: vec![],
    }];
    let r = sample_report("k");
    assert!(matches!(
        store.complete("k", &r, &bad),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(matches!(
        Store::open(dir.path(), no_margin()),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn crash_leftovers_are_removed_and_half_reports_never_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    store.accept("1.2.3.1", b"done", "dcm").unwrap();
    complete(&store, "1.2.3.1");
    store.accept("1.2.3.2", b"pending", "dcm").unwrap();
    drop(store);
    // What a crash at each step leaves behind: a temp instance not yet renamed
    // (accept never acknowledged), and a staging report directory not yet renamed
    // (complete interrupted), holding a half-written file.
    let inbox = dir.path().join("inbox");
    let outbox = dir.path().join("outbox");
    fs::write(inbox.join(format!("{}half", fsutil::TMP_PREFIX)), b"trunc").unwrap();
    let staging = outbox.join(format!("{}stage", fsutil::TMP_PREFIX));
    fs::create_dir(&staging).unwrap();
    fs::write(staging.join(REPORT_JSON), b"{\"study\": {").unwrap();

    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert_eq!(names(&inbox), ["1.2.3.1.dcm", "1.2.3.2.dcm"]);
    assert_eq!(names(&outbox), ["1.2.3.1"]);
    assert_complete_report(&outbox.join("1.2.3.1"), "1.2.3.1");
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.key).collect();
    assert_eq!(pending, ["1.2.3.2"]);
    assert!(!store.is_reported("1.2.3.2"));
    complete(&store, "1.2.3.2");
    assert!(store.pending().is_empty());
}

/// Child side of the kill -9 test: accepts and reports instances forever,
/// printing `ACK <key>` only after `accept` returned, as the SCP would answer.
#[test]
#[ignore = "run by store_survives_kill_9 as a child process"]
fn crash_child() {
    let Some(root) = std::env::var_os("CXR_STORE_CRASH_DIR") else {
        return;
    };
    let store = Store::open(&root, no_margin()).unwrap();
    for i in 0.. {
        let key = format!("1.2.826.0.1.{i}");
        store
            .accept(&key, &instance_bytes(&key, 64 * 1024), "dcm")
            .unwrap();
        println!("ACK {key}");
        complete(&store, &key);
    }
}

#[test]
fn store_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        // Kill after a varying number of acknowledgements, i.e. at some point
        // inside the next accept or complete.
        acked.extend(crate::util::kill_child_after(
            "store::crash_child",
            &[("CXR_STORE_CRASH_DIR", dir.path().display().to_string())],
            "ACK ",
            5 + round * 7,
        ));
        // Between rounds, the next child opens the store after the crash.
    }
    let store = Store::open(dir.path(), no_margin()).unwrap();
    for key in &acked {
        let path = store
            .instance_path(key)
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(
            fs::read(path).unwrap(),
            instance_bytes(key, 64 * 1024),
            "{key}"
        );
    }
    // Every report directory that exists is complete; the rest are pending.
    let outbox = dir.path().join("outbox");
    for name in names(&outbox) {
        assert!(!name.starts_with('.'), "leftover {name}");
        assert_complete_report(&outbox.join(&name), &name);
    }
    for p in store.pending() {
        assert!(!store.is_reported(&p.key));
        complete(&store, &p.key);
    }
    assert!(acked.iter().all(|k| store.is_reported(k)));
}

#[test]
fn concurrent_associations_store_each_instance_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), no_margin()).unwrap());
    let new_count: Arc<HashMap<String, AtomicUsize>> = Arc::new(
        (0..20)
            .map(|i| (format!("1.2.9.{i}"), AtomicUsize::new(0)))
            .collect(),
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (store, new_count) = (store.clone(), new_count.clone());
            std::thread::spawn(move || {
                for i in 0..20 {
                    // Each thread sends the shared instances in a different order.
                    let key = format!("1.2.9.{}", (i + t * 3) % 20);
                    if let Accepted::New(_) = store
                        .accept(&key, &instance_bytes(&key, 4096), "dcm")
                        .unwrap()
                    {
                        new_count[&key].fetch_add(1, Ordering::SeqCst);
                    }
                    let own = format!("1.2.8.{t}.{i}");
                    assert!(matches!(
                        store.accept(&own, b"own", "dcm").unwrap(),
                        Accepted::New(_)
                    ));
                    let _ = complete(&store, &key);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (key, n) in new_count.iter() {
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "{key} written {} times",
            n.load(Ordering::SeqCst)
        );
        assert!(store.is_reported(key));
    }
    assert_eq!(names(&dir.path().join("inbox")).len(), 20 + 8 * 20);
    assert_eq!(names(&dir.path().join("outbox")).len(), 20);
    assert_eq!(store.pending().len(), 8 * 20);
}

#[test]
fn store_under_a_regular_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"").unwrap();
    let err = Store::open(file.join("store"), no_margin()).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    assert!(OutDir::open(file.join("out")).is_err());
}

#[test]
fn unwritable_outbox_fails_and_keeps_the_study_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    store.accept(SOP_UID, b"x", "dcm").unwrap();
    // Running as root, permissions do not stop writes; a regular file where the
    // outbox directory was does.
    let outbox = dir.path().join("outbox");
    fs::remove_dir(&outbox).unwrap();
    fs::write(&outbox, b"").unwrap();
    let r = sample_report(SOP_UID);
    let err = store.complete(SOP_UID, &r, &[]).unwrap_err();
    assert!(err.to_string().contains("outbox"), "{err}");
    assert_eq!(err.dicom_status(), 0x0110);
    assert!(!store.is_reported(SOP_UID));
    assert_eq!(store.pending().len(), 1);
}

/// A tmpfs mounted for one test; `None` where mounting is not allowed (not root).
pub(crate) struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    pub(crate) fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP part: cannot mount a tmpfs here (needs root)");
        }
        ok.then_some(Tmpfs(dir))
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }

    fn remount_read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.0.path())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn free_space_margin_refuses_with_out_of_resources() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            min_free_bytes: u64::MAX / 2,
        },
    )
    .unwrap();
    let err = store.accept(SOP_UID, b"x", "dcm").unwrap_err();
    assert!(matches!(err, StoreError::InsufficientSpace { .. }), "{err}");
    assert!(err.is_out_of_space());
    assert_eq!(err.dicom_status(), 0xA700);
    assert!(store.pending().is_empty());
    assert!(names(&dir.path().join("inbox")).is_empty());
}

#[test]
fn full_disk_refuses_and_leaves_nothing_partial() {
    let Some(fs_) = Tmpfs::mount("1m") else {
        return;
    };
    let store = Store::open(fs_.path(), no_margin()).unwrap();
    let big = vec![7u8; 600 * 1024];
    store.accept("1.2.7.1", &big, "dcm").unwrap();
    let err = store.accept("1.2.7.2", &big, "dcm").unwrap_err();
    assert!(err.is_out_of_space(), "{err}");
    assert_eq!(err.dicom_status(), 0xA700);
    assert_eq!(names(&fs_.path().join("inbox")), ["1.2.7.1.dcm"]);
    // Bypassing the margin check, the write itself hits ENOSPC and cleans up.
    let err = fsutil::write_atomic(&fs_.path().join("inbox").join("x.dcm"), &big).unwrap_err();
    assert!(err.is_out_of_space(), "{err}");
    assert_eq!(names(&fs_.path().join("inbox")), ["1.2.7.1.dcm"]);
    assert_eq!(store.pending().len(), 1);
}

#[test]
fn read_only_file_system_is_a_processing_failure() {
    let Some(fs_) = Tmpfs::mount("1m") else {
        return;
    };
    let store = Store::open(fs_.path(), no_margin()).unwrap();
    store.accept("1.2.6.1", b"x", "dcm").unwrap();
    assert!(fs_.remount_read_only());
    let err = store.accept("1.2.6.2", b"y", "dcm").unwrap_err();
    assert!(
        matches!(err, StoreError::Io { .. }) && !err.is_out_of_space(),
        "{err}"
    );
    assert_eq!(err.dicom_status(), 0x0110);
    assert!(err.to_string().contains("inbox"), "{err}");
    let r = sample_report("1.2.6.1");
    assert!(store.complete("1.2.6.1", &r, &[]).is_err());
    assert!(!store.is_reported("1.2.6.1"));
}

#[test]
fn plain_out_dir_writes_complete_files_and_cleans_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(format!("{}old", fsutil::TMP_PREFIX)),
        b"half",
    )
    .unwrap();
    let out = OutDir::open(dir.path()).unwrap();
    let r = sample_report(SOP_UID);
    let written = out
        .write("chest", &r, &output::render_extra(&r, None).unwrap())
        .unwrap();
    assert_eq!(written.last().unwrap(), &out.report_path("chest"));
    assert_eq!(
        names(dir.path()),
        ["chest.fhir.json", "chest.report.json", "chest.sr.dcm"]
    );
    assert_eq!(
        json::from_json(&fs::read(out.report_path("chest")).unwrap()).unwrap(),
        r
    );
    // Any input name works and stays inside the directory.
    let written = out.write("../chest x-ray é", &r, &[]).unwrap();
    assert_eq!(written, [dir.path().join("_chest_x-ray__.report.json")]);
    assert!(matches!(
        out.write("..", &r, &[]),
        Err(StoreError::InvalidName { .. })
    ));
}

/// Not a check: prints what durability costs on this disk
/// (`cargo test --test tests store::latency -- --ignored --nocapture`).
#[test]
#[ignore = "measurement, prints timings"]
fn latency() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let bytes = vec![1u8; 512 * 1024];
    let (mut accept_ms, mut complete_ms, mut serve_ms) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..30 {
        let key = format!("1.2.5.{i}");
        let t = std::time::Instant::now();
        store.accept(&key, &bytes, "dcm").unwrap();
        accept_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = std::time::Instant::now();
        complete(&store, &key);
        complete_ms.push(t.elapsed().as_secs_f64() * 1e3);
        // What serve does around a study's report: the attempt record first,
        // the report set, then the end of the attempt.
        let key = format!("1.2.6.{i}");
        store.accept(&key, &bytes, "dcm").unwrap();
        let t = std::time::Instant::now();
        store.start_attempt(&key).unwrap();
        complete(&store, &key);
        store.finish_attempt(&key).unwrap();
        serve_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "accept 512 KiB: median {:.2} ms; render + complete: median {:.2} ms; \
         attempt + render + complete + end of attempt: median {:.2} ms",
        median(&mut accept_ms),
        median(&mut complete_ms),
        median(&mut serve_ms)
    );
}
