//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Path of a committed test fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A command running one of this project's own binaries. Under a cross test
/// runner (`scripts/setup-aarch64.sh` sets `CXR_TEST_RUNNER=qemu-aarch64 …`, as
/// binfmt_misc is not available) the binary is started through it, since the
/// kernel cannot exec a foreign binary by itself.
pub fn own_binary(path: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    match std::env::var("CXR_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut parts = runner.split_whitespace();
            let mut cmd = std::process::Command::new(parts.next().unwrap());
            cmd.args(parts).arg(path);
            cmd
        }
        _ => std::process::Command::new(path),
    }
}
