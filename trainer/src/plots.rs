//! PNG plots of a run's learning curves (plotters, bitmap backend, no fonts
//! needed beyond the built-in ones).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::train::EpochRecord;

/// Write `loss.png` and `validation.png` into `out`.
pub fn write(history: &[EpochRecord], out: &Path) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    register_font()?;
    let loss: Vec<(f64, f64)> = history
        .iter()
        .map(|r| (r.epoch as f64, r.train_loss))
        .collect();
    let text: Vec<(f64, f64)> = history
        .iter()
        .map(|r| (r.epoch as f64, r.text_loss))
        .collect();
    plot(
        &out.join("loss.png"),
        &[("train loss", &loss), ("text loss", &text)],
    )?;
    let auroc: Vec<(f64, f64)> = history
        .iter()
        .map(|r| (r.epoch as f64, r.val.mean_auroc))
        .collect();
    let f1: Vec<(f64, f64)> = history
        .iter()
        .map(|r| (r.epoch as f64, r.val.clinical_vs_labels.micro.f1))
        .collect();
    let bleu: Vec<(f64, f64)> = history
        .iter()
        .map(|r| (r.epoch as f64, r.val.text.bleu[3]))
        .collect();
    plot(
        &out.join("validation.png"),
        &[
            ("mean AUROC", &auroc),
            ("clinical micro-F1", &f1),
            ("BLEU-4", &bleu),
        ],
    )
}

/// plotters draws text with ab_glyph from a registered font; the DejaVu fonts
/// ship with Debian (`fonts-dejavu-core`).
fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
        let bytes = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e}"))?;
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .map_err(|_| format!("{FONT}: not a usable font"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn plot(path: &Path, series: &[(&str, &[(f64, f64)])]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    let root = BitMapBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let xmax = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymax = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0.0..xmax + 0.5, 0.0..ymax.max(1e-3))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, s)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// `cxr-train plot-reliability`: the reliability diagram of a `cxr-edge
/// findings-eval` output (the test half, pooled over the nine findings):
/// observed rate against mean calibrated probability per bin, with the diagonal.
#[derive(clap::Args)]
pub struct ReliabilityArgs {
    /// JSON written by `cxr-edge findings-eval --eval-out`.
    pub eval: std::path::PathBuf,
    /// PNG to write.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Which half: `test` or `validation`.
    #[arg(long, default_value = "test")]
    pub group: String,
}

pub fn reliability(a: ReliabilityArgs) -> Result<()> {
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&a.eval).map_err(|e| anyhow!("{}: {e}", a.eval.display()))?,
    )?;
    let group = doc["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == a.group.as_str()))
        .ok_or_else(|| anyhow!("{}: no `{}` group", a.eval.display(), a.group))?;
    let points: Vec<(f64, f64, u64)> = group["pooled_reliability"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            Some((
                b["mean_probability"].as_f64()?,
                b["observed_rate"].as_f64()?,
                b["films"].as_u64()?,
            ))
        })
        .collect();
    register_font()?;
    let path = &a.out;
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    let root = BitMapBackend::new(path, (480, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "{} ({} films × 9 findings): calibrated probability",
        a.group,
        group["films"].as_u64().unwrap_or(0)
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("mean predicted probability in bin")
        .y_desc("observed rate")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))
        .map_err(|e| err(&e))?;
    let blue = Palette99::pick(0).to_rgba();
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.1)),
            blue.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(points.iter().map(|p| {
            let r = 3.0 + (p.2 as f64).sqrt() / 3.0;
            Circle::new((p.0, p.1), r as i32, blue.filled())
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
