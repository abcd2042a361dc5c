//! cxr-edge: offline chest X-ray report generation for ARM boards.
//!
//! Data flows one way: a [`source`](crate::input) yields a decoded radiograph with
//! its DICOM identity; [`preprocess`] turns it into the model's input tensor with the
//! options from the bundle manifest; a [`runtime::Runtime`] (tract on the device, a
//! scripted fake in tests) runs the encoder and the single-step decoder, which
//! [`decode`] loops greedily or with beam search; the [`reporter::Reporter`] turns
//! the result into a [`report::Report`] that the output writers keep durably (JSON,
//! FHIR, DICOM SR) and the screen shows. The trainer shares the text, labeller,
//! metrics, preprocessing and model-config modules, so nothing is written twice.

pub mod model_config;
pub mod observation;
pub mod preprocess;
pub mod report;

pub use model_config::{DecoderKind, ModelConfig};
pub use observation::Observation;
pub use report::Report;
pub mod bundle;
pub mod calibration;
pub mod corpus;
pub mod decode;
pub mod export;
pub mod forward;
pub mod impression;
pub mod input;
pub mod labeller;
pub mod metrics;
pub mod nih;
pub mod output;
pub mod reporter;
pub mod retry;
pub mod runtime;
pub mod scp;
pub mod screen;
pub mod serve;
pub mod sink;
pub mod store;
pub mod systemd;
pub mod text;
pub mod view_check;
