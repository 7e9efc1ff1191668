//! `--plot FILE.svg`: warm aggregate throughput and p95 time to first byte
//! against concurrency, and (with `--sweep`) time to first byte against
//! the puzzle's work factor, one point per sweep point.

use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;

type Points = Vec<(f64, f64)>;

fn series(r: &Value) -> (Points, Points) {
    let mut mibps = Vec::new();
    let mut ttfb = Vec::new();
    for l in r["levels"].as_array().into_iter().flatten() {
        let c = l["clients"].as_f64().unwrap_or(0.0);
        mibps.push((c, l["warm"]["aggregateMiBps"].as_f64().unwrap_or(0.0)));
        ttfb.push((c, l["warm"]["ttfbMs"]["p95"].as_f64().unwrap_or(0.0)));
    }
    (mibps, ttfb)
}

fn top(points: &[(f64, f64)], f: impl Fn(&(f64, f64)) -> f64) -> f64 {
    (points.iter().map(f).fold(0.0, f64::max) * 1.15).max(1.0)
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    labels: &[String],
    line: bool,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..top(points, |p| p.0), 0f64..top(points, |p| p.1))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if line {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (p, l) in points.iter().zip(labels) {
        chart
            .draw_series(std::iter::once(Text::new(
                l.clone(),
                *p,
                ("sans-serif", 11).into_font(),
            )))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// Draws the result object `r` into `path`.
pub fn draw(path: &Path, r: &Value) -> anyhow::Result<()> {
    let (mibps, ttfb) = series(r);
    let sweep: Vec<(f64, f64, String)> = r["sweep"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["workFactor"].as_f64().unwrap_or(0.0),
                p["ttfbMs"].as_f64().unwrap_or(0.0),
                p["label"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let panels = if sweep.is_empty() { 2 } else { 3 };
    let root = SVGBackend::new(path, (420 * panels as u32, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let areas = root.split_evenly((1, panels));
    let none: Vec<String> = Vec::new();
    if let [a, b, rest @ ..] = areas.as_slice() {
        panel(
            a,
            "Warm throughput",
            "concurrent clients",
            "MiB/s",
            &mibps,
            &none,
            true,
        )?;
        panel(
            b,
            "Time to first byte, p95",
            "concurrent clients",
            "ms",
            &ttfb,
            &none,
            true,
        )?;
        if let Some(c) = rest.first() {
            let points: Vec<(f64, f64)> = sweep.iter().map(|s| (s.0, s.1)).collect();
            let labels: Vec<String> = sweep.iter().map(|s| s.2.clone()).collect();
            panel(
                c,
                "Sweep: first byte vs work factor",
                "work factor (compressions)",
                "ttfb p50, ms",
                &points,
                &labels,
                false,
            )?;
        }
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plot_is_an_svg_with_every_panel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let r = json!({
            "levels": [
                {"clients": 1, "warm": {"aggregateMiBps": 120.0, "ttfbMs": {"p95": 9.0}}},
                {"clients": 50, "warm": {"aggregateMiBps": 150.0, "ttfbMs": {"p95": 90.0}}},
            ],
            "sweep": [
                {"label": "defaults", "workFactor": 57344, "ttfbMs": 9.5},
                {"label": "R=8", "workFactor": 253952, "ttfbMs": 20.0},
            ],
        });
        draw(&path, &r).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        for text in [
            "Warm throughput",
            "Time to first byte, p95",
            "Sweep: first byte vs work factor",
            "R=8",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.contains("<circle"));
    }
}
