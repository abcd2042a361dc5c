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

/// Run the ignored test `test` of this test binary as a child process with
/// `envs`, collect what follows `prefix` on each stdout line it prints, and
/// kill it (SIGKILL) once `kill_after` such lines have arrived: a crash at some
/// point inside whatever it does next. Returns the collected values.
pub fn kill_child_after(
    test: &str,
    envs: &[(&str, String)],
    prefix: &str,
    kill_after: usize,
) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let mut child = own_binary(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in stdout.lines() {
        if let Some(value) = line.unwrap().strip_prefix(prefix) {
            seen.push(value.to_string());
            if seen.len() == kill_after {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    seen
}
