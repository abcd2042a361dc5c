//! `bench-model`'s plain-text table.

use std::path::Path;

use super::{Args, Latency, Results, Spread};

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn cell(s: Option<&Spread>, decimals: usize) -> String {
    s.map_or("n/a".into(), |s| s.show(decimals))
}

pub(super) fn table(r: &Results, dir: &Path, args: &Args) -> String {
    let s = &r.sizes;
    let mut out = format!(
        "model {} ({}) on {}\n{}\n",
        r.model_id,
        dir.display(),
        r.arch,
        super::super::build_note()
    );
    out += &format!(
        "size: fp32 NNEF {}, int8 NNEF {}{}; ONNX {}; whole folder {}\n",
        mb(s.fp32_bytes),
        s.int8_bytes.map_or("n/a".into(), mb),
        s.int8_bytes.map_or(String::new(), |i| format!(
            " ({:.2}× fp32)",
            i as f64 / s.fp32_bytes as f64
        )),
        mb(s.onnx_bytes),
        mb(s.folder_bytes)
    );
    let l = &r.load;
    out += "figures: median (p25–p75) in ms\n";
    let c = &l.cold_start;
    out += &format!(
        "cold start ({} fresh processes: verify hashes, load and plan this CPU's artefact): {}, \
         range {:.1}–{:.1}\n  files and model {} (encoder {}, decoder {}, other files {}, at once); rest {}\n\
         open again in one process ({} times): {}\n",
        c.total_ms.n,
        c.total_ms.show(1),
        c.total_ms.min,
        c.total_ms.max,
        c.files_and_model_ms.show(1),
        c.encoder_ms.show(1),
        c.decoder_ms.show(1),
        c.other_files_ms.show(1),
        c.rest_ms.show(1),
        l.reopen_ms.n,
        l.reopen_ms.show(1)
    );
    out += &format!(
        "load (parse + optimise + plan), {} loads: encoder ONNX {} / NNEF {}; decoder ONNX {} / NNEF {}; int8 encoder NNEF {}\n",
        l.nnef_encoder_ms.n,
        l.onnx_encoder_ms.show(1),
        l.nnef_encoder_ms.show(1),
        l.onnx_decoder_ms.show(1),
        l.nnef_decoder_ms.show(1),
        cell(l.nnef_int8_encoder_ms.as_ref(), 1),
    );
    out += &format!(
        "latency: {} rounds, the runtimes taking turns; per round {} encoder runs, {} decoder steps, {} studies\n",
        r.rounds, args.runs, args.steps, args.studies
    );
    for t in &r.latency {
        out += &latency(t);
    }
    out
}

fn latency(t: &Latency) -> String {
    let row = |name: &str, e: Option<&Spread>, s: Option<&Spread>, st: Option<&Spread>| {
        format!(
            "  {name:<26}{:<24}{:<24}{}\n",
            cell(e, 3),
            cell(s, 3),
            cell(st, 2)
        )
    };
    let mut out = format!(
        "{} thread(s); a study = encoder + {} decoder steps\n  {:<26}{:<24}{:<24}study\n",
        t.threads, t.study_steps, "", "encoder", "decoder step"
    );
    let (f, o) = (&t.tract_fp32, &t.tract_onnx);
    out += &row(
        "tract fp32 NNEF",
        Some(&f.encoder_ms),
        Some(&f.step_ms),
        Some(&f.study_ms),
    );
    out += &row(
        "tract fp32 ONNX",
        Some(&o.encoder_ms),
        Some(&o.step_ms),
        Some(&o.study_ms),
    );
    if let Some(i) = &t.tract_int8_encoder_ms {
        out += &row("tract int8 NNEF", Some(i), None, None);
    }
    match &t.onnxruntime {
        Some(ort) => {
            out += &row(
                &format!("onnxruntime {} fp32", ort.version),
                Some(&ort.encoder_ms),
                Some(&ort.step_ms),
                Some(&ort.study_ms),
            );
            if let Some(i) = &ort.encoder_int8_ms {
                out += &row("onnxruntime int8", Some(i), None, None);
            }
        }
        None => {
            out += &format!(
                "  onnxruntime: not measured: {}\n",
                t.onnxruntime_error.as_deref().unwrap_or("?")
            )
        }
    }
    let ratio = |r: &Option<super::Ratio>| r.map_or("n/a".into(), |r| r.show());
    let q = &t.ratios;
    if t.onnxruntime.is_some() {
        let rounds: Vec<String> = q
            .study_per_round
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect();
        out += &format!(
            "  tract fp32 NNEF / onnxruntime: study {} (per round {}); encoder {}; decoder step {}\n",
            ratio(&q.study),
            rounds.join(", "),
            ratio(&q.encoder),
            ratio(&q.step)
        );
    }
    out += &format!(
        "  tract fp32 NNEF / tract ONNX route: study {}\n",
        ratio(&q.nnef_over_onnx_study)
    );
    out
}
