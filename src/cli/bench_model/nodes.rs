//! `bench-model --nodes N`: the per-node profile of this CPU's artefact, the
//! encoder on the parity image and one decoder step from its start state.

use std::collections::BTreeMap;

use cxr_edge::bundle::Parity;
use cxr_edge::runtime::profile::{profile_nodes, NodeTime};
use cxr_edge::runtime::tract::TractRuntime;
use cxr_edge::runtime::Runtime;

pub(super) fn print(
    rt: &TractRuntime,
    parity: &Parity,
    runs: usize,
    top: usize,
) -> anyhow::Result<()> {
    let (encoder, decoder) = rt.plans();
    let encoded = rt.encode(&parity.image)?;
    let token = parity.steps.first().map_or(0, |s| s.token);
    let graphs = [
        ("encoder", encoder, rt.encoder_inputs(&parity.image)?),
        (
            "decoder step",
            decoder,
            rt.decoder_inputs(token, &encoded.h0, &encoded)?,
        ),
    ];
    for (name, plan, inputs) in graphs {
        let nodes = profile_nodes(plan, inputs, runs)?;
        println!("{}", section(name, &nodes, runs, top));
    }
    Ok(())
}

fn section(name: &str, nodes: &[NodeTime], runs: usize, top: usize) -> String {
    let total: f64 = nodes.iter().map(|n| n.ms).sum();
    let mut s = format!(
        "{name}: {total:.3} ms per run inside nodes (mean of {runs} runs), {} nodes; slowest:\n",
        nodes.len()
    );
    for n in nodes.iter().take(top) {
        s += &format!(
            "  {:>8.3} ms {:>5.1} %  {:<22} {}\n",
            n.ms,
            100.0 * n.ms / total.max(1e-12),
            n.op,
            n.name
        );
    }
    let mut by_op: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for n in nodes {
        let e = by_op.entry(&n.op).or_default();
        e.0 += n.ms;
        e.1 += 1;
    }
    let mut by_op: Vec<_> = by_op.into_iter().collect();
    by_op.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    s += "  by operator:";
    for (op, (ms, count)) in by_op.iter().take(8) {
        s += &format!(" {op} ×{count} {ms:.3} ms;");
    }
    s
}
