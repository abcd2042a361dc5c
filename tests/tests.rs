//! One integration-test binary; each topic is a module.

mod util;
mod corpus;
mod text;
mod bundle;
mod labeller;
mod decode;
mod input;
mod reporter;
mod metrics;
mod scp;
mod screen;
mod output;
mod store;
mod cli;
mod serve;
