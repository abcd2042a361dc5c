//! The encoder graph: conv stages with batch-norm folded in, then the grid,
//! pooled vector, findings head, decoder start state and attention projection.

use tract_onnx::pb::ModelProto;

use super::graph::{Attr, GraphBuilder};
use super::{ExportError, Weights};
use crate::model_config::{
    mobilenet_v2_blocks, same_padding, DecoderKind, EncoderKind, ModelConfig, BN_EPS,
    MOBILENET_V2_STEM,
};
use crate::Observation;

/// Fold an eval-mode BatchNorm into the preceding bias-free convolution:
/// `W' = W · γ/√(σ²+ε)` per output channel and `b' = β − μ · γ/√(σ²+ε)`.
pub(crate) fn fold_bn(
    weights: &Weights,
    conv: &str,
    bn: &str,
    cout: usize,
    cin: usize,
) -> Result<(Vec<f32>, Vec<f32>), ExportError> {
    let w = weights.get(&format!("{conv}.weight"), &[cout, cin, 3, 3])?;
    let gamma = weights.get(&format!("{bn}.weight"), &[cout])?;
    let beta = weights.get(&format!("{bn}.bias"), &[cout])?;
    let mean = weights.get(&format!("{bn}.running_mean"), &[cout])?;
    let var = weights.get(&format!("{bn}.running_var"), &[cout])?;
    let per_out = cin * 9;
    let mut folded = Vec::with_capacity(w.len());
    let mut bias = Vec::with_capacity(cout);
    for o in 0..cout {
        let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
        folded.extend(
            w[o * per_out..(o + 1) * per_out]
                .iter()
                .map(|&v| (v as f64 * scale) as f32),
        );
        bias.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
    }
    Ok((folded, bias))
}

/// Transpose a row-major `[rows, cols]` matrix.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// Register a PyTorch Linear's weight `[out, in]` and bias `[out]`.
pub(crate) fn linear(
    g: &mut GraphBuilder,
    weights: &Weights,
    name: &str,
    inp: usize,
    out: usize,
) -> Result<(String, String), ExportError> {
    let w = weights.get(&format!("{name}.weight"), &[out, inp])?;
    let b = weights.get(&format!("{name}.bias"), &[out])?;
    Ok((
        g.init_f32(&format!("{name}.weight"), &[out, inp], w),
        g.init_f32(&format!("{name}.bias"), &[out], b),
    ))
}

/// Conv-BN-ReLU stages, batch norm folded into each convolution.
fn plain_backbone(
    g: &mut GraphBuilder,
    config: &ModelConfig,
    weights: &Weights,
    image: String,
) -> Result<String, ExportError> {
    let mut x = image;
    let mut cin = 1;
    for (i, &c) in config.channels.iter().enumerate() {
        for layer in 0..2 {
            let conv = format!("enc.s{i}.conv{layer}");
            let (w, b) = fold_bn(weights, &conv, &format!("enc.s{i}.bn{layer}"), c, cin)?;
            let w = g.init_f32(&format!("{conv}.folded_weight"), &[c, cin, 3, 3], &w);
            let b = g.init_f32(&format!("{conv}.folded_bias"), &[c], &b);
            let stride = if layer == 0 { 2 } else { 1 };
            let attrs = vec![
                Attr::Ints("kernel_shape", vec![3, 3]),
                Attr::Ints("strides", vec![stride, stride]),
                Attr::Ints("pads", vec![1, 1, 1, 1]),
            ];
            let y = g.node("Conv", &[&x, &w, &b], attrs);
            x = g.unary("Relu", &y);
            cin = c;
        }
    }
    Ok(x)
}

/// One convolution of the MobileNetV2 backbone: weights `name.weight`
/// `[cout, cin / groups, k, k]` (depthwise where `name` ends in `.dw`) and
/// `name.bias`, TFLite "same" padding on a
/// `side` × `side` input, then ReLU6 where `relu6`.
#[allow(clippy::too_many_arguments)]
fn mobilenet_conv(
    g: &mut GraphBuilder,
    weights: &Weights,
    x: &str,
    name: &str,
    shape: [usize; 4],
    stride: usize,
    side: usize,
    relu6: bool,
) -> Result<String, ExportError> {
    let w = weights.get(&format!("{name}.weight"), &shape)?;
    let b = weights.get(&format!("{name}.bias"), &shape[..1])?;
    let w = g.init_f32(&format!("{name}.weight"), &shape, w);
    let b = g.init_f32(&format!("{name}.bias"), &shape[..1], b);
    let k = shape[2];
    let (before, after) = same_padding(side, k, stride);
    // Depthwise convolutions (`*.dw`) have one group per channel.
    let groups = if name.ends_with(".dw") { shape[0] } else { 1 };
    let (p0, p1, s, k) = (before as i64, after as i64, stride as i64, k as i64);
    let attrs = vec![
        Attr::Ints("kernel_shape", vec![k, k]),
        Attr::Ints("strides", vec![s, s]),
        Attr::Ints("pads", vec![p0, p0, p1, p1]),
        Attr::Int("group", groups as i64),
    ];
    let y = g.node("Conv", &[x, &w, &b], attrs);
    if !relu6 {
        return Ok(y);
    }
    let lo = g.init_f32(&format!("{name}.clip_min"), &[], &[0.0]);
    let hi = g.init_f32(&format!("{name}.clip_max"), &[], &[6.0]);
    Ok(g.node("Clip", &[&y, &lo, &hi], vec![]))
}

/// MobileNetV2's stem and first `blocks` inverted-residual blocks
/// ([`crate::model_config::MOBILENET_V2`]).
fn mobilenet_backbone(
    g: &mut GraphBuilder,
    weights: &Weights,
    image: String,
    size: usize,
    blocks: usize,
) -> Result<String, ExportError> {
    let stem = [MOBILENET_V2_STEM, 1, 3, 3];
    let mut x = mobilenet_conv(g, weights, &image, "enc.mb.stem", stem, 2, size, true)?;
    let mut side = size.div_ceil(2);
    for (i, b) in mobilenet_v2_blocks().iter().take(blocks).enumerate() {
        let p = format!("enc.mb.b{i}");
        let hid = b.hidden();
        let mut h = x.clone();
        if let Some(e) = b.expand {
            let shape = [e, b.cin, 1, 1];
            h = mobilenet_conv(g, weights, &h, &format!("{p}.expand"), shape, 1, side, true)?;
        }
        let dw = [hid, 1, 3, 3];
        h = mobilenet_conv(g, weights, &h, &format!("{p}.dw"), dw, b.stride, side, true)?;
        side = side.div_ceil(b.stride);
        let proj = [b.cout, hid, 1, 1];
        h = mobilenet_conv(
            g,
            weights,
            &h,
            &format!("{p}.project"),
            proj,
            1,
            side,
            false,
        )?;
        x = if b.residual() {
            g.binary("Add", &h, &x)
        } else {
            h
        };
    }
    Ok(x)
}

pub(crate) fn build(config: &ModelConfig, weights: &Weights) -> Result<ModelProto, ExportError> {
    let s = config.input_size;
    let mut g = GraphBuilder::default();
    let image = g.input_f32("image", &[1, 1, s, s]);
    let x = match config.encoder {
        EncoderKind::Plain => plain_backbone(&mut g, config, weights, image)?,
        EncoderKind::MobileNetV2 { blocks } => {
            mobilenet_backbone(&mut g, weights, image, s, blocks)?
        }
    };
    let (c, n) = (config.grid_channels(), config.grid_cells());
    let flat = g.reshape(&x, &[1, c, n], None);
    let grid = g.node_named(
        "Transpose",
        &[&flat],
        "grid",
        vec![Attr::Ints("perm", vec![0, 2, 1])],
    );
    let pooled = g.node_named(
        "ReduceMean",
        &[&x],
        "pooled",
        vec![Attr::Ints("axes", vec![2, 3]), Attr::Int("keepdims", 0)],
    );
    let (hw, hb) = linear(&mut g, weights, "enc.head", c, Observation::COUNT)?;
    let findings = g.gemm(&pooled, &hw, &hb, Some("findings"));
    // The decoder's conditioning vector: the pooled features, and with findings
    // conditioning also the head's decisions at the checkpoint's thresholds.
    let cond = if config.findings_conditioned {
        let t = weights.get("dec.flag_thresholds", &[Observation::COUNT])?;
        let t = g.init_f32("dec.flag_thresholds", &[1, Observation::COUNT], t);
        let p = g.unary("Sigmoid", &findings);
        let ge = g.binary("GreaterOrEqual", &p, &t);
        let flags = g.node("Cast", &[&ge], vec![Attr::Int("to", 1)]);
        g.node("Concat", &[&pooled, &flags], vec![Attr::Int("axis", 1)])
    } else {
        pooled.clone()
    };
    let cin = config.cond_size();

    let h = config.hidden;
    match config.decoder {
        DecoderKind::Attention => {
            let (iw, ib) = linear(&mut g, weights, "dec.init_h", cin, h)?;
            let h0 = g.gemm(&cond, &iw, &ib, None);
            g.node_named("Tanh", &[&h0], "h0", vec![]);
            let a = config.attn_dim;
            let w = weights.get("dec.att_grid.weight", &[a, c])?;
            let b = weights.get("dec.att_grid.bias", &[a])?;
            let wt = g.init_f32("dec.att_grid.weight_t", &[c, a], &transpose(w, a, c));
            let b = g.init_f32("dec.att_grid.bias", &[a], b);
            let proj = g.binary("MatMul", &grid, &wt);
            g.node_named("Add", &[&proj, &b], "grid_proj", vec![]);
        }
        DecoderKind::Merge => {
            let (mw, mb) = linear(&mut g, weights, "dec.img", cin, h)?;
            g.gemm(&cond, &mw, &mb, Some("grid_proj"));
        }
    }
    // Outputs in the order of `ENCODER_OUTPUTS`.
    g.output_f32("grid", &[1, n, c]);
    match config.decoder {
        DecoderKind::Attention => g.output_f32("grid_proj", &[1, n, config.attn_dim]),
        DecoderKind::Merge => g.output_f32("grid_proj", &[1, h]),
    }
    g.output_f32("pooled", &[1, c]);
    g.output_f32("findings", &[1, Observation::COUNT]);
    if config.decoder == DecoderKind::Attention {
        g.output_f32("h0", &[1, h]);
    }
    Ok(g.finish("encoder"))
}
