//! Post-training static int8 quantization of the encoder's conv stack.
//!
//! The fp32 encoder graph is rewritten: the image is quantized with plain ops
//! (Div, Round, Add, Clip, Cast; ONNX `QuantizeLinear` has no NNEF form in
//! tract), every Conv + ReLU pair becomes one `QLinearConv` (symmetric int8
//! weights, per-tensor activations with zero point 0, as a [`Scheme`] says:
//! u8 whose saturation is the ReLU, or i8 followed by a ReLU that tract fuses),
//! and the last activation is cast back to f32.
//! tract turns `QLinearConv` into its own quantized conv, which NNEF stores as
//! `tract_core_qconv`. Activation ranges come from running the fp32 graph, with
//! every ReLU output exposed, on calibration images.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{
    tensor_proto::DataType, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use tract_onnx::prelude::{tvec, Framework, InferenceModelExt, Tensor};

use super::graph::{value_info, Attr};
use super::ExportError;

/// Activation ranges measured on calibration images.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// max |x| of the input image.
    pub input_absmax: f32,
    /// max of each conv layer's ReLU output, in graph order.
    pub relu_max: Vec<f32>,
}

fn graph(model: &ModelProto) -> &GraphProto {
    model.graph.as_ref().expect("exported models have a graph")
}

/// `(conv node index, relu node index)` of every Conv directly followed by a Relu.
pub(crate) fn conv_relu_pairs(g: &GraphProto) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type == "Conv" {
            if let Some(j) = g
                .node
                .iter()
                .position(|r| r.op_type == "Relu" && r.input[0] == n.output[0])
            {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

fn calibration_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Calibration(format!("{e:#}"))
}

/// Run the fp32 encoder on `images` (preprocessed, `S × S` each) and record ranges.
pub fn calibrate(
    encoder: &ModelProto,
    size: usize,
    images: &[Vec<f32>],
) -> Result<Calibration, ExportError> {
    let mut model = encoder.clone();
    let g = model.graph.as_mut().expect("graph");
    let taps: Vec<String> = conv_relu_pairs(g)
        .iter()
        .map(|&(_, j)| g.node[j].output[0].clone())
        .collect();
    g.output = taps
        .iter()
        .map(|t| ValueInfoProto {
            name: t.clone(),
            ..value_info(t, DataType::Float, &[])
        })
        .map(|mut v| {
            // Shape left for tract to infer.
            if let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) =
                v.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.shape = None;
            }
            v
        })
        .collect();
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&model)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable_with_options(&Default::default()))
        .map_err(calibration_error)?;
    let mut cal = Calibration {
        input_absmax: 0.0,
        relu_max: vec![0.0; taps.len()],
    };
    for image in images {
        if image.len() != size * size {
            return Err(ExportError::Calibration(format!(
                "calibration image has {} values, expected {}",
                image.len(),
                size * size
            )));
        }
        cal.input_absmax = image.iter().fold(cal.input_absmax, |m, v| m.max(v.abs()));
        let input = Tensor::from_shape(&[1, 1, size, size], image).map_err(calibration_error)?;
        let out = plan.run(tvec![input.into()]).map_err(calibration_error)?;
        for (m, t) in cal.relu_max.iter_mut().zip(out.iter()) {
            let v = t.to_plain_array_view::<f32>().map_err(calibration_error)?;
            *m = v.iter().fold(*m, |m, x| m.max(*x));
        }
    }
    Ok(cal)
}

pub(crate) fn f32_data(t: &TensorProto) -> Vec<f32> {
    t.raw_data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn tensor(name: &str, dims: &[usize], dt: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: dt as i32,
        raw_data,
        ..Default::default()
    }
}

fn scalar_f32(name: &str, v: f32) -> TensorProto {
    tensor(name, &[], DataType::Float, v.to_le_bytes().to_vec())
}

fn scalar_u8(name: &str, v: u8) -> TensorProto {
    tensor(name, &[], DataType::Uint8, vec![v])
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<Attr>) -> NodeProto {
    NodeProto {
        name: output.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs.into_iter().map(Attr::into_proto).collect(),
        ..Default::default()
    }
}

/// How the conv stack is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// u8 activations with zero point 0 (the u8 floor is the ReLU), the image
    /// as u8 with zero point 128, per-channel weight scales. tract converts
    /// every u8 input to i8 and requantises per channel in separate passes.
    #[default]
    U8PerChannel,
    /// i8 activations and image with zero point 0 (the ReLU a clamp at 0), one
    /// weight scale per layer, so tract folds the zero-point terms away and
    /// fuses the requantisation (scale, clamp, cast) into its matrix kernel.
    /// Use on an encoder equalised with [`super::equalize::equalize`].
    I8PerTensor,
}

/// Symmetric int8 weights of one conv layer: `(values, one scale per group)`,
/// a group being an output channel or the whole layer.
fn quantize_weights(w: &[f32], groups: usize) -> (Vec<u8>, Vec<f32>) {
    let per = w.len() / groups;
    let mut scales = Vec::with_capacity(groups);
    let mut q = Vec::with_capacity(w.len());
    for row in w.chunks(per) {
        let s = (row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0).max(f32::MIN_POSITIVE);
        scales.push(s);
        q.extend(
            row.iter()
                .map(|v| (v / s).round().clamp(-127.0, 127.0) as i8 as u8),
        );
    }
    (q, scales)
}

/// The nodes and initializers that quantize the image `x` (named `q.in`).
fn quantize_input(x: &str, absmax: f32, scheme: Scheme) -> (Vec<NodeProto>, Vec<TensorProto>) {
    let scale = (absmax / 127.0).max(f32::MIN_POSITIVE);
    let mut nodes = vec![
        node("Div", &[x, "q.in.scale"], "q.in.div", vec![]),
        node("Round", &["q.in.div"], "q.in.round", vec![]),
    ];
    let mut inits = vec![scalar_f32("q.in.scale", scale)];
    let (rounded, lo, hi, zp, to) = match scheme {
        Scheme::U8PerChannel => {
            inits.push(scalar_f32("q.in.offset", 128.0));
            nodes.push(node(
                "Add",
                &["q.in.round", "q.in.offset"],
                "q.in.add",
                vec![],
            ));
            (
                "q.in.add",
                0.0,
                255.0,
                scalar_u8("q.in.zp", 128),
                DataType::Uint8,
            )
        }
        Scheme::I8PerTensor => (
            "q.in.round",
            -127.0,
            127.0,
            tensor("q.in.zp", &[], DataType::Int8, vec![0]),
            DataType::Int8,
        ),
    };
    inits.extend([scalar_f32("q.in.lo", lo), scalar_f32("q.in.hi", hi), zp]);
    nodes.push(node(
        "Clip",
        &[rounded, "q.in.lo", "q.in.hi"],
        "q.in.clip",
        vec![],
    ));
    nodes.push(node(
        "Cast",
        &["q.in.clip"],
        "q.in",
        vec![Attr::Int("to", to as i64)],
    ));
    (nodes, inits)
}

/// The quantized input of a layer: tensor, scale and zero-point names, and
/// the scale's value.
struct QInput<'a> {
    x: &'a str,
    scale: &'a str,
    zp: &'a str,
    scale_value: f32,
}

/// One Conv + ReLU as a `QLinearConv` named `q.l{k}` (and, for the i8 scheme,
/// a ReLU on its int8 output).
struct QLayer {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    out: String,
    y_scale: f32,
}

fn quantize_layer(
    k: usize,
    conv: &NodeProto,
    (w, b): (&TensorProto, &TensorProto),
    input: QInput,
    relu_max: f32,
    scheme: Scheme,
) -> QLayer {
    let mut new_nodes = Vec::new();
    let mut new_inits = Vec::new();
    let x_scale_value = input.scale_value;
    let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
    let (wf, bf) = (f32_data(w), f32_data(b));
    let cout = dims[0];
    let groups = match scheme {
        Scheme::U8PerChannel => cout,
        Scheme::I8PerTensor => 1,
    };
    let (wq, w_scale) = quantize_weights(&wf, groups);
    let bq: Vec<u8> = bf
        .iter()
        .enumerate()
        .flat_map(|(o, b)| {
            let s = w_scale[o * groups / cout] as f64;
            ((*b as f64 / (x_scale_value as f64 * s)).round() as i32).to_le_bytes()
        })
        .collect();
    let (levels, y_zp) = match scheme {
        Scheme::U8PerChannel => (255.0, scalar_u8("", 0)),
        Scheme::I8PerTensor => (127.0, tensor("", &[], DataType::Int8, vec![0])),
    };
    let y_scale = (relu_max / levels).max(f32::MIN_POSITIVE);
    let p = format!("q.l{k}");
    let scale_dims: &[usize] = if groups == 1 { &[] } else { &[cout] };
    new_inits.push(tensor(&format!("{p}.w"), &dims, DataType::Int8, wq));
    new_inits.push(tensor(
        &format!("{p}.w_scale"),
        scale_dims,
        DataType::Float,
        w_scale.iter().flat_map(|v| v.to_le_bytes()).collect(),
    ));
    new_inits.push(tensor(
        &format!("{p}.w_zp"),
        scale_dims,
        DataType::Int8,
        vec![0; groups],
    ));
    new_inits.push(tensor(&format!("{p}.b"), &[cout], DataType::Int32, bq));
    new_inits.push(scalar_f32(&format!("{p}.y_scale"), y_scale));
    new_inits.push(TensorProto {
        name: format!("{p}.y_zp"),
        ..y_zp
    });
    let out = format!("{p}.y");
    let inputs = [
        input.x.to_string(),
        input.scale.to_string(),
        input.zp.to_string(),
        format!("{p}.w"),
        format!("{p}.w_scale"),
        format!("{p}.w_zp"),
        format!("{p}.y_scale"),
        format!("{p}.y_zp"),
        format!("{p}.b"),
    ];
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut n = node("QLinearConv", &inputs, &out, vec![]);
    n.attribute = conv.attribute.clone();
    new_nodes.push(n);
    let out = match scheme {
        Scheme::U8PerChannel => out,
        Scheme::I8PerTensor => {
            let relu = format!("{p}.relu");
            new_nodes.push(node("Relu", &[&out], &relu, vec![]));
            relu
        }
    };
    QLayer {
        nodes: new_nodes,
        inits: new_inits,
        out,
        y_scale,
    }
}

/// The int8 encoder: the fp32 graph with its conv stack quantized (the
/// original scheme, [`Scheme::U8PerChannel`]).
pub fn quantize_encoder(
    encoder: &ModelProto,
    cal: &Calibration,
) -> Result<ModelProto, ExportError> {
    quantize_encoder_with(encoder, cal, Scheme::U8PerChannel)
}

/// The int8 encoder under `scheme`.
pub fn quantize_encoder_with(
    encoder: &ModelProto,
    cal: &Calibration,
    scheme: Scheme,
) -> Result<ModelProto, ExportError> {
    let mut model = encoder.clone();
    let g = model.graph.as_mut().expect("graph");
    let pairs = conv_relu_pairs(g);
    if pairs.len() != cal.relu_max.len() || pairs.is_empty() {
        return Err(ExportError::Calibration(format!(
            "{} conv layers, calibration has {}",
            pairs.len(),
            cal.relu_max.len()
        )));
    }
    let inits: HashMap<String, TensorProto> = g
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t.clone()))
        .collect();
    let mut drop_nodes = HashSet::new();
    let mut drop_inits = HashSet::new();

    let first_x = g.node[pairs[0].0].input[0].clone();
    let (mut new_nodes, mut new_inits) = quantize_input(&first_x, cal.input_absmax, scheme);
    let (mut x, mut x_scale, mut x_zp) = (
        "q.in".to_string(),
        "q.in.scale".to_string(),
        "q.in.zp".to_string(),
    );
    let mut x_scale_value = (cal.input_absmax / 127.0).max(f32::MIN_POSITIVE);
    let mut last_relu = String::new();
    for (k, &(ci, ri)) in pairs.iter().enumerate() {
        let conv = &g.node[ci];
        let input = QInput {
            x: &x,
            scale: &x_scale,
            zp: &x_zp,
            scale_value: x_scale_value,
        };
        let (w, b) = (&inits[&conv.input[1]], &inits[&conv.input[2]]);
        let layer = quantize_layer(k, conv, (w, b), input, cal.relu_max[k], scheme);
        new_nodes.extend(layer.nodes);
        new_inits.extend(layer.inits);
        drop_nodes.insert(ci);
        drop_nodes.insert(ri);
        drop_inits.insert(conv.input[1].clone());
        drop_inits.insert(conv.input[2].clone());
        last_relu = g.node[ri].output[0].clone();
        let p = format!("q.l{k}");
        (x, x_scale, x_zp) = (layer.out, format!("{p}.y_scale"), format!("{p}.y_zp"));
        x_scale_value = layer.y_scale;
    }
    // Back to f32 under the last ReLU's name, for the unchanged tail.
    new_nodes.push(node(
        "Cast",
        &[&x],
        "q.out.f32",
        vec![Attr::Int("to", DataType::Float as i64)],
    ));
    new_nodes.push(node("Mul", &["q.out.f32", &x_scale], &last_relu, vec![]));

    // Conv stack first (it only reads the image), then the rest in order.
    let rest: Vec<NodeProto> = g
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop_nodes.contains(i))
        .map(|(_, n)| n.clone())
        .collect();
    g.node = new_nodes.into_iter().chain(rest).collect();
    g.initializer.retain(|t| !drop_inits.contains(&t.name));
    g.initializer.extend(new_inits);
    g.name = format!("{}_int8", g.name);
    Ok(model)
}

/// Check that `graph` is what `quantize_encoder` expects (used by tests).
pub fn conv_layer_count(encoder: &ModelProto) -> usize {
    conv_relu_pairs(graph(encoder)).len()
}
