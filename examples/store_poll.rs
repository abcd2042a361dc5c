//! What an old store costs the serve loop: the time of an idle pass
//! (`Server::step` with nothing new) and of reporting one new study, in a store
//! already holding N reported studies (issue #13: "every idle poll clones and
//! stats the whole index").
//!
//! ```text
//! cargo run --release --example store_poll -- [studies, default 10000] [idle passes, default 200]
//! ```
//! The old studies are laid out on disk directly (an inbox file and a report
//! directory each, no fsync), as a store that ran for months leaves them; the
//! model is a closure returning a fixed report, so only the loop and the store
//! are measured. Prints the store's first and second opening time, the wall
//! and CPU time per idle pass, and the wall time of one new study (accept, then
//! the pass that reports it), median of 20.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use cxr_edge::input::synth::SynthCr;
use cxr_edge::input::Radiograph;
use cxr_edge::report::{StudyInfo, Timings};
use cxr_edge::serve::{Outcome, ServeConfig, Server};
use cxr_edge::sink::NoSink;
use cxr_edge::store::{Store, StoreOptions, REPORT_JSON};
use cxr_edge::Report;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i)
            .map_or(Ok(default), |s| s.parse().context("not a count"))
    };
    let (studies, passes) = (number(0, 10_000)?, number(1, 200)?.max(1));
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("store");
    lay_out_old_store(&store, studies)?;

    for label in ["first", "second"] {
        let t = Instant::now();
        let s = Store::open(&store, StoreOptions { min_free_bytes: 0 })?;
        let pending = s.pending().len();
        println!(
            "open ({label}): {:.1} ms, {pending} pending",
            ms(t.elapsed())
        );
    }

    let text = format!(
        "store = {store:?}\nmin_free_bytes = 0\n[watch]\ndir = {:?}\nsettle_ms = 0\n",
        dir.path().join("drop")
    );
    fs::create_dir_all(dir.path().join("drop"))?;
    let config = ServeConfig::parse(&text, "bench.toml")?;
    let analyse = |r: &Radiograph| -> Result<Report, String> { Ok(fixed_report(&r.info)) };
    let mut server = Server::start(&config, analyse, Box::new(NoSink))?;

    let (cpu0, t) = (cpu_seconds()?, Instant::now());
    for _ in 0..passes {
        if !server.step().is_empty() {
            bail!("an idle pass processed something");
        }
    }
    let (wall, cpu) = (t.elapsed(), cpu_seconds()? - cpu0);
    println!(
        "idle pass (Server::step) with {studies} stored studies: {:.3} ms wall, {:.3} ms CPU (mean of {passes})",
        ms(wall) / passes as f64,
        cpu * 1e3 / passes as f64,
    );

    let mut times = Vec::new();
    for n in 0..20u64 {
        let cr = SynthCr::new(1_000_000 + n, 300, 260);
        let t = Instant::now();
        server
            .store()
            .accept(&cr.sop_instance_uid, &cr.to_bytes(), "dcm")?;
        let outcomes = server.step();
        times.push(ms(t.elapsed()));
        if !matches!(outcomes.as_slice(), [(_, Outcome::Reported(_))]) {
            bail!("the new study was not reported: {outcomes:?}");
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "one new study (accept + reporting pass): {:.1} ms (median of 20)",
        times[10]
    );
    Ok(())
}

/// `count` reported studies as the store keeps them: `inbox/<key>.dcm` and
/// `outbox/<key>/report.json`.
fn lay_out_old_store(root: &Path, count: usize) -> anyhow::Result<()> {
    // Opening once creates the layout (and whatever else the store keeps).
    drop(Store::open(root, StoreOptions { min_free_bytes: 0 })?);
    for i in 0..count {
        let key = format!("1.2.826.0.1.3680043.10.1{i:06}");
        fs::write(root.join("inbox").join(format!("{key}.dcm")), [0u8; 512])?;
        let out = root.join("outbox").join(&key);
        fs::create_dir(&out)?;
        fs::write(out.join(REPORT_JSON), b"{}")?;
    }
    Ok(())
}

fn fixed_report(info: &StudyInfo) -> Report {
    Report {
        study: info.clone(),
        impression: "No acute cardiopulmonary abnormality.".into(),
        findings: Vec::new(),
        heatmap: None,
        timings: Timings::default(),
        model_id: "bench".into(),
        bundle_hash: "00".repeat(32),
        generated_at: "2026-12-01T00:00:00Z".into(),
    }
}

/// User + system CPU time of this process so far (`/proc/self/stat`, clock ticks).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    let after_name = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the name.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
