//! Where a planned tract graph spends its time, node by node, on this CPU
//! (`cxr-edge bench-model --nodes`, `examples/profile_nodes.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_core::plan::eval;
use tract_core::prelude::{TValue, TVec, TractResult, TypedRunnableModel};

/// One node's share of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeTime {
    pub name: String,
    /// tract's operator after optimisation (e.g. `Conv`, `LazyIm2col`, `OptMatMul`).
    pub op: String,
    /// Mean milliseconds per run.
    pub ms: f64,
}

/// Run `plan` `runs` times on `inputs` (after one untimed run), timing every
/// node; all nodes, slowest first.
pub fn profile_nodes(
    plan: &Arc<TypedRunnableModel>,
    inputs: TVec<TValue>,
    runs: usize,
) -> TractResult<Vec<NodeTime>> {
    let runs = runs.max(1);
    let mut state = plan.spawn()?;
    state.run(inputs.clone())?;
    let mut times: HashMap<usize, Duration> = HashMap::new();
    for _ in 0..runs {
        state.run_plan_with_eval(inputs.clone(), |ctx, st, node, inputs| {
            let t = Instant::now();
            let out = eval(ctx, st, node, inputs);
            *times.entry(node.id).or_default() += t.elapsed();
            out
        })?;
    }
    let nodes = &plan.model().nodes;
    let mut out: Vec<NodeTime> = times
        .into_iter()
        .map(|(id, d)| NodeTime {
            name: nodes[id].name.clone(),
            op: nodes[id].op.name().to_string(),
            ms: d.as_secs_f64() * 1e3 / runs as f64,
        })
        .collect();
    out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(out)
}
