//! One integration-test binary; each topic is a module.

mod bundle;
mod cli;
mod corpus;
mod decode;
mod forward;
mod input;
mod labeller;
mod metrics;
mod model_card;
mod nnef_parser;
mod output;
mod precision;
mod reporter;
mod retention;
mod scp;
mod scp_limits;
#[cfg(feature = "tls")]
mod scp_tls;
mod screen;
mod serve;
mod store;
mod text;
mod unattended;
mod util;
mod view_check;
