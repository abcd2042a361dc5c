//! Reading a quantized TFLite image classifier into float arrays: the operator
//! list in execution order, each convolution's weights dequantized
//! (`real = scale × (q − zero_point)`, per channel where the file says so) and
//! laid out as libtorch expects (`[out, in, kh, kw]`).
//!
//! The flatbuffer schema is `tract_tflite::tflite` (the code tract generates from
//! TFLite's `schema.fbs`); tract's own TFLite front end does not load our
//! MobileNetV2 files (see `../shared/weights/mobilenet-v2-imagenet/README.md`), so
//! only its schema is used here.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use tract_tflite::tflite::{self, ActivationFunctionType, BuiltinOperator, Padding, TensorType};

/// An activation fused into an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Relu6,
}

/// A dense float array.
#[derive(Debug, Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One operator of the graph, with its weights dequantized.
#[derive(Debug, Clone)]
pub enum Op {
    /// Full (`groups == 1`) or depthwise (`groups == out channels`) convolution,
    /// TFLite padding (`same`: output side `ceil(in / stride)`, the extra row and
    /// column of padding at the bottom and right).
    Conv {
        input: usize,
        output: usize,
        /// `[out, in / groups, kh, kw]`
        weight: Array,
        bias: Vec<f32>,
        stride: usize,
        same: bool,
        groups: usize,
        act: Act,
    },
    Add {
        inputs: [usize; 2],
        output: usize,
        act: Act,
    },
    /// Average pool or mean over the whole spatial extent (what a classifier's
    /// pooling does).
    GlobalPool {
        input: usize,
        output: usize,
    },
    Reshape {
        input: usize,
        output: usize,
    },
    Softmax {
        input: usize,
        output: usize,
    },
}

/// The classifier graph: operators in order, the image input and the output.
#[derive(Debug, Clone)]
pub struct Graph {
    pub ops: Vec<Op>,
    pub input: usize,
    /// `[1, h, w, c]` of the input.
    pub input_shape: Vec<usize>,
    pub output: usize,
}

/// Read and dequantize `path`.
pub fn read(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| {
        format!(
            "{}: not a TFLite classifier this reader handles",
            path.display()
        )
    })
}

/// Parse a TFLite flatbuffer (see [`read`]).
pub fn parse(bytes: &[u8]) -> Result<Graph> {
    let model = tflite::root_as_model(bytes).context("invalid TFLite flatbuffer")?;
    let subgraphs = model.subgraphs().context("no subgraphs")?;
    ensure!(
        subgraphs.len() == 1,
        "{} subgraphs, expected 1",
        subgraphs.len()
    );
    let g = subgraphs.get(0);
    let codes = model.operator_codes().context("no operator codes")?;
    let reader = Reader { model, graph: g };
    let mut ops = Vec::new();
    for (i, op) in g.operators().context("no operators")?.iter().enumerate() {
        let code = codes.get(op.opcode_index() as usize);
        let builtin = std::cmp::max(
            code.builtin_code().0,
            i32::from(code.deprecated_builtin_code()),
        );
        let ins: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
        let outs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
        ensure!(
            !ins.is_empty() && outs.len() == 1,
            "operator {i}: unexpected arity"
        );
        let output = outs[0] as usize;
        let parsed = match BuiltinOperator(builtin) {
            BuiltinOperator::CONV_2D => {
                let o = op
                    .builtin_options_as_conv_2_doptions()
                    .context("conv options")?;
                ensure!(
                    o.stride_w() == o.stride_h(),
                    "operator {i}: unequal strides"
                );
                reader.conv(
                    &ins,
                    output,
                    o.stride_w(),
                    o.padding(),
                    o.fused_activation_function(),
                    false,
                )?
            }
            BuiltinOperator::DEPTHWISE_CONV_2D => {
                let o = op
                    .builtin_options_as_depthwise_conv_2_doptions()
                    .context("depthwise options")?;
                ensure!(
                    o.stride_w() == o.stride_h(),
                    "operator {i}: unequal strides"
                );
                ensure!(
                    o.depth_multiplier() <= 1,
                    "operator {i}: depth multiplier {}",
                    o.depth_multiplier()
                );
                reader.conv(
                    &ins,
                    output,
                    o.stride_w(),
                    o.padding(),
                    o.fused_activation_function(),
                    true,
                )?
            }
            BuiltinOperator::ADD => {
                ensure!(
                    ins.len() == 2,
                    "operator {i}: ADD with {} inputs",
                    ins.len()
                );
                let act = op
                    .builtin_options_as_add_options()
                    .map(|o| act(o.fused_activation_function()))
                    .transpose()?
                    .unwrap_or(Act::None);
                Op::Add {
                    inputs: [ins[0] as usize, ins[1] as usize],
                    output,
                    act,
                }
            }
            BuiltinOperator::AVERAGE_POOL_2D | BuiltinOperator::MEAN => Op::GlobalPool {
                input: ins[0] as usize,
                output,
            },
            BuiltinOperator::RESHAPE | BuiltinOperator::SQUEEZE => Op::Reshape {
                input: ins[0] as usize,
                output,
            },
            BuiltinOperator::SOFTMAX => Op::Softmax {
                input: ins[0] as usize,
                output,
            },
            other => bail!("operator {i}: {:?} is not supported", other.variant_name()),
        };
        ops.push(parsed);
    }
    let input = g.inputs().context("no graph inputs")?.get(0) as usize;
    let output = g.outputs().context("no graph outputs")?.get(0) as usize;
    let input_shape = reader.shape(input)?;
    ensure!(
        input_shape.len() == 4 && input_shape[0] == 1,
        "input shape {input_shape:?}"
    );
    Ok(Graph {
        ops,
        input,
        input_shape,
        output,
    })
}

fn act(a: ActivationFunctionType) -> Result<Act> {
    Ok(match a {
        ActivationFunctionType::NONE => Act::None,
        ActivationFunctionType::RELU => Act::Relu,
        ActivationFunctionType::RELU6 => Act::Relu6,
        other => bail!(
            "fused activation {:?} is not supported",
            other.variant_name()
        ),
    })
}

struct Reader<'a> {
    model: tflite::Model<'a>,
    graph: tflite::SubGraph<'a>,
}

impl<'a> Reader<'a> {
    fn tensor(&self, t: usize) -> Result<tflite::Tensor<'a>> {
        let tensors = self.graph.tensors().context("no tensors")?;
        ensure!(t < tensors.len(), "tensor {t} out of range");
        Ok(tensors.get(t))
    }

    fn shape(&self, t: usize) -> Result<Vec<usize>> {
        let s = self.tensor(t)?.shape().context("tensor without a shape")?;
        Ok(s.iter().map(|d| d.max(0) as usize).collect())
    }

    /// The constant tensor `t`, dequantized, in its stored (TFLite) layout.
    fn constant(&self, t: usize) -> Result<(Vec<usize>, Vec<f32>, usize)> {
        let tensor = self.tensor(t)?;
        let name = tensor.name().unwrap_or("?").to_string();
        let shape = self.shape(t)?;
        let buffers = self.model.buffers().context("no buffers")?;
        let data = buffers
            .get(tensor.buffer() as usize)
            .data()
            .with_context(|| format!("tensor {name}: no data"))?;
        let data = data.bytes();
        let q = tensor
            .quantization()
            .with_context(|| format!("tensor {name}: not quantized"))?;
        let scales: Vec<f32> = q.scale().map(|v| v.iter().collect()).unwrap_or_default();
        let zeros: Vec<i64> = q
            .zero_point()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        ensure!(!scales.is_empty(), "tensor {name}: no scale");
        let axis = if scales.len() > 1 {
            q.quantized_dimension() as usize
        } else {
            0
        };
        let raw: Vec<i64> = match tensor.type_() {
            TensorType::UINT8 => data.iter().map(|&b| i64::from(b)).collect(),
            TensorType::INT8 => data.iter().map(|&b| i64::from(b as i8)).collect(),
            TensorType::INT32 => data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            other => bail!(
                "tensor {name}: type {:?} is not supported",
                other.variant_name()
            ),
        };
        let count: usize = shape.iter().product();
        ensure!(
            raw.len() == count,
            "tensor {name}: {} values for shape {shape:?}",
            raw.len()
        );
        // Index of the quantization channel of each element.
        let inner: usize = shape.iter().skip(axis + 1).product();
        let per_axis = shape.get(axis).copied().unwrap_or(1);
        let mut out = Vec::with_capacity(count);
        for (i, &v) in raw.iter().enumerate() {
            let c = if scales.len() > 1 {
                (i / inner.max(1)) % per_axis
            } else {
                0
            };
            let (s, z) = (
                scales[c.min(scales.len() - 1)],
                zeros.get(c).or(zeros.first()).copied().unwrap_or(0),
            );
            out.push(s * (v - z) as f32);
        }
        Ok((shape, out, count))
    }

    fn conv(
        &self,
        ins: &[i32],
        output: usize,
        stride: i32,
        padding: Padding,
        fused: ActivationFunctionType,
        depthwise: bool,
    ) -> Result<Op> {
        ensure!(ins.len() == 3, "convolution with {} inputs", ins.len());
        let (wshape, w, _) = self.constant(ins[1] as usize)?;
        let (_, bias, _) = self.constant(ins[2] as usize)?;
        ensure!(wshape.len() == 4, "convolution weight of shape {wshape:?}");
        // TFLite: conv [out, kh, kw, in]; depthwise [1, kh, kw, out].
        let (o, kh, kw, i) = if depthwise {
            (wshape[3], wshape[1], wshape[2], 1)
        } else {
            (wshape[0], wshape[1], wshape[2], wshape[3])
        };
        let mut data = vec![0f32; o * i * kh * kw];
        for oc in 0..o {
            for ic in 0..i {
                for y in 0..kh {
                    for x in 0..kw {
                        let src = if depthwise {
                            (y * kw + x) * o + oc
                        } else {
                            ((oc * kh + y) * kw + x) * i + ic
                        };
                        data[((oc * i + ic) * kh + y) * kw + x] = w[src];
                    }
                }
            }
        }
        ensure!(
            bias.len() == o,
            "bias of {} values for {o} channels",
            bias.len()
        );
        Ok(Op::Conv {
            input: ins[0] as usize,
            output,
            weight: Array {
                shape: vec![o, i, kh, kw],
                data,
            },
            bias,
            stride: stride.max(1) as usize,
            same: padding == Padding::SAME,
            groups: if depthwise { o } else { 1 },
            act: act(fused)?,
        })
    }
}
