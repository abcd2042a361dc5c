//! MobileNetV2 1.0 in libtorch, laid out as `cxr_edge::model_config::MOBILENET_V2`
//! specifies (the exporter writes the same network as ONNX), and its ImageNet
//! weights taken from a TFLite file ([`crate::tflite`]).

use anyhow::{bail, ensure, Context, Result};
use cxr_edge::model_config::{
    mobilenet_v2_blocks, same_padding, InvertedResidual, MOBILENET_V2_STEM,
};
use tch::{nn, Kind, Tensor};

use crate::tflite::{Act, Array, Graph, Op};

/// A convolution with bias and TFLite "same" padding.
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    groups: i64,
    relu6: bool,
}

impl Conv {
    fn new(
        p: nn::Path,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
    ) -> Conv {
        let per_group = (cin / groups) as i64;
        let fan_in = (per_group * (k * k) as i64) as f64;
        let bound = (6.0 / fan_in).sqrt();
        Conv {
            weight: p.var(
                "weight",
                &[cout as i64, per_group, k as i64, k as i64],
                nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            ),
            bias: p.zeros("bias", &[cout as i64]),
            stride,
            groups: groups as i64,
            relu6,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (_, _, h, w) = x.size4().expect("4-d input");
        let k = self.weight.size()[2] as usize;
        let (top, bottom) = same_padding(h as usize, k, self.stride);
        let (left, right) = same_padding(w as usize, k, self.stride);
        let padded = if top + bottom + left + right > 0 {
            x.constant_pad_nd([left as i64, right as i64, top as i64, bottom as i64])
        } else {
            x.shallow_clone()
        };
        let s = self.stride as i64;
        let y = padded.conv2d(
            &self.weight,
            Some(&self.bias),
            [s, s],
            [0, 0],
            [1, 1],
            self.groups,
        );
        if self.relu6 {
            y.clamp(0.0, 6.0)
        } else {
            y
        }
    }

    fn vars(&self) -> [&Tensor; 2] {
        [&self.weight, &self.bias]
    }
}

struct Block {
    spec: InvertedResidual,
    expand: Option<Conv>,
    dw: Conv,
    project: Conv,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = match &self.expand {
            Some(e) => e.forward(x),
            None => x.shallow_clone(),
        };
        let y = self.project.forward(&self.dw.forward(&h));
        if self.spec.residual() {
            y + x
        } else {
            y
        }
    }
}

/// The stem and the first `blocks` inverted-residual blocks.
pub struct MobileNetV2 {
    stem: Conv,
    blocks: Vec<Block>,
}

impl MobileNetV2 {
    /// Parameters under `p` (`p / "stem"`, `p / "b{i}"`…) for `in_channels`
    /// input channels (1 for radiographs, 3 for the ImageNet check).
    pub fn new(p: &nn::Path, blocks: usize, in_channels: usize) -> MobileNetV2 {
        let stem = Conv::new(p / "stem", in_channels, MOBILENET_V2_STEM, 3, 2, 1, true);
        let blocks = mobilenet_v2_blocks()
            .into_iter()
            .take(blocks)
            .enumerate()
            .map(|(i, spec)| {
                let b = p / format!("b{i}");
                let hid = spec.hidden();
                Block {
                    spec,
                    expand: spec
                        .expand
                        .map(|e| Conv::new(&b / "expand", spec.cin, e, 1, 1, 1, true)),
                    dw: Conv::new(&b / "dw", hid, hid, 3, spec.stride, hid, true),
                    project: Conv::new(&b / "project", hid, spec.cout, 1, 1, 1, false),
                }
            })
            .collect();
        MobileNetV2 { stem, blocks }
    }

    /// Feature map `[B, C, h, w]` of images `[B, in, S, S]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = self.stem.forward(x);
        for b in &self.blocks {
            x = b.forward(&x);
        }
        x
    }

    /// Stop training the stem and the first `n` blocks (their weights stay
    /// those they were loaded with).
    pub fn freeze_prefix(&self, n: usize) {
        let mut vars: Vec<&Tensor> = self.stem.vars().to_vec();
        for b in self.blocks.iter().take(n) {
            if let Some(e) = &b.expand {
                vars.extend(e.vars());
            }
            vars.extend(b.dw.vars());
            vars.extend(b.project.vars());
        }
        for v in vars {
            let _ = v.shallow_clone().set_requires_grad(false);
        }
    }
}

/// ImageNet weights read from a TFLite MobileNetV2 1.0, named as the encoder's
/// parameters (`stem.weight`, `b0.dw.bias`…, relative to the encoder's path),
/// plus the classifier tail that the encoder does not use (for the check against
/// the TFLite runtime).
pub struct Pretrained {
    pub named: Vec<(String, Array)>,
    /// 1×1 convolution 320 → 1280 (ReLU6) and the 1280 → 1001 classifier.
    #[cfg_attr(not(test), allow(dead_code))]
    pub last: (Array, Vec<f32>),
    #[cfg_attr(not(test), allow(dead_code))]
    pub classifier: (Array, Vec<f32>),
}

/// Map the TFLite graph's operators onto MobileNetV2's layout, checking every
/// shape, stride and activation against [`mobilenet_v2_blocks`].
pub fn from_tflite(g: &Graph) -> Result<Pretrained> {
    ensure!(
        g.input_shape == [1, 224, 224, 3],
        "input {:?}, expected [1, 224, 224, 3]",
        g.input_shape
    );
    let mut w = Walker {
        ops: g.ops.iter().enumerate(),
        current: g.input,
        named: Vec::new(),
    };
    w.conv("stem", [MOBILENET_V2_STEM, 3, 3, 3], 2, Act::Relu6)?;
    for (b, spec) in mobilenet_v2_blocks().iter().enumerate() {
        let block_input = w.current;
        let hid = spec.hidden();
        if let Some(e) = spec.expand {
            w.conv(&format!("b{b}.expand"), [e, spec.cin, 1, 1], 1, Act::Relu6)?;
        }
        w.conv(&format!("b{b}.dw"), [hid, 1, 3, 3], spec.stride, Act::Relu6)?;
        w.conv(
            &format!("b{b}.project"),
            [spec.cout, hid, 1, 1],
            1,
            Act::None,
        )?;
        if spec.residual() {
            match w.ops.next() {
                Some((
                    _,
                    Op::Add {
                        inputs,
                        output,
                        act: Act::None,
                    },
                )) if inputs.contains(&block_input) && inputs.contains(&w.current) => {
                    w.current = *output;
                }
                _ => bail!("block {b}: expected the ADD of its input and its projection"),
            }
        }
    }
    let named = std::mem::take(&mut w.named);
    let last = w.conv("last", [1280, 320, 1, 1], 1, Act::Relu6)?;
    match w.ops.next() {
        Some((_, Op::GlobalPool { input, output })) if *input == w.current => w.current = *output,
        _ => bail!("expected the global pool of the last convolution"),
    }
    let classifier = w.conv("classifier", [1001, 1280, 1, 1], 1, Act::None)?;
    for _ in 0..2 {
        match w.ops.next() {
            Some((_, Op::Reshape { input, output } | Op::Softmax { input, output }))
                if *input == w.current =>
            {
                w.current = *output
            }
            _ => bail!("expected the classifier's reshape and softmax"),
        }
    }
    ensure!(
        w.current == g.output,
        "the graph's output is not the softmax"
    );
    ensure!(w.ops.next().is_none(), "operators after the softmax");
    Ok(Pretrained {
        named,
        last,
        classifier,
    })
}

/// Walks the operator list, checking that each operator reads the previous
/// one's output.
struct Walker<'a> {
    ops: std::iter::Enumerate<std::slice::Iter<'a, Op>>,
    current: usize,
    named: Vec<(String, Array)>,
}

impl Walker<'_> {
    /// The next operator, which must be the convolution `name` of `shape`
    /// (torch layout), `stride` and `act`, reading the current tensor; its
    /// weights are pushed to `named`.
    fn conv(
        &mut self,
        name: &str,
        shape: [usize; 4],
        stride: usize,
        act: Act,
    ) -> Result<(Array, Vec<f32>)> {
        let (i, op) = self
            .ops
            .next()
            .with_context(|| format!("graph ends before {name}"))?;
        let Op::Conv {
            input,
            output,
            weight,
            bias,
            stride: s,
            same,
            groups,
            act: a,
        } = op
        else {
            bail!("operator {i}: expected the convolution {name}, found another operator");
        };
        let depthwise = name.ends_with(".dw");
        ensure!(
            weight.shape == shape
                && *s == stride
                && *a == act
                && *same
                && *groups == if depthwise { shape[0] } else { 1 },
            "operator {i} ({name}): weight {:?} stride {s} {a:?} groups {groups}, expected \
             {shape:?} stride {stride} {act:?} with same padding",
            weight.shape
        );
        ensure!(
            *input == self.current,
            "operator {i} ({name}) does not read the previous operator's output"
        );
        self.current = *output;
        self.named.push((format!("{name}.weight"), weight.clone()));
        let b = Array {
            shape: vec![bias.len()],
            data: bias.clone(),
        };
        self.named.push((format!("{name}.bias"), b));
        Ok((weight.clone(), bias.clone()))
    }
}

/// Copy `pre` into the encoder's variables under `prefix` (e.g. `enc.mb.`). A stem
/// with one input channel gets the sum of the three colour channels' weights
/// (a grey image replicated to RGB gives the same result).
pub fn load_into(vs: &nn::VarStore, prefix: &str, pre: &Pretrained) -> Result<usize> {
    let vars = vs.variables();
    let mut loaded = 0;
    tch::no_grad(|| -> Result<()> {
        for (name, arr) in &pre.named {
            let full = format!("{prefix}{name}");
            let Some(var) = vars.get(&full) else {
                continue; // blocks the encoder does not keep
            };
            let shape: Vec<i64> = arr.shape.iter().map(|&d| d as i64).collect();
            let mut t = Tensor::from_slice(&arr.data).view(shape.as_slice());
            if var.size() != t.size() && name == "stem.weight" && var.size()[1] == 1 {
                t = t.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
            }
            ensure!(
                var.size() == t.size(),
                "{full}: shape {:?}, pretrained {:?}",
                var.size(),
                t.size()
            );
            var.shallow_clone().copy_(&t.to_device(var.device()));
            loaded += 1;
        }
        Ok(())
    })?;
    Ok(loaded)
}

/// ImageNet logits `[B, 1001]` of RGB images `[B, 3, 224, 224]` in −1..1, through
/// `net` (all 17 blocks, three input channels) and the classifier tail of `pre`.
#[cfg(test)]
pub fn imagenet_logits(net: &MobileNetV2, pre: &Pretrained, x: &Tensor) -> Tensor {
    let to = |a: &Array| {
        Tensor::from_slice(&a.data).view(
            a.shape
                .iter()
                .map(|&d| d as i64)
                .collect::<Vec<_>>()
                .as_slice(),
        )
    };
    let f = net.forward(x);
    let f = f
        .conv2d(
            &to(&pre.last.0),
            Some(&Tensor::from_slice(&pre.last.1)),
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
        .clamp(0.0, 6.0);
    let pooled = f.mean_dim([2i64, 3].as_slice(), true, Kind::Float);
    pooled
        .conv2d(
            &to(&pre.classifier.0),
            Some(&Tensor::from_slice(&pre.classifier.1)),
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
        .flatten(1, -1)
}
