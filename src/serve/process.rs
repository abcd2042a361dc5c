//! One pending instance, processed in isolation: decoded, analysed, its report
//! written and shown.
//!
//! Nothing one film does may stop the unit. A panic anywhere in decoding, the
//! model or the writers is caught and the film refused with the panic's message.
//! What cannot be caught (a C decoder's crash, running out of memory, a hang that
//! the watchdog ends) is counted instead: an attempt record is written to the
//! store before processing starts and removed when it returns, so a film whose
//! attempts keep being cut short is refused after `max_attempts` of them rather
//! than taken first, and crashed on, after every restart.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use thiserror::Error;

use super::{Analyse, AnalyseError, Outcome, Server};
use crate::input::{self, InputError};
use crate::screen::Screen;

/// Why a pending instance is refused for good (the reason is recorded in the
/// store's `refused/`, and the instance is not retried).
#[derive(Debug, Error)]
pub enum RefuseReason {
    /// Not decodable, or not a chest film.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Processing it panicked (a bug that this film triggers).
    #[error("{input}: processing panicked: {message}")]
    Panicked { input: String, message: String },
    /// Processing it started this many times and never finished: the unit
    /// crashed, was killed or hung each time.
    #[error(
        "{input}: refused after {attempts} attempts that never finished \
         (the unit crashed, was killed or hung while processing it)"
    )]
    Unfinished { input: String, attempts: u32 },
}

impl RefuseReason {
    /// Stable machine-readable code (the input error's code for bad input).
    pub fn code(&self) -> &'static str {
        match self {
            RefuseReason::Input(e) => e.code(),
            RefuseReason::Panicked { .. } => "panicked",
            RefuseReason::Unfinished { .. } => "unfinished-attempts",
        }
    }
}

impl<A: Analyse> Server<A> {
    /// Process the instance `key` kept at `path`, counting the attempt in the
    /// store around it and catching any panic.
    pub(super) fn attempt(&mut self, key: &str, path: &Path) -> Outcome {
        let input = path.display().to_string();
        let earlier = match self.store.unfinished_attempts(key) {
            Ok(n) => n,
            Err(e) => return Outcome::Failed(format!("{input}: {e}")),
        };
        if earlier >= self.max_attempts {
            let reason = RefuseReason::Unfinished {
                input,
                attempts: earlier,
            };
            self.show(Screen::error(&reason.to_string(), self.status()));
            return Outcome::Refused(reason);
        }
        // Without the record a crash on this film could not be counted, so
        // nothing is attempted until it can be written.
        if let Err(e) = self.store.start_attempt(key) {
            return Outcome::Failed(format!("{input}: cannot record the attempt: {e}"));
        }
        let outcome = match panic::catch_unwind(AssertUnwindSafe(|| self.process(key, path))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                let reason = RefuseReason::Panicked {
                    input,
                    message: panic_message(payload.as_ref()),
                };
                self.show(Screen::error(&reason.to_string(), self.status()));
                Outcome::Refused(reason)
            }
        };
        if let Err(e) = self.store.finish_attempt(key) {
            // The outcome stands; the stale record only costs an attempt
            // should the instance ever be processed again.
            tracing::warn!(key, error = %e, "cannot remove the attempt record");
        }
        outcome
    }

    fn process(&mut self, key: &str, path: &Path) -> Outcome {
        let origin = path.display().to_string();
        let started = std::time::Instant::now();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(source) => {
                return Outcome::Refused(
                    InputError::Io {
                        input: origin,
                        source,
                    }
                    .into(),
                )
            }
        };
        let mut radiograph = match input::decode_bytes(&bytes, &origin, &self.validate) {
            Ok(r) => r,
            Err(e) => {
                let screen = match &e {
                    InputError::NotChestFilm { .. } => Screen::not_chest_film(
                        &input::dicom::header_info(&bytes, &origin).unwrap_or_default(),
                        None,
                        self.status().with_error(&e.to_string()),
                    ),
                    _ => Screen::error(&e.to_string(), self.status()),
                };
                self.show(screen);
                return Outcome::Refused(e.into());
            }
        };
        radiograph.info.instance_key = key.to_string();
        // Reading and decoding the film, timed here where it happens (the
        // reporter times the stages after it).
        let decode_image_ms = started.elapsed().as_secs_f64() * 1e3;
        self.show(Screen::processing(
            &radiograph.info,
            Some(&radiograph.image),
            self.status(),
        ));
        let mut report = match self.analyser.analyse(&radiograph) {
            Ok(r) => r,
            Err(AnalyseError::Refused(e)) => {
                self.show(Screen::not_chest_film(
                    &radiograph.info,
                    Some(&radiograph.image),
                    self.status().with_error(&e.to_string()),
                ));
                return Outcome::Refused(e.into());
            }
            Err(AnalyseError::Failed(e)) => {
                self.show(Screen::error(&e, self.status()));
                return Outcome::Failed(format!("{origin}: model: {e}"));
            }
        };
        report.timings.decode_image_ms = decode_image_ms;
        report.timings.total_ms += decode_image_ms;
        let dataset = input::dicom::is_dicom(&bytes)
            .then(|| {
                dicom_object::OpenFileOptions::new()
                    .from_reader(&bytes[128..])
                    .ok()
                    .map(|f| f.into_inner())
            })
            .flatten();
        let screen = Screen::result(&report, Some(&radiograph.image), self.status());
        let outputs = match self.outputs(key, &report, dataset.as_ref(), &screen) {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(format!("{origin}: {e}")),
        };
        if let Err(e) = self.store.complete(key, &report, &outputs) {
            return Outcome::Failed(format!("{origin}: {e}"));
        }
        self.show(screen);
        Outcome::Reported(Box::new(report))
    }

    /// The report's files besides `report.json`, plus the screen capture when
    /// a destination wants it; a study with an SR is queued for forwarding
    /// here, before the report is completed (see `crate::forward`).
    fn outputs(
        &self,
        key: &str,
        report: &crate::Report,
        dataset: Option<&dicom_object::InMemDicomObject>,
        screen: &Screen,
    ) -> Result<Vec<crate::output::Output>, String> {
        let mut outputs =
            crate::output::render_extra(report, dataset).map_err(|e| e.to_string())?;
        let Some(forwarder) = &self.forwarder else {
            return Ok(outputs);
        };
        if !outputs.iter().any(|o| o.name == crate::output::SR_DCM) {
            return Ok(outputs);
        }
        if forwarder.wants_screens() {
            let canvas = crate::sink::render(screen, crate::sink::Layout::Colour);
            let bytes = crate::output::sc::to_bytes(report, dataset, &canvas.to_rgb_image())
                .map_err(|e| e.to_string())?;
            outputs.push(crate::output::Output {
                name: crate::output::SC_DCM.to_string(),
                bytes,
            });
        }
        self.store
            .enqueue(key, forwarder.names())
            .map_err(|e| format!("cannot queue for forwarding: {e}"))?;
        Ok(outputs)
    }
}

/// The text a panic was raised with (`panic!` passes a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}
