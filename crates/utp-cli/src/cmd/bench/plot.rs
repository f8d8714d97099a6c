//! `--plot FILE.svg`: round-trip p50 and streaming throughput against message
//! size, one line per mechanism and implementation (plotters, SVG backend).

use super::link::Fallible;
use super::results::Row;
use super::sample::Sample;
use super::spec::{Impl, Mode};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Writes both charts, one above the other, to `path`.
pub fn write(path: &Path, rows: &[Row]) -> Fallible<()> {
    let root = SVGBackend::new(path, (1200, 1400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(700);
    chart(&top, rows, Mode::Rtt, "Round trip p50 (ns, log)", |s| {
        s.p50_ns.map(|v| v as f64)
    })?;
    chart(
        &bottom,
        rows,
        Mode::Stream,
        "Streaming throughput (bytes/s, log)",
        |s| s.bytes_per_s,
    )?;
    root.present()?;
    Ok(())
}

type Series = BTreeMap<String, (Impl, Vec<(f64, f64)>)>;

fn series(rows: &[Row], mode: Mode, value: &dyn Fn(&Sample) -> Option<f64>) -> Series {
    let mut series = Series::new();
    for row in rows.iter().filter(|r| r.mode == mode && r.entry.is_some()) {
        if let Some(v) = value(&row.sample).filter(|v| *v > 0.0) {
            let label = format!(
                "{} {} {}",
                row.mechanism,
                row.implementation.label(),
                row.wait.map_or("", |w| w.label())
            );
            series
                .entry(label)
                .or_insert_with(|| (row.implementation, Vec::new()))
                .1
                .push((row.size as f64, v));
        }
    }
    series
}

fn chart(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    rows: &[Row],
    mode: Mode,
    title: &str,
    value: impl Fn(&Sample) -> Option<f64>,
) -> Fallible<()> {
    let series = series(rows, mode, &value);
    let points = series.values().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if series.is_empty() {
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 2.0..y1 * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("message payload (bytes)")
        .x_label_formatter(&|x| super::format::size(x.round() as usize))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .draw()?;
    for (i, (label, (implementation, points))) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let width = if *implementation == Impl::Raw { 1 } else { 3 };
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(width),
            ))?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
