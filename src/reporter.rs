//! From a decoded radiograph to a [`Report`]: preprocess with the manifest's
//! options, encode, decode the impression, score the findings, time every stage.
//!
//! [`Reporter::open`] trusts a bundle only after its manifest and every file's
//! size and sha256 are checked as [`crate::bundle::Bundle::open`] does (the model's tars are
//! parsed from the very bytes hashed, [`TractRuntime::open_bundle`]), and loads
//! the tract runtime and the vocabulary;
//! [`Reporter::from_parts`] takes any [`Runtime`] (the scripted fake in tests), so
//! everything here is tested without a model. A `Reporter` is `Sync`: the server
//! shares one between its worker threads.

use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use crate::bundle::{self, BundleError, Manifest, Precision};
use crate::calibration::Calibration;
use crate::decode::{self, DecodeError, DecodeOptions, Strategy};
use crate::impression::SentenceBank;
use crate::input::{self, InputError, Radiograph, ValidateOptions};
use crate::model_config::{DecoderKind, ModelConfig};
use crate::preprocess::PreprocessOptions;
use crate::report::{Finding, Heatmap, Report, Timings};
use crate::runtime::tract::{TractOptions, TractRuntime};
use crate::runtime::{EncoderOutput, Runtime, RuntimeError};
use crate::text::{Vocab, VocabError};
use crate::view_check::ViewCheck;
use crate::Observation;

/// Threshold used for an observation the manifest gives none for.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// How the device runs a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct ReporterOptions {
    /// Beam width; 1 decodes greedily.
    pub beam: usize,
    /// Forbid repeating any n-gram of this size in the impression (0 = off).
    pub no_repeat_ngram: usize,
    /// Threads for tract's matrix products.
    pub threads: usize,
    /// Run this precision's artefact instead of the one the manifest names for
    /// this CPU.
    pub precision: Option<Precision>,
    /// Report on films the bundle's view check refuses (like
    /// [`ValidateOptions::force`] for the header checks).
    pub force: bool,
    /// Per-unit flag thresholds replacing the manifest's, in the units the unit
    /// shows: calibrated probabilities where the bundle has a calibration,
    /// otherwise model scores.
    pub thresholds: std::collections::BTreeMap<Observation, f32>,
}

/// Greedy by default: it is what the trainer's validation metrics measure
/// (`cxr-train eval`) and the fastest on the board; the repetition guard only
/// changes texts that would repeat a trigram.
impl Default for ReporterOptions {
    fn default() -> Self {
        ReporterOptions {
            beam: 1,
            no_repeat_ngram: 3,
            threads: 1,
            precision: None,
            force: false,
            thresholds: Default::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum ReporterError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Vocab(#[from] VocabError),
    #[error("{path}: {message}")]
    Mismatch { path: PathBuf, message: String },
    #[error("{0}")]
    Options(String),
}

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{input}: encoder failed: {source}")]
    Encode {
        input: String,
        #[source]
        source: RuntimeError,
    },
    #[error("{input}: decoding failed: {source}")]
    Decode {
        input: String,
        #[source]
        source: DecodeError,
    },
    #[error("{input}: the encoder gave {got} findings logits, expected {expected}")]
    Findings {
        input: String,
        expected: usize,
        got: usize,
    },
    #[error("{input}: the encoder's grid gave {got} view-check features, expected {expected}")]
    ViewFeatures {
        input: String,
        expected: usize,
        got: usize,
    },
}

/// What one study costs beyond the report itself (for `bench`), and what the
/// decoder wrote before the impression was made consistent with the flags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    pub decoder_steps: usize,
    pub tokens: usize,
    /// The decoder's own text.
    pub generated: String,
    /// Whether the impression is that text or was composed from the flags.
    pub source: Option<crate::impression::Source>,
}

/// Where [`Reporter::open`]'s time went, milliseconds (a unit's start-up cost).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct OpenTimings {
    /// Check every file of the bundle and load, optimise and plan this CPU's
    /// encoder and decoder ([`TractRuntime::open_bundle`]: three threads).
    pub files_and_model_ms: f64,
    /// Its three parts, which ran at once.
    pub parts: crate::runtime::tract::OpenParts,
    /// Vocabulary, view check, sentence bank and the checks between them.
    pub rest_ms: f64,
    pub total_ms: f64,
}

pub struct Reporter {
    runtime: Box<dyn Runtime + Send + Sync>,
    open_timings: Option<OpenTimings>,
    vocab: Vocab,
    model: ModelConfig,
    preprocess: PreprocessOptions,
    decode: DecodeOptions,
    thresholds: [f32; Observation::COUNT],
    /// Scores from which a flagged finding is stated without hedging.
    definite: [Option<f32>; Observation::COUNT],
    calibration: [Option<Calibration>; Observation::COUNT],
    model_id: String,
    bundle_hash: String,
    view_check: Option<ViewCheck>,
    /// Real impressions' sentences to state flagged findings with.
    bank: Option<SentenceBank>,
    force: bool,
}

impl Reporter {
    /// Open and verify the bundle in `dir` and load its model for this CPU.
    pub fn open(dir: &Path, options: &ReporterOptions) -> Result<Reporter, ReporterError> {
        Self::open_wrapped(dir, options, |runtime| Box::new(runtime))
    }

    /// [`open`](Self::open), letting `wrap` decorate the loaded runtime (e.g. to
    /// time the model alone, as `cxr-edge bench` does).
    pub fn open_wrapped(
        dir: &Path,
        options: &ReporterOptions,
        wrap: impl FnOnce(TractRuntime) -> Box<dyn Runtime + Send + Sync>,
    ) -> Result<Reporter, ReporterError> {
        let start = Instant::now();
        let tract = TractOptions {
            threads: options.threads.max(1),
            precision: options.precision,
            ..TractOptions::default()
        };
        let (bundle, runtime, parts) = TractRuntime::open_bundle(dir, &tract)?;
        let files_and_model_ms = ms(start);
        let t = Instant::now();
        let m = bundle.manifest();
        let vocab = Vocab::load(&bundle.path(&m.vocab.file))?;
        let manifest_path = bundle.path(bundle::MANIFEST);
        let bytes = std::fs::read(&manifest_path).map_err(|source| BundleError::Io {
            path: manifest_path.clone(),
            source,
        })?;
        let hash = bundle::sha256_hex(&bytes);
        let view_check = match &m.view_check {
            Some(file) => Some(ViewCheck::load(&bundle.path(file))?),
            None => None,
        };
        let bank = match &m.impression_bank {
            Some(file) => Some(SentenceBank::load(&bundle.path(file))?),
            None => None,
        };
        let reporter =
            Self::from_parts(wrap(runtime), m, vocab, hash, options).map_err(|e| match e {
                ReporterError::Mismatch { message, .. } => ReporterError::Mismatch {
                    path: manifest_path.clone(),
                    message,
                },
                other => other,
            })?;
        let mut reporter = reporter.with_sentence_bank(bank);
        let timings = OpenTimings {
            files_and_model_ms,
            parts,
            rest_ms: ms(t),
            total_ms: ms(start),
        };
        tracing::debug!(?timings, "bundle opened");
        reporter.open_timings = Some(timings);
        match view_check {
            Some(check) => {
                reporter
                    .with_view_check(check)
                    .map_err(|message| ReporterError::Mismatch {
                        path: manifest_path,
                        message,
                    })
            }
            None => Ok(reporter),
        }
    }

    /// Judge films with `check` before reporting on them; its feature size must
    /// be four quadrants of the encoder's grid channels.
    pub fn with_view_check(mut self, check: ViewCheck) -> Result<Reporter, String> {
        let expected = 4 * self.model.grid_channels();
        if check.dim() != expected {
            return Err(format!(
                "the view check has {} features, the encoder's grid gives {expected}",
                check.dim()
            ));
        }
        self.view_check = Some(check);
        Ok(self)
    }

    /// State flagged findings with sentences from `bank` (see [`crate::impression`]).
    pub fn with_sentence_bank(mut self, bank: Option<SentenceBank>) -> Reporter {
        self.bank = bank;
        self
    }

    /// The bundle's view check, if it has one.
    pub fn view_check(&self) -> Option<&ViewCheck> {
        self.view_check.as_ref()
    }

    /// Assemble a reporter from a runtime and a manifest, e.g. a scripted fake.
    pub fn from_parts(
        runtime: Box<dyn Runtime + Send + Sync>,
        manifest: &Manifest,
        vocab: Vocab,
        bundle_hash: String,
        options: &ReporterOptions,
    ) -> Result<Reporter, ReporterError> {
        let model = manifest.model.clone();
        let mismatch = |message: String| ReporterError::Mismatch {
            path: PathBuf::from(bundle::MANIFEST),
            message,
        };
        if vocab.len() != model.vocab_size {
            return Err(mismatch(format!(
                "the vocabulary has {} tokens, the model {}",
                vocab.len(),
                model.vocab_size
            )));
        }
        if manifest.max_len == 0 || manifest.max_len > decode::MAX_LEN {
            return Err(mismatch(format!(
                "maximum length {} is outside 1..={}",
                manifest.max_len,
                decode::MAX_LEN
            )));
        }
        let decode = decode_options(manifest, options)?;
        let FindingRules {
            thresholds,
            definite,
            calibration,
        } = finding_rules(manifest, options);
        Ok(Reporter {
            runtime,
            open_timings: None,
            vocab,
            model,
            preprocess: manifest.preprocess.clone(),
            decode,
            thresholds,
            definite,
            calibration,
            model_id: manifest.model_id.clone(),
            bundle_hash,
            view_check: None,
            bank: None,
            force: options.force,
        })
    }

    /// Where [`open`](Self::open)'s time went (`None` when made from parts).
    pub fn open_timings(&self) -> Option<OpenTimings> {
        self.open_timings
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn bundle_hash(&self) -> &str {
        &self.bundle_hash
    }

    pub fn model(&self) -> &ModelConfig {
        &self.model
    }

    /// Read, decode and validate an image file, then report on it; the file
    /// decoding time is part of the report's timings.
    pub fn report_file(
        &self,
        path: &Path,
        validate: &ValidateOptions,
    ) -> Result<Report, ReportError> {
        let start = Instant::now();
        let radiograph = input::decode_file(path, validate)?;
        let decode_image_ms = ms(start);
        let (mut report, _) = self.report_with_stats(&radiograph)?;
        report.timings.decode_image_ms = decode_image_ms;
        report.timings.total_ms += decode_image_ms;
        Ok(report)
    }

    /// Report on one radiograph.
    pub fn report(&self, radiograph: &Radiograph) -> Result<Report, ReportError> {
        self.report_with_stats(radiograph).map(|(r, _)| r)
    }

    /// [`report`](Self::report), also returning the decoding effort.
    pub fn report_with_stats(
        &self,
        radiograph: &Radiograph,
    ) -> Result<(Report, Stats), ReportError> {
        let input = &radiograph.info.source;
        let start = Instant::now();
        let tensor = self.preprocess.apply(&radiograph.image);
        let preprocess_ms = ms(start);

        let t = Instant::now();
        let encoded = self.encode_tensor(input, &tensor)?;
        let encoder_ms = ms(t);
        self.check_view(input, &encoded)?;

        let t = Instant::now();
        let decoded =
            decode::decode(self.runtime.as_ref(), &encoded, &self.decode).map_err(|source| {
                ReportError::Decode {
                    input: input.clone(),
                    source,
                }
            })?;
        let generated = self.vocab.decode(&decoded.tokens);
        let decoder_ms = ms(t);

        let findings: Vec<Finding> = Observation::ALL
            .into_iter()
            .map(|o| {
                let score = sigmoid(encoded.findings[o.index()]);
                let threshold = self.thresholds[o.index()];
                Finding {
                    observation: o,
                    score,
                    threshold,
                    flagged: score >= threshold,
                    probability: self.calibration[o.index()].as_ref().map(|c| c.apply(score)),
                }
            })
            .collect();
        let impression = crate::impression::compose(
            &generated,
            &findings,
            &self.definite,
            self.bank.as_ref(),
            || film_digest(&tensor),
        );
        tracing::debug!(input, generated, source = ?impression.source, "impression");
        let side = self.model.grid_side();
        let heatmap = match self.model.decoder {
            DecoderKind::Attention => decoded
                .mean_attention()
                .filter(|m| m.len() == side * side)
                .map(|values| Heatmap { side, values }),
            DecoderKind::Merge => None,
        };
        let stats = Stats {
            decoder_steps: decoded.steps,
            tokens: decoded.tokens.len(),
            generated,
            source: Some(impression.source),
        };
        let report = Report {
            study: radiograph.info.clone(),
            impression: impression.text,
            findings,
            heatmap,
            timings: Timings {
                decode_image_ms: 0.0,
                preprocess_ms,
                encoder_ms,
                decoder_ms,
                total_ms: ms(start),
            },
            model_id: self.model_id.clone(),
            bundle_hash: self.bundle_hash.clone(),
            generated_at: now_rfc3339(),
        };
        Ok((report, stats))
    }
}

impl Reporter {
    /// Preprocess and encode one radiograph, without judging or reporting it
    /// (`view-check` fits its statistics on these features).
    pub fn encode(&self, radiograph: &Radiograph) -> Result<EncoderOutput, ReportError> {
        let tensor = self.preprocess.apply(&radiograph.image);
        self.encode_tensor(&radiograph.info.source, &tensor)
    }

    fn encode_tensor(&self, input: &str, tensor: &[f32]) -> Result<EncoderOutput, ReportError> {
        let encoded = self
            .runtime
            .encode(tensor)
            .map_err(|source| ReportError::Encode {
                input: input.to_string(),
                source,
            })?;
        if encoded.findings.len() != Observation::COUNT {
            return Err(ReportError::Findings {
                input: input.to_string(),
                expected: Observation::COUNT,
                got: encoded.findings.len(),
            });
        }
        Ok(encoded)
    }

    /// Refuse a film whose encoder features lie outside the frontal films the
    /// bundle's view check was fitted on (unless forced, or the bundle has none).
    fn check_view(&self, input: &str, encoded: &EncoderOutput) -> Result<(), ReportError> {
        let Some(check) = &self.view_check else {
            return Ok(());
        };
        let features = crate::view_check::features(encoded, self.model.grid_side());
        if features.len() != check.dim() {
            return Err(ReportError::ViewFeatures {
                input: input.to_string(),
                expected: check.dim(),
                got: features.len(),
            });
        }
        match check.judge(&features) {
            Ok(distance) => {
                tracing::debug!(input, distance, "view check passed");
                Ok(())
            }
            Err(refusal) if self.force => {
                tracing::warn!(input, reason = %refusal, "forced past a chest-film refusal");
                Ok(())
            }
            Err(refusal) => Err(ReportError::Input(InputError::NotChestFilm {
                input: input.to_string(),
                refusal,
            })),
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// The current UTC time as RFC 3339 with milliseconds.
/// A digest of the film as the model saw it (the first eight bytes of the
/// SHA-256 of the input tensor): the same film always gets the same wording.
fn film_digest(tensor: &[f32]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for v in tensor {
        hasher.update(v.to_le_bytes());
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize()[..8]);
    u64::from_le_bytes(first)
}

pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Greedy or beam decoding as `options` asks, within the manifest's tokens
/// and maximum length.
fn decode_options(
    manifest: &Manifest,
    options: &ReporterOptions,
) -> Result<DecodeOptions, ReporterError> {
    let strategy = match options.beam {
        0 => {
            return Err(ReporterError::Options(
                "beam width must be at least 1".into(),
            ))
        }
        1 => Strategy::Greedy,
        w if w <= decode::MAX_BEAM => Strategy::Beam { width: w },
        w => {
            return Err(ReporterError::Options(format!(
                "beam width {w} is above the supported {}",
                decode::MAX_BEAM
            )))
        }
    };
    Ok(DecodeOptions {
        no_repeat_ngram: options.no_repeat_ngram,
        // Padding and unknown words carry no meaning in a report.
        suppress: vec![Vocab::PAD, Vocab::UNK],
        ..DecodeOptions::new(
            manifest.vocab.bos_id,
            manifest.vocab.eos_id,
            manifest.max_len,
        )
    }
    .with_strategy(strategy))
}

/// Per finding: the raw-score threshold (the manifest's, or the one
/// `options` sets on the shown probability, mapped back through the
/// calibration), the score from which it is stated without hedging, and the
/// calibration.
struct FindingRules {
    thresholds: [f32; Observation::COUNT],
    definite: [Option<f32>; Observation::COUNT],
    calibration: [Option<Calibration>; Observation::COUNT],
}

fn finding_rules(manifest: &Manifest, options: &ReporterOptions) -> FindingRules {
    let mut thresholds = [DEFAULT_THRESHOLD; Observation::COUNT];
    let mut definite = [None; Observation::COUNT];
    let mut calibration: [Option<Calibration>; Observation::COUNT] = Default::default();
    for t in &manifest.observations {
        thresholds[t.observation.index()] = t.threshold;
        definite[t.observation.index()] = t.definite;
        calibration[t.observation.index()] = t.calibration.clone();
    }
    for (&o, &shown) in &options.thresholds {
        thresholds[o.index()] = match &calibration[o.index()] {
            // The smallest score whose probability reaches the threshold.
            Some(c) => c.inverse(shown).unwrap_or(f32::INFINITY),
            None => shown,
        };
    }
    FindingRules {
        thresholds,
        definite,
        calibration,
    }
}
