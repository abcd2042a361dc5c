//! The store over months (issue #13): "reported" survives whatever happens to
//! `outbox/`, retention removes finished studies oldest first and never a
//! pending or held one, a removal cut short by a crash (laid out by hand, and a
//! real `kill -9`) is finished at the next opening, and at the free-space
//! margin old studies make room instead of every new one being refused.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cxr_edge::input::Radiograph;
use cxr_edge::serve::{Outcome, ServeConfig, Server};
use cxr_edge::sink::NoSink;
use cxr_edge::store::{key, Retention, Store, StoreError, StoreOptions};
use cxr_edge::Report;

use crate::output::sample_report;

fn no_margin() -> StoreOptions {
    StoreOptions { min_free_bytes: 0 }
}

fn uid(i: usize) -> String {
    format!("1.2.826.0.1.3680043.10.7.{i}")
}

fn report(store: &Store, key: &str) {
    store.complete(key, &sample_report(key), &[]).unwrap();
}

/// Accept `count` studies of `len` bytes, received `days_ago[i]` days ago (the
/// inbox file's time, which is what a reopened store reads).
fn accept_aged(store: &Store, days_ago: &[u64], len: usize) -> Vec<String> {
    let now = SystemTime::now();
    (0..days_ago.len())
        .map(|i| {
            let key = uid(i);
            let path = store.accept(&key, &vec![7; len], "dcm").unwrap();
            let when = now - Duration::from_secs(days_ago[i] * 86_400);
            fs::File::options()
                .write(true)
                .open(path.path())
                .and_then(|f| f.set_modified(when))
                .unwrap();
            key
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn stems(keys: &[&String]) -> Vec<String> {
    keys.iter().map(|k| key::encode(k).unwrap()).collect()
}

fn watch_config(dir: &Path) -> ServeConfig {
    let text = format!(
        "store = {:?}\nmin_free_bytes = 0\npoll_ms = 10\n[watch]\ndir = {:?}\nsettle_ms = 0\n",
        dir.join("store"),
        dir.join("drop"),
    );
    ServeConfig::parse(&text, "unit.toml").unwrap()
}

fn analyse(r: &Radiograph) -> Result<Report, String> {
    Ok(sample_report(&r.info.instance_key))
}

#[test]
fn moving_reports_out_of_the_outbox_never_reports_them_again() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("drop")).unwrap();
    for n in 0..3 {
        let cr = cxr_edge::input::synth::SynthCr::new(n, 300, 260);
        fs::write(
            dir.path().join("drop").join(format!("{n}.dcm")),
            cr.to_bytes(),
        )
        .unwrap();
    }
    let config = watch_config(dir.path());
    let mut server = Server::start(&config, analyse, Box::new(NoSink)).unwrap();
    let reported = server.step();
    assert_eq!(reported.len(), 3);
    assert!(reported
        .iter()
        .all(|(_, o)| matches!(o, Outcome::Reported(_))));
    drop(server);

    // What a sync job does once the reports are delivered.
    let outbox = dir.path().join("store/outbox");
    let delivered = dir.path().join("delivered");
    fs::rename(&outbox, &delivered).unwrap();
    fs::create_dir(&outbox).unwrap();

    let mut server = Server::start(&config, analyse, Box::new(NoSink)).unwrap();
    assert!(
        server.step().is_empty(),
        "nothing is pending after a restart"
    );
    assert!(server.store().pending().is_empty());
    for (key, _) in &reported {
        assert!(server.store().is_reported(key), "{key}");
    }
    assert!(names(&outbox).is_empty(), "no report written again");
    assert_eq!(names(&delivered).len(), 3);
}

#[test]
fn a_store_from_before_the_records_is_recorded_at_its_first_opening() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), no_margin()).unwrap());
    // The old layout: a report directory was the only sign of a report.
    for i in 0..2 {
        let key = uid(i);
        fs::write(dir.path().join(format!("inbox/{key}.dcm")), b"old").unwrap();
        if i == 0 {
            fs::create_dir(dir.path().join(format!("outbox/{key}"))).unwrap();
            fs::write(dir.path().join(format!("outbox/{key}/report.json")), b"{}").unwrap();
        }
    }
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.key).collect();
    assert_eq!(pending, [uid(1)]);
    drop(store);
    fs::remove_dir_all(dir.path().join("outbox").join(uid(0))).unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert_eq!(
        store.pending().len(),
        1,
        "recorded: the directory no longer matters"
    );
    assert!(store.is_reported(&uid(0)));
}

#[test]
fn age_limit_removes_old_finished_studies_never_pending_or_held_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    // 0..5 are 40 days old, 5 is a day old.
    let keys = accept_aged(&store, &[40, 40, 40, 40, 40, 1], 1000);
    for k in [&keys[0], &keys[1], &keys[2], &keys[5]] {
        report(&store, k);
    }
    store.refuse(&keys[3], "lateral view").unwrap();
    store.hold(&keys[1], "to the PACS").unwrap();
    store.accept(&uid(9), b"new and pending", "dcm").unwrap();
    let err = store.hold("1.2.3.not.stored", "x").unwrap_err();
    assert!(matches!(err, StoreError::NotStored { .. }), "{err}");
    drop(store);

    let retention = Retention {
        max_age: Some(Duration::from_secs(30 * 86_400)),
        ..Retention::default()
    };
    let store = Store::open(dir.path(), no_margin())
        .unwrap()
        .with_retention(retention);
    // keys[4] is 40 days old but pending: it stays.
    let old_pending = &keys[4];
    assert_eq!(store.prune(SystemTime::now()).unwrap(), 3);
    assert_eq!(store.prune(SystemTime::now()).unwrap(), 0);
    let gone = [&keys[0], &keys[2], &keys[3]];
    for k in gone {
        assert!(store.instance_path(k).is_none(), "{k}");
        assert!(!store.is_reported(k), "{k}");
    }
    for k in [&keys[1], &keys[5], old_pending, &uid(9)] {
        assert!(store.instance_path(k).is_some_and(|p| p.is_file()), "{k}");
    }
    assert!(store.is_held(&keys[1]) && store.is_reported(&keys[1]));
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.key).collect();
    assert_eq!(pending, [old_pending.clone(), uid(9)]);
    for sub in ["outbox", "reported", "refused"] {
        let left = names(&dir.path().join(sub));
        for stem in stems(&gone) {
            assert!(!left.iter().any(|n| n.starts_with(&stem)), "{sub}/{stem}");
        }
    }
    assert!(names(&dir.path().join("pruning")).is_empty());

    // Released after delivery: it may go now.
    store.release(&keys[1]).unwrap();
    assert_eq!(store.prune(SystemTime::now()).unwrap(), 1);
    drop(store);
    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert_eq!(store.stored().0, 3, "one reported, two pending");
    assert!(!store.is_held(&keys[1]));
}

#[test]
fn size_limit_removes_oldest_first_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let keys = accept_aged(&store, &[6, 5, 4, 3, 2, 1], 10_000);
    for k in &keys {
        report(&store, k);
    }
    drop(store);
    let per_study = {
        let store = Store::open(dir.path(), no_margin()).unwrap();
        store.stored().1 / 6
    };
    let retention = Retention {
        max_bytes: Some(4 * per_study),
        keep_last: 1,
        ..Retention::default()
    };
    let store = Store::open(dir.path(), no_margin())
        .unwrap()
        .with_retention(retention.clone());
    assert_eq!(store.prune(SystemTime::now()).unwrap(), 2);
    let left: Vec<bool> = keys
        .iter()
        .map(|k| store.instance_path(k).is_some())
        .collect();
    assert_eq!(left, [false, false, true, true, true, true], "oldest first");
    assert!(store.stored().1 <= 4 * per_study);
    drop(store);

    // keep_last wins over the size limit.
    let retention = Retention {
        max_bytes: Some(1),
        keep_last: 3,
        ..retention
    };
    let store = Store::open(dir.path(), no_margin())
        .unwrap()
        .with_retention(retention);
    assert_eq!(store.prune(SystemTime::now()).unwrap(), 1);
    let left: Vec<&String> = keys
        .iter()
        .filter(|k| store.instance_path(k).is_some())
        .collect();
    assert_eq!(left, [&keys[3], &keys[4], &keys[5]]);
}

/// Removal of `keys` cut short: the intent record written, then `remove`
/// applied by hand, as a crash at that point would leave the store.
fn half_prune(root: &Path, key: &str, remove: &[&str]) {
    let stem = key::encode(key).unwrap();
    fs::write(root.join(format!("pruning/{stem}.txt")), b"").unwrap();
    for what in remove {
        let path = match *what {
            "inbox" => root.join(format!("inbox/{stem}.dcm")),
            "outbox" => root.join(format!("outbox/{stem}")),
            "done" => root.join(format!("reported/{stem}.done")),
            other => panic!("{other}"),
        };
        if path.is_dir() {
            fs::remove_dir_all(path).unwrap();
        } else {
            fs::remove_file(path).unwrap();
        }
    }
}

#[test]
fn a_removal_cut_short_is_finished_at_the_next_opening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let keys = accept_aged(&store, &[5, 4, 3, 2], 100);
    for k in &keys {
        report(&store, k);
    }
    drop(store);
    half_prune(dir.path(), &keys[0], &[]);
    half_prune(dir.path(), &keys[1], &["outbox"]);
    half_prune(dir.path(), &keys[2], &["inbox", "outbox"]);
    // No intent record: a crash before it leaves the study whole and reported,
    // even with its report directory gone.
    let stem3 = key::encode(&keys[3]).unwrap();
    fs::remove_dir_all(dir.path().join("outbox").join(&stem3)).unwrap();

    let store = Store::open(dir.path(), no_margin()).unwrap();
    assert!(
        store.pending().is_empty(),
        "no half-removed study is pending"
    );
    for k in &keys[..3] {
        assert!(
            store.instance_path(k).is_none() && !store.is_reported(k),
            "{k}"
        );
    }
    assert!(store.is_reported(&keys[3]));
    assert!(names(&dir.path().join("pruning")).is_empty());
    assert_eq!(names(&dir.path().join("inbox")), [format!("{stem3}.dcm")]);
    assert!(names(&dir.path().join("outbox")).is_empty());
    assert_eq!(
        names(&dir.path().join("reported")),
        [format!("{stem3}.done")]
    );
}

/// Child side of the kill -9 test: accepts, reports and prunes forever with a
/// size limit of a few studies, printing `REPORTED <key>` after each report.
#[test]
#[ignore = "run by kill_9_while_pruning_leaves_a_consistent_store as a child process"]
fn prune_crash_child() {
    let Some(root) = std::env::var_os("CXR_PRUNE_CRASH_DIR") else {
        return;
    };
    let retention = Retention {
        max_bytes: Some(5 * 70_000),
        ..Retention::default()
    };
    let store = Store::open(&root, no_margin())
        .unwrap()
        .with_retention(retention);
    let start: usize = std::env::var("CXR_PRUNE_START").unwrap().parse().unwrap();
    for i in start.. {
        let key = uid(i);
        store.accept(&key, &vec![1; 64 * 1024], "dcm").unwrap();
        report(&store, &key);
        println!("REPORTED {key}");
        store.prune(SystemTime::now()).unwrap();
    }
}

#[test]
fn kill_9_while_pruning_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut reported: Vec<String> = Vec::new();
    for round in 0..4 {
        // Kill at some point inside a later accept, report or removal.
        reported.extend(crate::util::kill_child_after(
            "retention::prune_crash_child",
            &[
                ("CXR_PRUNE_CRASH_DIR", dir.path().display().to_string()),
                ("CXR_PRUNE_START", (round * 1000).to_string()),
            ],
            "REPORTED ",
            8 + round * 5,
        ));
    }
    let store = Store::open(dir.path(), no_margin()).unwrap();
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.key).collect();
    for key in &reported {
        assert!(
            !pending.contains(key),
            "{key} was reported, then became pending"
        );
    }
    assert!(names(&dir.path().join("pruning")).is_empty());
    // Every report directory and record belongs to a stored study.
    let inbox = names(&dir.path().join("inbox"));
    for name in names(&dir.path().join("outbox")) {
        assert!(
            inbox.contains(&format!("{name}.dcm")),
            "orphan report {name}"
        );
    }
    for name in names(&dir.path().join("reported")) {
        let stem = name.trim_end_matches(".done");
        assert!(
            inbox.contains(&format!("{stem}.dcm")),
            "orphan record {name}"
        );
    }
    assert!(
        store.stored().0 <= 7,
        "the size limit held: {:?}",
        store.stored()
    );
}

#[test]
fn at_the_free_space_margin_old_studies_make_room() {
    let Some(fs_) = crate::store::Tmpfs::mount("4m") else {
        return;
    };
    let root = fs_.path();
    let film = |i: usize| (uid(i), vec![i as u8; 600 * 1024]);
    let margin = StoreOptions {
        min_free_bytes: 512 * 1024,
    };
    let store = Store::open(&root, margin.clone()).unwrap();
    let mut accepted = Vec::new();
    for i in 0.. {
        let (key, bytes) = film(i);
        match store.accept(&key, &bytes, "dcm") {
            Ok(_) => accepted.push(key),
            Err(e) => {
                assert!(e.is_out_of_space(), "{e}");
                break;
            }
        }
    }
    assert!(accepted.len() >= 3, "{accepted:?}");
    for k in &accepted[..accepted.len() - 1] {
        report(&store, k);
    }
    store.hold(&accepted[0], "to the PACS").unwrap();
    drop(store);

    let retention = Retention {
        when_full: true,
        ..Retention::default()
    };
    let store = Store::open(&root, margin)
        .unwrap()
        .with_retention(retention);
    let (key, bytes) = film(100);
    store.accept(&key, &bytes, "dcm").unwrap();
    assert!(store.instance_path(&accepted[0]).is_some(), "held: kept");
    assert!(
        store.instance_path(&accepted[1]).is_none(),
        "the oldest unheld went"
    );
    let last = accepted.last().unwrap();
    assert!(store.instance_path(last).is_some(), "pending: kept");
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.key).collect();
    assert_eq!(pending, [last.clone(), key]);
}
