//! Where an encoder graph spends its time, node by node, on this CPU:
//!
//!     cargo run --profile board --example profile_nodes -- models/<id>/encoder.nnef.tar [runs]
//!
//! Loads the NNEF tar the way the device does (`bundle::load_nnef`), runs it
//! on a zero image and prints the 15 slowest nodes (mean milliseconds per run)
//! with their tract operator. `cxr-edge bench-model --nodes 15` prints the same
//! profile for a bundle's encoder and decoder step from the shipped binary.

use cxr_edge::bundle::load_nnef;
use cxr_edge::runtime::profile::profile_nodes;
use tract_core::prelude::*;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: profile_nodes <encoder.nnef.tar> [runs]"))?;
    let runs: usize = args.next().map_or(Ok(20), |r| r.parse())?;
    let plan = load_nnef(std::path::Path::new(&path), &RunOptions::default())?;
    let shape: Vec<usize> = plan
        .model()
        .input_fact(0)?
        .shape
        .as_concrete()
        .ok_or_else(|| anyhow::anyhow!("{path}: input shape is not fixed"))?
        .to_vec();
    let input = Tensor::zero::<f32>(&shape)?;
    let nodes = profile_nodes(&plan, tvec!(input.into()), runs)?;
    let total: f64 = nodes.iter().map(|n| n.ms).sum();
    println!("{path}: {total:.3} ms per run over {runs} runs");
    for n in nodes.iter().take(15) {
        println!("{:>8.3} ms  {:<14} {}", n.ms, n.op, n.name);
    }
    Ok(())
}
