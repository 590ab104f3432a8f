//! The demos' plots: line charts drawn with plotters into SVG files, one or several panels
//! to a file. Every demo that plots uses this, so their figures look alike.
#![allow(dead_code)] // each demo uses what it needs

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

/// One line of a chart.
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) points: Vec<(f64, f64)>,
}

/// One chart: its lines, optional vertical marks (an x and a label), an optional dashed
/// horizontal guide, and its axes.
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) lines: Vec<Line>,
    pub(crate) marks: Vec<(f64, String)>,
    pub(crate) guide: Option<(f64, String)>,
    /// The y axis' top; the largest value (plus a margin) when `None`.
    pub(crate) y_max: Option<f64>,
}

impl Chart {
    pub(crate) fn new(title: impl Into<String>, x_label: &str, y_label: &str) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.to_owned(),
            y_label: y_label.to_owned(),
            lines: Vec::new(),
            marks: Vec::new(),
            guide: None,
            y_max: None,
        }
    }

    pub(crate) fn line(mut self, label: impl Into<String>, points: Vec<(f64, f64)>) -> Chart {
        self.lines.push(Line {
            label: label.into(),
            points,
        });
        self
    }

    fn x_range(&self) -> (f64, f64) {
        let xs = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        if lo > hi {
            (0.0, 1.0)
        } else {
            (lo, hi.max(lo + 1e-9))
        }
    }

    fn y_top(&self) -> f64 {
        self.y_max.unwrap_or_else(|| {
            let top = self
                .lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.1))
                .fold(0.0, f64::max);
            (top * 1.05).max(1e-9)
        })
    }
}

/// The colours lines take, in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(192, 57, 43),
    RGBColor(36, 113, 163),
    RGBColor(39, 174, 96),
    RGBColor(230, 126, 34),
    RGBColor(142, 68, 173),
    RGBColor(22, 160, 133),
    RGBColor(127, 140, 141),
    RGBColor(212, 172, 13),
];

/// Writes `charts` to `path` as one SVG, in a grid of `columns` columns, each panel
/// `panel` pixels (width, height).
pub(crate) fn svg(
    path: &Path,
    charts: &[Chart],
    columns: usize,
    panel: (u32, u32),
) -> Result<(), Box<dyn Error>> {
    let columns = columns.max(1);
    let rows = charts.len().div_ceil(columns).max(1);
    let size = (panel.0 * columns as u32, panel.1 * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, chart) in root.split_evenly((rows, columns)).iter().zip(charts) {
        draw(area, chart)?;
    }
    root.present()?;
    Ok(())
}

fn draw(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    chart: &Chart,
) -> Result<(), Box<dyn Error>> {
    let (x0, x1) = chart.x_range();
    let y1 = chart.y_top();
    let mut c = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(x0..x1, 0.0..y1)?;
    // Round numbers without a `.0`.
    let number = |v: &f64| format!("{}", (v * 1000.0).round() / 1000.0);
    c.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&number)
        .y_label_formatter(&number)
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    for (i, line) in chart.lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        c.draw_series(LineSeries::new(
            line.points.iter().copied(),
            colour.stroke_width(2),
        ))?
        .label(line.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    let grey = RGBColor(120, 120, 120);
    for (i, (x, label)) in chart.marks.iter().enumerate() {
        c.draw_series(DashedLineSeries::new(
            vec![(*x, 0.0), (*x, y1)],
            4,
            3,
            grey.into(),
        ))?;
        // Labels one under the other, so that marks close together stay readable.
        let y = y1 * (0.97 - 0.05 * i as f64);
        c.draw_series(std::iter::once(Text::new(
            format!(" {label}"),
            (*x, y),
            ("sans-serif", 11).into_font().color(&grey),
        )))?;
    }
    if let Some((y, label)) = &chart.guide {
        c.draw_series(DashedLineSeries::new(
            vec![(x0, *y), (x1, *y)],
            4,
            3,
            grey.into(),
        ))?;
        // Its label at the right, clear of the legend at the left.
        c.draw_series(std::iter::once(Text::new(
            label.clone(),
            (x0 + 0.93 * (x1 - x0), *y),
            ("sans-serif", 11).into_font().color(&grey),
        )))?;
    }
    if chart.lines.iter().any(|l| !l.label.is_empty()) {
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    Ok(())
}
