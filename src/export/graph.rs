//! A small builder over tract-onnx's prost types, so the encoder and decoder
//! graphs read as a list of operations rather than as protobuf plumbing.

use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// ONNX IR version and opset written by the exporter (both accepted by
/// `onnx.checker`, onnxruntime and tract; see TOOLCHAIN.md).
pub const IR_VERSION: i64 = 8;
pub const OPSET: i64 = 17;

/// An attribute of a node.
pub(crate) enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
}

impl Attr {
    pub(crate) fn into_proto(self) -> AttributeProto {
        match self {
            Attr::Int(name, i) => AttributeProto {
                name: name.into(),
                r#type: AttributeType::Int as i32,
                i,
                ..Default::default()
            },
            Attr::Ints(name, ints) => AttributeProto {
                name: name.into(),
                r#type: AttributeType::Ints as i32,
                ints,
                ..Default::default()
            },
        }
    }
}

/// Accumulates nodes, initializers and the graph's interface.
#[derive(Default)]
pub(crate) struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    counter: usize,
}

pub(crate) fn value_info(name: &str, elem_type: DataType, dims: &[usize]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn dims_i64(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|&d| d as i64).collect()
}

impl GraphBuilder {
    pub fn input_f32(&mut self, name: &str, dims: &[usize]) -> String {
        self.inputs.push(value_info(name, DataType::Float, dims));
        name.into()
    }

    pub fn input_i64(&mut self, name: &str, dims: &[usize]) -> String {
        self.inputs.push(value_info(name, DataType::Int64, dims));
        name.into()
    }

    /// Declare a graph output; the value must be produced under that name.
    pub fn output_f32(&mut self, name: &str, dims: &[usize]) {
        self.outputs.push(value_info(name, DataType::Float, dims));
    }

    /// A float constant stored as little-endian `raw_data`.
    pub fn init_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "{name}");
        let raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: dims_i64(dims),
            data_type: DataType::Float as i32,
            raw_data,
            ..Default::default()
        });
        name.into()
    }

    pub fn init_i64(&mut self, name: &str, data: &[i64]) -> String {
        let raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data,
            ..Default::default()
        });
        name.into()
    }

    /// Add a node with one output under an explicit name.
    pub fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<Attr>,
    ) -> String {
        self.counter += 1;
        self.nodes.push(NodeProto {
            name: format!("{}_{}", output, self.counter),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: attrs.into_iter().map(Attr::into_proto).collect(),
            ..Default::default()
        });
        output.into()
    }

    /// Add a node with one output under a generated name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attr>) -> String {
        let output = format!("{}_{}", op.to_lowercase(), self.counter + 1);
        self.node_named(op, inputs, &output, attrs)
    }

    /// `x · Wᵀ + b` for a 2-D `x`, with a PyTorch-layout `[out, in]` weight.
    pub fn gemm(&mut self, x: &str, weight: &str, bias: &str, out: Option<&str>) -> String {
        let inputs = [x, weight, bias];
        let attrs = vec![Attr::Int("transB", 1)];
        match out {
            Some(name) => self.node_named("Gemm", &inputs, name, attrs),
            None => self.node("Gemm", &inputs, attrs),
        }
    }

    /// `x[.., start..end]` along `axis`.
    pub fn slice(&mut self, x: &str, axis: i64, start: usize, end: usize) -> String {
        let tag = self.counter + 1;
        let s = self.init_i64(&format!("slice{tag}.starts"), &[start as i64]);
        let e = self.init_i64(&format!("slice{tag}.ends"), &[end as i64]);
        let a = self.init_i64(&format!("slice{tag}.axes"), &[axis]);
        self.node("Slice", &[x, &s, &e, &a], vec![])
    }

    /// Reshape to fixed `dims`.
    pub fn reshape(&mut self, x: &str, dims: &[usize], out: Option<&str>) -> String {
        let tag = self.counter + 1;
        let shape = self.init_i64(&format!("reshape{tag}.shape"), &dims_i64(dims));
        match out {
            Some(name) => self.node_named("Reshape", &[x, &shape], name, vec![]),
            None => self.node("Reshape", &[x, &shape], vec![]),
        }
    }

    pub fn binary(&mut self, op: &str, a: &str, b: &str) -> String {
        self.node(op, &[a, b], vec![])
    }

    pub fn unary(&mut self, op: &str, x: &str) -> String {
        self.node(op, &[x], vec![])
    }

    pub fn finish(self, name: &str) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "cxr-edge".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(GraphProto {
                name: name.into(),
                node: self.nodes,
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
