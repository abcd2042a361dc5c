//! `status --config <serve config>` (or `--store DIR`): what waits to be
//! forwarded, per destination: studies waiting, studies parked with their
//! reasons, and the last error. It reads the store's queue folders without
//! taking the store's lock, so it runs beside the unit's `serve`.

use std::fmt::Write as _;
use std::path::PathBuf;

use cxr_edge::forward::ForwardConfig;
use cxr_edge::serve::ServeConfig;
use cxr_edge::store::{forward_status, DestStatus};

/// The command line as given.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Args {
    /// The unit's serve configuration: its store and `[[forward]]` peers.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A store folder (destinations are those with a queue in it).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (store, peers) = match (&args.config, &args.store) {
        (Some(path), _) => {
            let c = ServeConfig::load(path)?;
            (c.store, c.forward)
        }
        (None, Some(dir)) => {
            if !dir.is_dir() {
                anyhow::bail!("{}: no such store folder", dir.display());
            }
            (dir.clone(), Vec::new())
        }
        (None, None) => anyhow::bail!("give --config FILE or --store DIR"),
    };
    let queues = forward_status(&store)?;
    print!("{}", render(&store, &peers, &queues));
    Ok(())
}

/// The report: one block per destination, configured ones first (also those
/// with nothing queued yet), then queues of destinations no longer configured.
pub fn render(store: &std::path::Path, peers: &[ForwardConfig], queues: &[DestStatus]) -> String {
    let mut out = format!("store {}\n", store.display());
    if peers.is_empty() && queues.is_empty() {
        out.push_str("forwarding: off (no [[forward]] destination, no queue in the store)\n");
        return out;
    }
    let empty = DestStatus::default();
    for peer in peers {
        let q = queues
            .iter()
            .find(|q| q.dest == peer.name)
            .unwrap_or(&empty);
        block(&mut out, &format!("{} ({})", peer.name, peer.address()), q);
    }
    for q in queues
        .iter()
        .filter(|q| !peers.iter().any(|p| p.name == q.dest))
    {
        let label = match peers.is_empty() {
            true => q.dest.clone(),
            false => format!("{} (not configured: its queue is not being sent)", q.dest),
        };
        block(&mut out, &label, q);
    }
    out
}

fn block(out: &mut String, label: &str, q: &DestStatus) {
    let _ = writeln!(
        out,
        "{label}: {} waiting, {} parked",
        q.waiting.len(),
        q.parked.len()
    );
    if let Some(e) = &q.last_error {
        let _ = writeln!(out, "  last error: {e}");
    }
    for (key, reason) in &q.parked {
        let _ = writeln!(out, "  parked {key}: {reason}");
    }
}
