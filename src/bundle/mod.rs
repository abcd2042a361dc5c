//! The device bundle: a folder `models/<id>/` that the board trusts only after
//! checking it.
//!
//! A bundle holds the compiled encoder and decoder (NNEF tars, fp32 and where
//! present int8 or f16), the ONNX graphs they came from, the tokenizer vocabulary,
//! `parity.json` (inputs with expected outputs) and `manifest.json`, which lists
//! the sha256 of every other file. [`Bundle::open`] refuses a bundle whose schema
//! version or any hash does not match, naming the file; [`build`] makes one from
//! a trainer checkpoint; [`add_reduced`] adds a reduced-precision artefact to a
//! built one; [`compile`] turns ONNX into NNEF ahead of time so the board needs
//! no ONNX parser.

mod build;
mod compile;
mod manifest;
mod parity;
mod reduced;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use build::{
    attach_impression_bank, attach_view_check, build, recompile, synthetic_image, BuildOptions,
};
pub use compile::{compile, compile_f16, load_nnef, load_nnef_bytes, load_onnx};
pub use manifest::{
    cpu_features, target_matches, Artefact, FileEntry, Manifest, ObservationThreshold, Precision,
    VocabEntry, SCHEMA_VERSION, TRACT_VERSION,
};
pub use parity::{argmax, EncoderValues, Parity, ParityReport, ParityStep};
pub use reduced::{add_reduced, Reduced};

use crate::export::ExportError;

/// Name of the manifest inside a bundle folder.
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid manifest: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: manifest schema version {found}, this build reads version {supported}")]
    Schema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: sha256 is {actual}, the manifest says {expected} (file altered or corrupt)")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: size is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{manifest}: `{name}` is referenced but has no hash in `files`")]
    Unlisted { manifest: PathBuf, name: String },
    #[error("{manifest}: file name `{name}` is not a plain file name inside the bundle")]
    BadName { manifest: PathBuf, name: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: tract could not {action}: {message}")]
    Tract {
        path: PathBuf,
        action: &'static str,
        message: String,
    },
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl BundleError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
        move |source| BundleError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn tract(
        path: &Path,
        action: &'static str,
        e: impl std::fmt::Display,
    ) -> BundleError {
        BundleError::Tract {
            path: path.to_owned(),
            action,
            message: format!("{e:#}"),
        }
    }
}

/// Hex sha256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file's size, then its sha256, against its manifest entry.
fn check_digest(
    path: PathBuf,
    entry: &FileEntry,
    len: u64,
    actual: String,
) -> Result<(), BundleError> {
    if len != entry.bytes {
        return Err(BundleError::SizeMismatch {
            path,
            expected: entry.bytes,
            actual: len,
        });
    }
    if actual != entry.sha256 {
        return Err(BundleError::HashMismatch {
            path,
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// `f` of every item, the items shared out between the CPU's cores (each
/// thread takes the next item not yet taken), results in the items' order.
/// Hashing a bundle's files this way makes a unit's start-up about as many
/// times faster as it has cores, with the same checks.
fn on_all_cores<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was taken by a thread"))
        .collect()
}

/// Largest model input side a bundle may declare: preprocessing allocates
/// `size²` values per film, so a corrupt manifest must not set it freely.
/// (224 and 128 are what the trainer builds; 1024 leaves room.)
pub const MAX_INPUT_SIZE: usize = 1024;

/// A bundle whose manifest and files have been verified.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
}

impl Bundle {
    /// Read the manifest in `dir` and check what needs no other file (schema
    /// version, names, sizes, ids); the files are not checked yet, so the
    /// result is only for a caller that checks them ([`Bundle::check_files`],
    /// [`Bundle::read_checked`]) before using any.
    pub(crate) fn read_manifest(dir: impl AsRef<Path>) -> Result<Bundle, BundleError> {
        let dir = dir.as_ref().to_owned();
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(BundleError::io(&path))?;
        // Read the version alone first, so a newer layout gets a schema error
        // rather than a confusing missing-field one.
        #[derive(serde::Deserialize)]
        struct Probe {
            schema_version: u32,
        }
        let probe: Probe =
            serde_json::from_slice(&text).map_err(|source| BundleError::Manifest {
                path: path.clone(),
                source,
            })?;
        if probe.schema_version != SCHEMA_VERSION {
            return Err(BundleError::Schema {
                path,
                found: probe.schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|source| BundleError::Manifest {
                path: path.clone(),
                source,
            })?;
        let bundle = Bundle { dir, manifest };
        bundle.check_manifest()?;
        Ok(bundle)
    }

    /// Open and verify the bundle in `dir`: schema version, that every
    /// referenced file is listed, and every listed file's size and sha256.
    pub fn open(dir: impl AsRef<Path>) -> Result<Bundle, BundleError> {
        let bundle = Self::read_manifest(dir)?;
        bundle.check_files(&[])?;
        Ok(bundle)
    }

    /// Every listed file but those in `skip` against its size and sha256, the
    /// files shared out between the CPU's cores.
    pub(crate) fn check_files(&self, skip: &[&str]) -> Result<(), BundleError> {
        let entries: Vec<&String> = self
            .manifest
            .files
            .keys()
            .filter(|name| !skip.contains(&name.as_str()))
            .collect();
        let checked = on_all_cores(&entries, |name| self.check_streaming(name));
        // The first failure in the manifest's (sorted) order, whichever thread
        // met it first.
        checked.into_iter().collect()
    }

    /// The listed file `name`'s size and sha256 against the manifest, read in
    /// blocks through one small buffer (no copy of the whole file in memory).
    fn check_streaming(&self, name: &str) -> Result<(), BundleError> {
        use std::io::Read;
        let entry = self.entry(name)?;
        let path = self.dir.join(name);
        let mut file = std::fs::File::open(&path).map_err(BundleError::io(&path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut len = 0u64;
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BundleError::io(&path)(e)),
            }
        }
        check_digest(path, entry, len, hex::encode(hasher.finalize()))
    }

    fn entry(&self, name: &str) -> Result<&FileEntry, BundleError> {
        self.manifest
            .files
            .get(name)
            .ok_or_else(|| BundleError::Unlisted {
                manifest: self.dir.join(MANIFEST),
                name: name.into(),
            })
    }

    /// The bytes of the listed file `name`, once its size and sha256 match the
    /// manifest: what a caller parses is exactly what was checked.
    pub(crate) fn read_checked(&self, name: &str) -> Result<Vec<u8>, BundleError> {
        let entry = self.entry(name)?;
        let path = self.dir.join(name);
        let bytes = std::fs::read(&path).map_err(BundleError::io(&path))?;
        let actual = sha256_hex(&bytes);
        check_digest(path, entry, bytes.len() as u64, actual)?;
        Ok(bytes)
    }

    /// The checks that need the manifest alone: every referenced file listed,
    /// plain file names, sizes and ids in range.
    fn check_manifest(&self) -> Result<(), BundleError> {
        let manifest_path = self.dir.join(MANIFEST);
        for name in self.manifest.referenced_files() {
            if !self.manifest.files.contains_key(name) {
                return Err(BundleError::Unlisted {
                    manifest: manifest_path,
                    name: name.into(),
                });
            }
        }
        for name in self.manifest.files.keys() {
            let plain = Path::new(name).components().count() == 1
                && !name.is_empty()
                && name != ".."
                && name != "."
                && name != MANIFEST;
            if !plain {
                return Err(BundleError::BadName {
                    manifest: manifest_path,
                    name: name.clone(),
                });
            }
        }
        let m = &self.manifest;
        let problem = if m.model.input_size == 0 || m.model.input_size > MAX_INPUT_SIZE {
            Some(format!(
                "model input size {} is outside 1..={MAX_INPUT_SIZE}",
                m.model.input_size
            ))
        } else if m.preprocess.size != m.model.input_size {
            Some(format!(
                "preprocess size {} differs from the model input size {}",
                m.preprocess.size, m.model.input_size
            ))
        } else if m.fp32().is_none() {
            Some("no fp32 artefact".to_string())
        } else if m.vocab.bos_id as usize >= m.model.vocab_size
            || m.vocab.eos_id as usize >= m.model.vocab_size
        {
            Some("BOS/EOS id outside the vocabulary".to_string())
        } else {
            None
        };
        match problem {
            Some(message) => Err(BundleError::Invalid {
                path: manifest_path,
                message,
            }),
            None => Ok(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Absolute path of a file of the bundle.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The parity file (inputs with expected outputs).
    pub fn parity(&self) -> Result<Parity, BundleError> {
        Parity::read(&self.path(&self.manifest.parity))
    }

    /// A human-readable summary for `cxr-edge info`.
    pub fn describe(&self) -> String {
        let m = &self.manifest;
        let mut s = String::new();
        let _ = writeln!(s, "bundle      {}", self.dir.display());
        let _ = writeln!(
            s,
            "model id    {} (schema {}, {})",
            m.model_id, m.schema_version, m.created_by
        );
        let _ = writeln!(s, "tract       {}", m.tract_version);
        describe_model(&mut s, &m.model);
        let _ = writeln!(
            s,
            "text        BOS {}, EOS {}, max length {}, vocab sha256 {}",
            m.vocab.bos_id,
            m.vocab.eos_id,
            m.max_len,
            &m.vocab.sha256[..m.vocab.sha256.len().min(16)]
        );
        let _ = writeln!(s, "preprocess  {:?}", m.preprocess);
        describe_artefacts(&mut s, m);
        describe_thresholds(&mut s, &m.observations);
        let _ = writeln!(s, "provenance  {}", m.provenance);
        let _ = writeln!(s, "metrics     {}", m.metrics);
        let _ = write!(s, "files       {} verified", m.files.len());
        s
    }
}

/// `describe`'s encoder and decoder lines.
fn describe_model(s: &mut String, c: &crate::model_config::ModelConfig) {
    let layers = match c.encoder {
        crate::model_config::EncoderKind::Plain => format!("channels {:?}", c.channels),
        crate::model_config::EncoderKind::MobileNetV2 { blocks } => {
            format!(
                "MobileNetV2 1.0, {blocks} blocks, {} channels",
                c.grid_channels()
            )
        }
    };
    let _ = writeln!(
        s,
        "encoder     {}² input, {layers}, grid {}×{}, ~{:.0} MMAC",
        c.input_size,
        c.grid_side(),
        c.grid_side(),
        c.encoder_macs() as f64 / 1e6
    );
    let _ = writeln!(
        s,
        "decoder     {:?}, embed {}, hidden {}, attention {}, vocabulary {}",
        c.decoder, c.embed_dim, c.hidden, c.attn_dim, c.vocab_size
    );
}

/// `describe`'s line per artefact: precision, CPUs, files and size.
fn describe_artefacts(s: &mut String, m: &Manifest) {
    for a in &m.artefacts {
        let size: u64 = [&a.encoder, &a.decoder]
            .iter()
            .filter_map(|f| m.files.get(f.as_str()))
            .map(|f| f.bytes)
            .sum();
        let _ = writeln!(
            s,
            "artefact    {} for {} ({}, {}; {:.2} MB)",
            a.precision,
            if a.targets.is_empty() {
                "no CPU by default (--precision)".to_string()
            } else {
                a.targets.join(", ")
            },
            a.encoder,
            a.decoder,
            size as f64 / 1e6
        );
    }
}

/// `describe`'s thresholds, with each finding's calibration.
fn describe_thresholds(s: &mut String, observations: &[ObservationThreshold]) {
    let _ = writeln!(s, "thresholds");
    for o in observations {
        let calibration = match &o.calibration {
            Some(crate::calibration::Calibration::Platt { a, b }) => {
                format!("  calibrated (Platt a {a:.3}, b {b:.3})")
            }
            Some(crate::calibration::Calibration::Isotonic { x, .. }) => {
                format!("  calibrated (isotonic, {} points)", x.len())
            }
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "  {:<18} {:.3}{calibration}",
            o.observation.key(),
            o.threshold
        );
    }
}
