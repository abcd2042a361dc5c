//! Ahead-of-time compilation: ONNX → tract typed model with the fixed shapes
//! the exporter declared → decluttered → NNEF tar. The board then loads the
//! tar without the ONNX parser and only optimises it for its own CPU.

use std::io::BufWriter;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tract_onnx::prelude::{
    Framework, InferenceModelExt, RunOptions, TypedModel, TypedRunnableModel,
};
use tract_onnx::WithOnnx;

use super::BundleError;

/// Compile the ONNX graph at `onnx` into an NNEF tar at `nnef`. The tar is
/// written deterministically (fixed timestamps), so its hash depends on the
/// model only.
pub fn compile(onnx: &Path, nnef: &Path) -> Result<(), BundleError> {
    write_nnef(&typed(onnx)?, nnef)
}

/// Compile as [`compile`] does, with every f32 weight, activation and
/// operation turned into f16 (tract's `FloatPrecisionTranslator`). The graph's
/// float inputs and outputs become f16 too; the runtime casts at the edges.
pub fn compile_f16(onnx: &Path, nnef: &Path) -> Result<(), BundleError> {
    use tract_core::floats::FloatPrecisionTranslator;
    use tract_core::transform::ModelTransform;
    use tract_onnx::prelude::{f16, Datum};
    let mut model = typed(onnx)?;
    FloatPrecisionTranslator::new(f32::datum_type(), f16::datum_type())
        .transform(&mut model)
        .map_err(|e| BundleError::tract(onnx, "translate the model to f16", e))?;
    let model = model
        .into_decluttered()
        .map_err(|e| BundleError::tract(onnx, "declutter the f16 model", e))?;
    write_nnef(&model, nnef)
}

/// The ONNX graph at `onnx`, typed with its fixed shapes and decluttered.
fn typed(onnx: &Path) -> Result<TypedModel, BundleError> {
    tract_onnx::onnx()
        .model_for_path(onnx)
        .map_err(|e| BundleError::tract(onnx, "read the ONNX model", e))?
        .into_typed()
        .map_err(|e| BundleError::tract(onnx, "type the model (are all shapes fixed?)", e))?
        .into_decluttered()
        .map_err(|e| BundleError::tract(onnx, "declutter the model", e))
}

/// Write a decluttered typed model as a plain (uncompressed) NNEF tar, which
/// loads faster than both ONNX and gzip'd NNEF (TOOLCHAIN.md).
pub fn write_nnef(model: &TypedModel, nnef: &Path) -> Result<(), BundleError> {
    let file = std::fs::File::create(nnef).map_err(BundleError::io(nnef))?;
    nnef_reader()
        .write_to_tar_with_config(model, BufWriter::new(file), false, true)
        .map_err(|e| BundleError::tract(nnef, "write NNEF", e))?
        .into_inner()
        .map_err(|e| BundleError::io(nnef)(e.into_error()))?;
    Ok(())
}

/// The NNEF reader with the ONNX operator set, built once: building its
/// operator registries costs about as much as parsing a graph (7 ms of a 17 ms
/// encoder load on x86, measured by `cxr-edge bench-model`'s predecessor probe).
fn nnef_reader() -> &'static tract_nnef::internal::Nnef {
    static NNEF: OnceLock<tract_nnef::internal::Nnef> = OnceLock::new();
    NNEF.get_or_init(|| tract_nnef::nnef().with_onnx())
}

/// Load an NNEF tar, optimise it for this CPU and make it runnable.
pub fn load_nnef(
    path: &Path,
    options: &RunOptions,
) -> Result<Arc<TypedRunnableModel>, BundleError> {
    let model = nnef_reader()
        .model_for_path(path)
        .map_err(|e| BundleError::tract(path, "read the NNEF model", e))?;
    optimise(model, path, options)
}

/// [`load_nnef`] from the tar's bytes already in memory (`path` names it in
/// errors): what a unit parses is then exactly what it hashed.
pub fn load_nnef_bytes(
    bytes: &[u8],
    path: &Path,
    options: &RunOptions,
) -> Result<Arc<TypedRunnableModel>, BundleError> {
    let model = nnef_reader()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .map_err(|e| BundleError::tract(path, "read the NNEF model", e))?;
    optimise(model, path, options)
}

/// Load an ONNX graph the same way (reference and bench only).
pub fn load_onnx(
    path: &Path,
    options: &RunOptions,
) -> Result<Arc<TypedRunnableModel>, BundleError> {
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| BundleError::tract(path, "read the ONNX model", e))?
        .into_typed()
        .map_err(|e| BundleError::tract(path, "type the model", e))?;
    optimise(model, path, options)
}

fn optimise(
    model: TypedModel,
    path: &Path,
    options: &RunOptions,
) -> Result<Arc<TypedRunnableModel>, BundleError> {
    model
        .into_optimized()
        .map_err(|e| BundleError::tract(path, "optimise the model", e))?
        .into_runnable_with_options(options)
        .map_err(|e| BundleError::tract(path, "plan the model", e))
}
