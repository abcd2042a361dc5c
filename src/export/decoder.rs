//! The single-step decoder graphs. The recurrent cells are written out from
//! plain ops (Gemm, Slice, Sigmoid, Tanh, Mul, Add) instead of ONNX GRU/LSTM,
//! which keeps PyTorch's gate order as-is and avoids the ONNX reordering.

use tract_onnx::pb::ModelProto;

use super::encoder::{linear, transpose};
use super::graph::{Attr, GraphBuilder};
use super::{ExportError, Weights};
use crate::model_config::{DecoderKind, ModelConfig};

pub(crate) fn build(config: &ModelConfig, weights: &Weights) -> Result<ModelProto, ExportError> {
    match config.decoder {
        DecoderKind::Attention => attention(config, weights),
        DecoderKind::Merge => merge(config, weights),
    }
}

/// `dec.emb[token]` as `[1, E]`.
fn embed(
    g: &mut GraphBuilder,
    config: &ModelConfig,
    weights: &Weights,
    token: &str,
) -> Result<String, ExportError> {
    let (v, e) = (config.vocab_size, config.embed_dim);
    let emb = weights.get("dec.emb.weight", &[v, e])?;
    let emb = g.init_f32("dec.emb.weight", &[v, e], emb);
    Ok(g.node("Gather", &[&emb, token], vec![Attr::Int("axis", 0)]))
}

fn attention(config: &ModelConfig, weights: &Weights) -> Result<ModelProto, ExportError> {
    let (n, c, a, h, e, v) = (
        config.grid_cells(),
        config.grid_channels(),
        config.attn_dim,
        config.hidden,
        config.embed_dim,
        config.vocab_size,
    );
    let mut g = GraphBuilder::default();
    let token = g.input_i64("token", &[1]);
    let hid = g.input_f32("h", &[1, h]);
    let grid = g.input_f32("grid", &[1, n, c]);
    let grid_proj = g.input_f32("grid_proj", &[1, n, a]);
    let emb = embed(&mut g, config, weights, &token)?;

    // Additive attention over the grid.
    let att_h = weights.get("dec.att_h.weight", &[a, h])?;
    let att_h = g.init_f32("dec.att_h.weight_t", &[h, a], &transpose(att_h, a, h));
    let att_v = weights.get("dec.att_v.weight", &[1, a])?;
    let att_v = g.init_f32("dec.att_v.weight_t", &[a, 1], att_v);
    let hp = g.binary("MatMul", &hid, &att_h);
    let sum = g.binary("Add", &grid_proj, &hp);
    let t = g.unary("Tanh", &sum);
    let score = g.binary("MatMul", &t, &att_v);
    let score = g.reshape(&score, &[1, n], None);
    let alpha = g.node_named("Softmax", &[&score], "attn", vec![Attr::Int("axis", -1)]);
    let alpha3 = g.reshape(&alpha, &[1, 1, n], None);
    let ctx = g.binary("MatMul", &alpha3, &grid);
    let ctx = g.reshape(&ctx, &[1, c], None);

    // GRU cell, PyTorch chunk order r, z, n.
    let x = g.node("Concat", &[&emb, &ctx], vec![Attr::Int("axis", 1)]);
    let (wi, bi) = linear(&mut g, weights, "dec.gru_ih", e + c, 3 * h)?;
    let (wh, bh) = linear(&mut g, weights, "dec.gru_hh", h, 3 * h)?;
    let gi = g.gemm(&x, &wi, &bi, None);
    let gh = g.gemm(&hid, &wh, &bh, None);
    let gi_rz = g.slice(&gi, 1, 0, 2 * h);
    let gh_rz = g.slice(&gh, 1, 0, 2 * h);
    let rz = g.binary("Add", &gi_rz, &gh_rz);
    let rz = g.unary("Sigmoid", &rz);
    let r = g.slice(&rz, 1, 0, h);
    let z = g.slice(&rz, 1, h, 2 * h);
    let gi_n = g.slice(&gi, 1, 2 * h, 3 * h);
    let gh_n = g.slice(&gh, 1, 2 * h, 3 * h);
    let rn = g.binary("Mul", &r, &gh_n);
    let nn = g.binary("Add", &gi_n, &rn);
    let nn = g.unary("Tanh", &nn);
    // h' = (1 − z)·n + z·h = n + z·(h − n)
    let diff = g.binary("Sub", &hid, &nn);
    let zd = g.binary("Mul", &z, &diff);
    let h_new = g.node_named("Add", &[&nn, &zd], "h_new", vec![]);

    let out_in = g.node("Concat", &[&h_new, &ctx], vec![Attr::Int("axis", 1)]);
    let (ow, ob) = linear(&mut g, weights, "dec.out", h + c, v)?;
    g.gemm(&out_in, &ow, &ob, Some("logits"));

    // Outputs in the order of `DECODER_OUTPUTS`.
    g.output_f32("logits", &[1, v]);
    g.output_f32("h_new", &[1, h]);
    g.output_f32("attn", &[1, n]);
    Ok(g.finish("decoder_attention"))
}

fn merge(config: &ModelConfig, weights: &Weights) -> Result<ModelProto, ExportError> {
    let (h, e, v) = (config.hidden, config.embed_dim, config.vocab_size);
    let mut g = GraphBuilder::default();
    let token = g.input_i64("token", &[1]);
    let state = g.input_f32("h", &[1, 2 * h]);
    let img = g.input_f32("grid_proj", &[1, h]);
    let emb = embed(&mut g, config, weights, &token)?;

    // LSTM cell, PyTorch chunk order i, f, g, o.
    let hid = g.slice(&state, 1, 0, h);
    let cell = g.slice(&state, 1, h, 2 * h);
    let (wi, bi) = linear(&mut g, weights, "dec.lstm_ih", e, 4 * h)?;
    let (wh, bh) = linear(&mut g, weights, "dec.lstm_hh", h, 4 * h)?;
    let gi = g.gemm(&emb, &wi, &bi, None);
    let gh = g.gemm(&hid, &wh, &bh, None);
    let gates = g.binary("Add", &gi, &gh);
    let gate = |g: &mut GraphBuilder, k: usize, act: &str| {
        let s = g.slice(&gates, 1, k * h, (k + 1) * h);
        g.unary(act, &s)
    };
    let i = gate(&mut g, 0, "Sigmoid");
    let f = gate(&mut g, 1, "Sigmoid");
    let gg = gate(&mut g, 2, "Tanh");
    let o = gate(&mut g, 3, "Sigmoid");
    let fc = g.binary("Mul", &f, &cell);
    let ig = g.binary("Mul", &i, &gg);
    let c_new = g.binary("Add", &fc, &ig);
    let tc = g.unary("Tanh", &c_new);
    let h_out = g.binary("Mul", &o, &tc);
    g.node_named(
        "Concat",
        &[&h_out, &c_new],
        "h_new",
        vec![Attr::Int("axis", 1)],
    );

    let merged = g.binary("Add", &img, &h_out);
    let merged = g.unary("Relu", &merged);
    let (ow, ob) = linear(&mut g, weights, "dec.out", h, v)?;
    g.gemm(&merged, &ow, &ob, Some("logits"));

    g.output_f32("logits", &[1, v]);
    g.output_f32("h_new", &[1, 2 * h]);
    Ok(g.finish("decoder_merge"))
}
