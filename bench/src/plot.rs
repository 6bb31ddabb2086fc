//! The latency plot of `docs/benchmarks.md`: p50, p99 and p99.9 of every case of one
//! workload at its fixed rate, as grouped bars (PNG).

use std::path::Path;

use plotters::prelude::*;

use crate::gateway::CaseResult;
use crate::load::FIXED_RATE;

/// A TrueType font from Debian's fonts-dejavu-core (installed by `make bench`).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        std::fs::read(FONT).ok().is_some_and(|bytes| {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        })
    });
    anyhow::ensure!(
        ok,
        "cannot load the font {FONT} (Debian package fonts-dejavu-core)"
    );
    Ok(())
}

/// Draws the share of requests the new backend served over time (seconds, 0–1), as
/// Prometheus recorded it during a cutover.
pub fn share(path: &Path, points: &[(f64, f64)]) -> anyhow::Result<()> {
    register_font()?;
    anyhow::ensure!(!points.is_empty(), "no points to draw");
    let start = points[0].0;
    let end = points.last().map_or(start + 1.0, |p| p.0);
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "auth-validation: share of requests served by the new backend (Prometheus)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..(end - start).max(1.0), 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_desc("seconds: legacy → shadow → canary 50 % → primary → decommissioned → rollback")
        .y_desc("share served by new")
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().map(|(t, v)| (t - start, *v)),
        BLUE.stroke_width(3),
    ))?;
    root.present()?;
    Ok(())
}

/// Draws `workload`'s fixed-rate latencies to `path`.
pub fn latency(path: &Path, workload: &str, results: &[CaseResult]) -> anyhow::Result<()> {
    register_font()?;
    let cases: Vec<&CaseResult> = results
        .iter()
        .filter(|r| r.workload == workload && r.mode == FIXED_RATE)
        .collect();
    anyhow::ensure!(!cases.is_empty(), "no fixed-rate results for {workload}");
    let max = cases
        .iter()
        .map(|c| c.measured.p999_ms)
        .fold(0.0f64, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, (1200, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{workload}: latency at a fixed rate (ms)"),
            ("sans-serif", 26),
        )
        .margin(20)
        .x_label_area_size(120)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..cases.len() as f64, 0.0..max)?;
    let labels: Vec<String> = cases.iter().map(|c| c.target.label()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(cases.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let index = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && index < labels.len() {
                labels[index].replace("gateway, ", "gw ")
            } else {
                String::new()
            }
        })
        .x_label_style(("sans-serif", 13))
        .y_desc("milliseconds")
        .y_label_style(("sans-serif", 15))
        .draw()?;
    let series = [
        ("p50", BLUE.mix(0.7)),
        ("p99", RED.mix(0.7)),
        ("p99.9", BLACK.mix(0.5)),
    ];
    for (k, (name, color)) in series.into_iter().enumerate() {
        let bars = cases.iter().enumerate().map(|(i, c)| {
            let value = match k {
                0 => c.measured.p50_ms,
                1 => c.measured.p99_ms,
                _ => c.measured.p999_ms,
            };
            let x0 = i as f64 + 0.15 + k as f64 * 0.23;
            Rectangle::new([(x0, 0.0), (x0 + 0.21, value)], color.filled())
        });
        chart
            .draw_series(bars)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}
