//! Where an encoder graph spends its time, node by node, on this CPU:
//!
//!     cargo run --release --example profile_nodes -- models/<id>/encoder.int8.nnef.tar [runs]
//!
//! Loads the NNEF tar the way the device does, runs it on a zero image and
//! prints the 15 slowest nodes (mean milliseconds per run) with their tract
//! operator. Used to find why the int8 encoder costs more than fp32 (see the
//! model card).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tract_core::plan::eval;
use tract_onnx::prelude::*;
use tract_onnx::WithOnnx;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: profile_nodes <encoder.nnef.tar> [runs]"))?;
    let runs: usize = args.next().map_or(Ok(20), |r| r.parse())?;
    let model = tract_nnef::nnef()
        .with_onnx()
        .model_for_path(&path)?
        .into_optimized()?;
    let shape: Vec<usize> = model
        .input_fact(0)?
        .shape
        .as_concrete()
        .ok_or_else(|| anyhow::anyhow!("{path}: input shape is not fixed"))?
        .to_vec();
    let plan = model.into_runnable()?;
    let mut state = plan.spawn()?;
    let input = Tensor::zero::<f32>(&shape)?;
    let mut times: HashMap<usize, Duration> = HashMap::new();
    for _ in 0..runs.max(1) {
        state.run_plan_with_eval(tvec!(input.clone().into()), |ctx, st, node, inputs| {
            let t = Instant::now();
            let out = eval(ctx, st, node, inputs);
            *times.entry(node.id).or_default() += t.elapsed();
            out
        })?;
    }
    let total: Duration = times.values().sum();
    let mut slowest: Vec<(usize, Duration)> = times.into_iter().collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.1));
    let nodes = &plan.model().nodes;
    let per_run = |d: Duration| d.as_secs_f64() * 1e3 / runs.max(1) as f64;
    println!("{path}: {:.3} ms per run over {runs} runs", per_run(total));
    for (id, d) in slowest.iter().take(15) {
        let n = &nodes[*id];
        println!("{:>8.3} ms  {:<14} {}", per_run(*d), n.op.name(), n.name);
    }
    Ok(())
}
