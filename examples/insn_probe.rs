//! A fixed amount of model work, for guest-instruction counts under qemu
//! (`scripts/precision-aarch64.sh`):
//!
//!     insn_probe <bundle> <fp32|int8|f16> <studies> <steps>
//!
//! Loads the bundle's artefact of that precision through the device runtime,
//! then runs `studies` times one encoder pass on a fixed image and `steps`
//! greedy decoder steps. Two runs that differ only in `studies` give the
//! instructions of one study by difference (`scripts/insn-count.sh`), free of
//! loading and planning.

use cxr_edge::bundle::{argmax, synthetic_image, Bundle, Precision};
use cxr_edge::runtime::tract::{TractOptions, TractRuntime};
use cxr_edge::runtime::Runtime;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 4,
        "usage: insn_probe <bundle> <fp32|int8|f16> <studies> <steps>"
    );
    let bundle = Bundle::open(&args[0])?;
    let precision: Precision = args[1].parse().map_err(anyhow::Error::msg)?;
    let (studies, steps): (usize, usize) = (args[2].parse()?, args[3].parse()?);
    let options = TractOptions {
        precision: Some(precision),
        ..TractOptions::default()
    };
    let rt = TractRuntime::load_with(&bundle, &options)?;
    let m = bundle.manifest();
    let image = synthetic_image(m.model.input_size);
    for _ in 0..studies {
        let encoded = rt.encode(&image)?;
        let (mut token, mut state) = (m.vocab.bos_id, encoded.h0.clone());
        for _ in 0..steps {
            let out = rt.step(token, &state, &encoded)?;
            token = argmax(&out.logits);
            state = out.state;
        }
    }
    println!("{studies} studies of one encoder pass and {steps} decoder steps, {precision}");
    Ok(())
}
