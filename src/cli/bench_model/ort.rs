//! The onnxruntime side of `bench-model`: `scripts/ort-bench.py` in a child
//! process (onnxruntime's Python package is a dev tool, not a device
//! dependency), its JSON read back with every timed run.

use std::process::Command;

use super::super::spread::Spread;

/// What one run of the script measured, or why it could not.
pub type OrtRun = Result<serde_json::Value, String>;

/// Run the script on `bundle` at `threads`, timing `runs` encoder runs, `steps`
/// decoder steps and `studies` whole studies feeding `tokens`.
pub fn run(
    python: &str,
    bundle: &std::path::Path,
    threads: usize,
    (runs, steps, studies): (usize, usize, usize),
    tokens: &[u32],
) -> OrtRun {
    let script = super::super::candidates("scripts")
        .into_iter()
        .map(|d| d.join("ort-bench.py"))
        .find(|p| p.is_file())
        .ok_or("scripts/ort-bench.py not found")?;
    let tokens: Vec<String> = tokens.iter().map(u32::to_string).collect();
    let o = Command::new(python)
        .arg(&script)
        .arg(bundle)
        .args(["--threads", &threads.to_string()])
        .args(["--runs", &runs.to_string()])
        .args(["--steps", &steps.to_string()])
        .args(["--studies", &studies.to_string()])
        .args(["--tokens", &tokens.join(",")])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| format!("unreadable output of {}: {e}", script.display()))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(e.to_string());
    }
    // Under qemu-user the interpreter is the host's: not the same CPU.
    match v.get("machine").and_then(|m| m.as_str()) {
        Some(m) if m != std::env::consts::ARCH => Err(format!(
            "onnxruntime ran on {m}, this benchmark on {}: not comparable",
            std::env::consts::ARCH
        )),
        _ => Ok(v),
    }
}

/// The timed runs the script reported under `key` (`encoder_ms`, …).
pub fn samples(v: &serde_json::Value, key: &str) -> Vec<f64> {
    v.get(format!("{key}_samples"))
        .and_then(|s| s.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default()
}

/// Every round's samples of `key` pooled into one spread.
pub fn pooled(rounds: &[serde_json::Value], key: &str) -> Spread {
    Spread::of(rounds.iter().flat_map(|v| samples(v, key)).collect())
}
