//! Cross-layer equalisation of a ReLU conv chain (Nagel et al., "Data-Free
//! Quantization Through Weight Equalization and Bias Correction", ICCV 2019).
//!
//! ReLU commutes with a positive scale, so output channel `c` of one conv can
//! be divided by `s_c` (its weights and bias) and input channel `c` of the next
//! conv multiplied by `s_c` without changing the function. With
//! `s_c = sqrt(r1_c / r2_c)`, `r1_c` and `r2_c` the largest weight magnitudes
//! of that channel in the two layers, both layers' channels end up with equal
//! ranges, so one weight scale per layer ([`super::quant::Scheme::I8PerTensor`])
//! loses little against one scale per channel. The last conv's output channels
//! are left as they are: the unquantized tail reads them.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, ModelProto, TensorProto};

use super::quant::{conv_relu_pairs, f32_data};

fn set_f32(t: &mut TensorProto, values: &[f32]) {
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
}

/// `(conv, next conv)` node indices of the links that may be equalised: the
/// first conv's ReLU output feeds only the second conv, neither is grouped.
fn links(g: &GraphProto) -> Vec<(usize, usize)> {
    let pairs = conv_relu_pairs(g);
    let grouped = |i: usize| {
        g.node[i]
            .attribute
            .iter()
            .any(|a| a.name == "group" && a.i != 1)
    };
    pairs
        .windows(2)
        .filter_map(|w| {
            let ((c1, r1), (c2, _)) = (w[0], w[1]);
            let out = &g.node[r1].output[0];
            let readers = g.node.iter().filter(|n| n.input.contains(out)).count();
            (g.node[c2].input[0] == *out && readers == 1 && !grouped(c1) && !grouped(c2))
                .then_some((c1, c2))
        })
        .collect()
}

/// The encoder with its conv chain equalised, `sweeps` passes over the links.
pub fn equalize(encoder: &ModelProto, sweeps: usize) -> ModelProto {
    let mut model = encoder.clone();
    let g = model.graph.as_mut().expect("exported models have a graph");
    let links = links(g);
    let index: HashMap<String, usize> = g
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    for _ in 0..sweeps {
        for &(c1, c2) in &links {
            let (w1i, b1i) = (index[&g.node[c1].input[1]], index[&g.node[c1].input[2]]);
            let w2i = index[&g.node[c2].input[1]];
            let (mut w1, mut b1, mut w2) = (
                f32_data(&g.initializer[w1i]),
                f32_data(&g.initializer[b1i]),
                f32_data(&g.initializer[w2i]),
            );
            let channels = b1.len();
            let dims2: Vec<usize> = g.initializer[w2i]
                .dims
                .iter()
                .map(|&d| d as usize)
                .collect();
            if dims2.len() < 2 || dims2[1] != channels {
                continue;
            }
            let (per1, per2) = (w1.len() / channels, w2.len() / (dims2[0] * channels));
            for c in 0..channels {
                let r1 = w1[c * per1..(c + 1) * per1]
                    .iter()
                    .fold(0f32, |m, v| m.max(v.abs()));
                let r2 = (0..dims2[0])
                    .flat_map(|o| {
                        let at = (o * channels + c) * per2;
                        w2[at..at + per2].iter()
                    })
                    .fold(0f32, |m, v| m.max(v.abs()));
                if r1 <= 0.0 || r2 <= 0.0 {
                    continue;
                }
                let s = (r1 / r2).sqrt();
                w1[c * per1..(c + 1) * per1]
                    .iter_mut()
                    .for_each(|v| *v /= s);
                b1[c] /= s;
                for o in 0..dims2[0] {
                    let at = (o * channels + c) * per2;
                    w2[at..at + per2].iter_mut().for_each(|v| *v *= s);
                }
            }
            set_f32(&mut g.initializer[w1i], &w1);
            set_f32(&mut g.initializer[b1i], &b1);
            set_f32(&mut g.initializer[w2i], &w2);
        }
    }
    model
}
