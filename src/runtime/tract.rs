//! [`Runtime`] on tract: the encoder runs once per image, the decoder once per
//! token with its state passed in and returned explicitly.
//!
//! The encoder and the decoder each keep one tract session ([`TypedSimpleState`])
//! across runs, so a run does not build a new one, and
//! the grid tensors of the image being decoded are built once and shared by
//! every step (tract values are reference-counted), so a step only allocates
//! its token and state inputs and its outputs.

use std::path::Path;
use std::sync::{Arc, Mutex, TryLockError};

use tract_core::prelude::multithread::Executor;
use tract_core::prelude::{
    tvec, DatumType, IntoTValue, RunOptions, TValue, TVec, Tensor, TypedRunnableModel,
    TypedSimpleState,
};

use super::{EncoderOutput, Runtime, RuntimeError, StepOutput};
use crate::bundle::{self, Bundle, BundleError, Precision, TRACT_VERSION};
use crate::model_config::{DecoderKind, ModelConfig};

/// Which graphs of a bundle to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelSource {
    /// The compiled NNEF artefact the manifest names for this CPU (the device path).
    #[default]
    Nnef,
    /// The ONNX graphs (reference and bench only; needs the ONNX parser).
    Onnx,
}

/// How to load a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TractOptions {
    /// Threads for matrix products (1 = run on the caller's thread).
    pub threads: usize,
    pub source: ModelSource,
    /// NNEF artefact of this precision instead of the one the manifest names
    /// for this CPU (comparisons and benches; an error if the bundle lacks it).
    pub precision: Option<Precision>,
}

impl Default for TractOptions {
    fn default() -> Self {
        TractOptions {
            threads: 1,
            source: ModelSource::Nnef,
            precision: None,
        }
    }
}

/// A scoped thread's result; its panic goes on in the caller.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Where [`TractRuntime::open_bundle`]'s time went, milliseconds; the three
/// ran at once.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct OpenParts {
    /// Check every file but the two tars.
    pub check_other_files_ms: f64,
    /// Read, check, parse, optimise and plan the encoder's tar.
    pub encoder_ms: f64,
    /// The same for the decoder's.
    pub decoder_ms: f64,
}

fn run_options(options: &TractOptions) -> RunOptions {
    RunOptions {
        executor: (options.threads > 1).then(|| Executor::multithread(options.threads)),
        ..Default::default()
    }
}

/// The encoder and decoder tar names and precision of the NNEF artefact to
/// load: the one `options.precision` names, else the manifest's for this CPU,
/// else fp32.
fn nnef_artefact(
    bundle: &Bundle,
    options: &TractOptions,
) -> Result<(String, String, Precision), BundleError> {
    let m = bundle.manifest();
    let manifest_path = bundle.path(bundle::MANIFEST);
    if m.tract_version != TRACT_VERSION {
        return Err(BundleError::Invalid {
            path: manifest_path,
            message: format!(
                "compiled with tract {}, this build has tract {TRACT_VERSION}: recompile the bundle",
                m.tract_version
            ),
        });
    }
    let arch = std::env::consts::ARCH;
    let a = match options.precision {
        Some(p) => m
            .artefacts
            .iter()
            .find(|a| a.precision == p)
            .ok_or_else(|| BundleError::Invalid {
                path: manifest_path,
                message: format!("no {} artefact in this bundle", p.name()),
            })?,
        None => m
            .artefact_for_cpu(arch, &bundle::cpu_features())
            .or_else(|| m.fp32())
            .ok_or_else(|| BundleError::Invalid {
                path: manifest_path,
                message: format!("no artefact for {arch} and no fp32 fallback"),
            })?,
    };
    Ok((a.encoder.clone(), a.decoder.clone(), a.precision))
}

/// Grid tensors of the image being decoded, keyed by their values.
struct GridCache {
    grid: Vec<f32>,
    grid_proj: Vec<f32>,
    tensors: (TValue, TValue),
}

pub struct TractRuntime {
    config: ModelConfig,
    precision: Precision,
    encoder_plan: Arc<TypedRunnableModel>,
    decoder_plan: Arc<TypedRunnableModel>,
    encoder: Mutex<TypedSimpleState>,
    decoder: Mutex<TypedSimpleState>,
    cache: Mutex<Option<GridCache>>,
    /// Float type of the encoder's image and of the decoder's state and grid
    /// inputs: f32, or f16 for an f16 artefact (outputs are read back as f32).
    encoder_dt: DatumType,
    decoder_dt: DatumType,
}

fn inference(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Inference(format!("{e:#}"))
}

fn tensor(shape: &[usize], data: &[f32], dt: DatumType) -> Result<TValue, RuntimeError> {
    let t = Tensor::from_shape(shape, data).map_err(inference)?;
    if dt == DatumType::F32 {
        return Ok(t.into_tvalue());
    }
    Ok(t.cast_to_dt(dt)
        .map_err(inference)?
        .into_owned()
        .into_tvalue())
}

fn to_vec(value: &TValue) -> Result<Vec<f32>, RuntimeError> {
    let value = value.cast_to::<f32>().map_err(inference)?;
    Ok(value
        .try_as_plain_ram()
        .map_err(inference)?
        .as_slice::<f32>()
        .map_err(inference)?
        .to_vec())
}

/// Datum type of a plan's input `i`.
fn input_dt(plan: &TypedRunnableModel, i: usize, path: &Path) -> Result<DatumType, BundleError> {
    plan.model()
        .input_fact(i)
        .map(|f| f.datum_type)
        .map_err(|e| BundleError::tract(path, "read the input type", e))
}

fn check_len(got: usize, expected: usize) -> Result<(), RuntimeError> {
    if got == expected {
        Ok(())
    } else {
        Err(RuntimeError::InputSize { expected, got })
    }
}

impl TractRuntime {
    /// Load the artefact the bundle's manifest names for this CPU, single-threaded.
    pub fn load(bundle: &Bundle) -> Result<TractRuntime, BundleError> {
        Self::load_with(bundle, &TractOptions::default())
    }

    pub fn load_with(bundle: &Bundle, options: &TractOptions) -> Result<TractRuntime, BundleError> {
        let m = bundle.manifest();
        let (encoder, decoder, precision) = match options.source {
            ModelSource::Nnef => {
                let (e, d, p) = nnef_artefact(bundle, options)?;
                (bundle.path(&e), bundle.path(&d), p)
            }
            ModelSource::Onnx => (
                bundle.path(&m.onnx_encoder),
                bundle.path(&m.onnx_decoder),
                Precision::Fp32,
            ),
        };
        let mut rt = Self::from_files(&m.model, &encoder, &decoder, options)?;
        rt.precision = precision;
        Ok(rt)
    }

    /// Open the bundle in `dir` and load its NNEF artefact for this CPU, with
    /// the checks of [`Bundle::open`] and the work on three threads: the
    /// encoder's and the decoder's tar are each read once, checked against the
    /// manifest and parsed from those same bytes, while every other file is
    /// checked. Nothing is returned unless every file matches. `options.source`
    /// is ignored (always NNEF).
    pub fn open_bundle(
        dir: &Path,
        options: &TractOptions,
    ) -> Result<(Bundle, TractRuntime, OpenParts), BundleError> {
        let bundle = Bundle::read_manifest(dir)?;
        let (encoder, decoder, precision) = nnef_artefact(&bundle, options)?;
        let run_options = run_options(options);
        let timed = |f: &dyn Fn() -> Result<Arc<TypedRunnableModel>, BundleError>| {
            let t = std::time::Instant::now();
            f().map(|plan| (plan, t.elapsed().as_secs_f64() * 1e3))
        };
        let load = |name: &str| {
            let bytes = bundle.read_checked(name)?;
            bundle::load_nnef_bytes(&bytes, &bundle.path(name), &run_options)
        };
        let (others, dec, enc) = std::thread::scope(|s| {
            let others = s.spawn(|| {
                let t = std::time::Instant::now();
                bundle
                    .check_files(&[&encoder, &decoder])
                    .map(|()| t.elapsed().as_secs_f64() * 1e3)
            });
            let dec = s.spawn(|| timed(&|| load(&decoder)));
            let enc = timed(&|| load(&encoder));
            (join(others), join(dec), enc)
        });
        let others_ms = others?;
        let (encoder_plan, encoder_ms) = enc?;
        let (decoder_plan, decoder_ms) = dec?;
        let mut rt = Self::from_plans(
            &bundle.manifest().model,
            (encoder_plan, &bundle.path(&encoder)),
            (decoder_plan, &bundle.path(&decoder)),
        )?;
        rt.precision = precision;
        let parts = OpenParts {
            check_other_files_ms: others_ms,
            encoder_ms,
            decoder_ms,
        };
        Ok((bundle, rt, parts))
    }

    /// Load an encoder/decoder pair from files (NNEF tar or `.onnx` by
    /// extension), e.g. while a bundle is being built.
    pub fn from_files(
        config: &ModelConfig,
        encoder: &Path,
        decoder: &Path,
        options: &TractOptions,
    ) -> Result<TractRuntime, BundleError> {
        let run_options = run_options(options);
        let load = |path: &Path| {
            if path.extension().is_some_and(|e| e == "onnx") {
                bundle::load_onnx(path, &run_options)
            } else {
                bundle::load_nnef(path, &run_options)
            }
        };
        Self::from_plans(config, (load(encoder)?, encoder), (load(decoder)?, decoder))
    }

    fn from_plans(
        config: &ModelConfig,
        (encoder_plan, encoder): (Arc<TypedRunnableModel>, &Path),
        (decoder_plan, decoder): (Arc<TypedRunnableModel>, &Path),
    ) -> Result<TractRuntime, BundleError> {
        let session = |plan: &Arc<TypedRunnableModel>, path: &Path| {
            plan.spawn()
                .map_err(|e| BundleError::tract(path, "start a session", e))
        };
        Ok(TractRuntime {
            config: config.clone(),
            precision: Precision::Fp32,
            encoder: Mutex::new(session(&encoder_plan, encoder)?),
            decoder: Mutex::new(session(&decoder_plan, decoder)?),
            encoder_dt: input_dt(&encoder_plan, 0, encoder)?,
            // Input 1 is the state (input 0 the token).
            decoder_dt: input_dt(&decoder_plan, 1, decoder)?,
            encoder_plan,
            decoder_plan,
            cache: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Precision of the loaded artefact.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The planned encoder and decoder graphs (for per-node profiles).
    pub fn plans(&self) -> (&Arc<TypedRunnableModel>, &Arc<TypedRunnableModel>) {
        (&self.encoder_plan, &self.decoder_plan)
    }

    /// The encoder's input for a preprocessed `S × S` image.
    pub fn encoder_inputs(&self, image: &[f32]) -> Result<TVec<TValue>, RuntimeError> {
        let s = self.config.input_size;
        check_len(image.len(), s * s)?;
        Ok(tvec![tensor(&[1, 1, s, s], image, self.encoder_dt)?])
    }

    /// The decoder's inputs for one step from `state` after `token`.
    pub fn decoder_inputs(
        &self,
        token: u32,
        state: &[f32],
        encoded: &EncoderOutput,
    ) -> Result<TVec<TValue>, RuntimeError> {
        let c = &self.config;
        if token as usize >= c.vocab_size {
            return Err(RuntimeError::Inference(format!(
                "token {token} outside the vocabulary of {}",
                c.vocab_size
            )));
        }
        check_len(state.len(), c.state_size())?;
        let (grid, grid_proj) = self.grid_tensors(encoded)?;
        let token = Tensor::from_shape(&[1], &[token as i64])
            .map_err(inference)?
            .into_tvalue();
        let h = tensor(&[1, c.state_size()], state, self.decoder_dt)?;
        Ok(match c.decoder {
            DecoderKind::Attention => tvec![token, h, grid, grid_proj],
            DecoderKind::Merge => tvec![token, h, grid_proj],
        })
    }

    fn grid_tensors(&self, encoded: &EncoderOutput) -> Result<(TValue, TValue), RuntimeError> {
        let c = &self.config;
        let mut cache = self.cache.lock().map_err(inference)?;
        if let Some(hit) = cache.as_ref() {
            if hit.grid == encoded.grid && hit.grid_proj == encoded.grid_proj {
                return Ok(hit.tensors.clone());
            }
        }
        let (n, ch) = (c.grid_cells(), c.grid_channels());
        let proj_shape: Vec<usize> = match c.decoder {
            DecoderKind::Attention => vec![1, n, c.attn_dim],
            DecoderKind::Merge => vec![1, c.hidden],
        };
        check_len(encoded.grid.len(), n * ch)?;
        check_len(encoded.grid_proj.len(), proj_shape.iter().product())?;
        let tensors = (
            tensor(&[1, n, ch], &encoded.grid, self.decoder_dt)?,
            tensor(&proj_shape, &encoded.grid_proj, self.decoder_dt)?,
        );
        *cache = Some(GridCache {
            grid: encoded.grid.clone(),
            grid_proj: encoded.grid_proj.clone(),
            tensors: tensors.clone(),
        });
        Ok(tensors)
    }
}

impl Runtime for TractRuntime {
    fn encode(&self, image: &[f32]) -> Result<EncoderOutput, RuntimeError> {
        let inputs = self.encoder_inputs(image)?;
        // Another thread encoding now: a session of its own, as before sessions were kept.
        let out = match self.encoder.try_lock() {
            Ok(mut session) => session.run(inputs),
            Err(TryLockError::WouldBlock) => self.encoder_plan.run(inputs),
            Err(e @ TryLockError::Poisoned(_)) => return Err(inference(e)),
        }
        .map_err(inference)?;
        let h0 = match self.config.decoder {
            DecoderKind::Attention => to_vec(&out[4])?,
            DecoderKind::Merge => vec![0.0; self.config.state_size()],
        };
        Ok(EncoderOutput {
            grid: to_vec(&out[0])?,
            grid_proj: to_vec(&out[1])?,
            pooled: to_vec(&out[2])?,
            findings: to_vec(&out[3])?,
            h0,
        })
    }

    fn step(
        &self,
        token: u32,
        state: &[f32],
        encoded: &EncoderOutput,
    ) -> Result<StepOutput, RuntimeError> {
        let c = &self.config;
        let inputs = self.decoder_inputs(token, state, encoded)?;
        let out = self
            .decoder
            .lock()
            .map_err(inference)?
            .run(inputs)
            .map_err(inference)?;
        let attn = match c.decoder {
            DecoderKind::Attention => to_vec(&out[2])?,
            DecoderKind::Merge => vec![0.0; c.grid_cells()],
        };
        Ok(StepOutput {
            logits: to_vec(&out[0])?,
            state: to_vec(&out[1])?,
            attn,
        })
    }
}
