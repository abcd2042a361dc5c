//! Checkpoint weights read from safetensors, so the exporter never links libtorch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use super::ExportError;

/// Every tensor of one checkpoint, as f32, by `nn::Path` name.
#[derive(Debug, Clone)]
pub struct Weights {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights {
    /// Read a safetensors file. F32 tensors are taken as-is, F64 ones narrowed;
    /// other dtypes are refused when a graph asks for them.
    pub fn load(path: &Path) -> Result<Weights, ExportError> {
        let bytes = std::fs::read(path).map_err(|source| ExportError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parse safetensors bytes; `path` only names the source in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Weights, ExportError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| ExportError::Safetensors {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
                // Integer bookkeeping tensors (e.g. BN step counters) are never read.
                _ => continue,
            };
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(Weights {
            path: path.to_owned(),
            tensors,
        })
    }

    /// The tensor `name`, checked against the shape the architecture implies.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], ExportError> {
        let (got, data) = self
            .tensors
            .get(name)
            .ok_or_else(|| ExportError::MissingTensor {
                path: self.path.clone(),
                name: name.into(),
            })?;
        if got != shape {
            return Err(ExportError::TensorShape {
                path: self.path.clone(),
                name: name.into(),
                expected: shape.to_vec(),
                got: got.clone(),
            });
        }
        Ok(data)
    }

    /// Names of all float tensors (sorted), for diagnostics.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
