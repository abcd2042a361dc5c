//! How long a backlog takes to reach an archive: fills a temporary store with
//! N reported synthetic studies queued for one peer (as a unit that was offline
//! would hold them), then starts the forwarding thread and times it until the
//! queue is empty.
//!
//! ```text
//! cargo run --example forward_drain -- ORTHANC@127.0.0.1:4242 [studies, default 50] [--image]
//! ```
//! `--image` sends each study's film besides its SR. Prints the studies and
//! objects sent, the time, and how many studies the peer refused (parked).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cxr_edge::forward::{ForwardConfig, Forwarder};
use cxr_edge::input::synth::SynthCr;
use cxr_edge::input::{decode_bytes, ValidateOptions};
use cxr_edge::store::{Store, StoreOptions};
use cxr_edge::Report;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let image = args.iter().any(|a| a == "--image");
    let plain: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (peer, n) = match plain.as_slice() {
        [peer] => (peer.as_str(), 50),
        [peer, n] => (peer.as_str(), n.parse().context("studies: a number")?),
        _ => bail!("usage: forward_drain AE@host:port [studies] [--image]"),
    };
    let (ae, addr) = peer.split_once('@').context("peer: AE@host:port")?;
    let (host, port) = addr.rsplit_once(':').context("peer: AE@host:port")?;
    let config = ForwardConfig {
        name: "drain".into(),
        ae_title: ae.into(),
        host: host.into(),
        port: port.parse().context("port")?,
        calling_ae_title: "CXR-EDGE".into(),
        send_image: image,
        send_screen: false,
        timeout_s: 30,
        retry_first_ms: 100,
        retry_max_ms: 1000,
        park_after: 10,
    };
    config.check().map_err(anyhow::Error::msg)?;

    let tmp = tempfile::tempdir()?;
    let store = Arc::new(Store::open(tmp.path(), StoreOptions { min_free_bytes: 0 })?);
    for i in 0..n {
        let bytes = SynthCr::new(900_000 + i, 256, 256).to_bytes();
        let film = decode_bytes(&bytes, "synthetic", &ValidateOptions::default())?;
        let key = film.info.instance_key.clone();
        store.accept(&key, &bytes, "dcm")?;
        store.enqueue(&key, std::slice::from_ref(&config.name))?;
        let report = stand_in_report(film.info);
        let outputs = cxr_edge::output::render_extra(&report, None)?;
        store.complete(&key, &report, &outputs)?;
    }
    let objects = n * if image { 2 } else { 1 };
    let (tx, _changed) = std::sync::mpsc::channel();
    let started = Instant::now();
    let forwarder = Forwarder::spawn(store.clone(), std::slice::from_ref(&config), tx)?;
    while store.waiting_studies() > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    drop(forwarder);
    println!(
        "{n} studies ({objects} objects) drained into {peer} in {:.2} s ({:.1} studies/s); {} parked",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        store.forward_summary().iter().map(|q| q.parked).sum::<usize>()
    );
    Ok(())
}

fn stand_in_report(study: cxr_edge::report::StudyInfo) -> Report {
    Report {
        study,
        impression: "No acute cardiopulmonary abnormality.".into(),
        findings: Vec::new(),
        heatmap: None,
        timings: Default::default(),
        model_id: "forward-drain".into(),
        bundle_hash: "00".repeat(32),
        generated_at: cxr_edge::reporter::now_rfc3339(),
    }
}
