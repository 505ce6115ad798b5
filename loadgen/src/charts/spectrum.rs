//! Latency by percentile, several distributions overlaid: the x axis is in "nines"
//! (50%, 90%, 99%, 99.9%, …, evenly spaced), the y axis logarithmic. The plot
//! HdrHistogram made standard; it shows the whole tail, not a few percentiles.

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{color, draw_legend, frame, log_key_points, ms_label, plot_error, Chart, FONT};
use crate::report::{BenchReport, RunReport};
use crate::stats::decode;

/// Quantile steps per halving of the distance to 100%.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// A percentile spectrum of several named distributions.
pub struct Spectrum {
    pub title: String,
    stem: String,
    series: Vec<(String, Histogram<u64>)>,
    footer: String,
}

impl Spectrum {
    /// The loaded-phase distribution of `stream` for every variant of a run.
    pub fn of_run(report: &RunReport, stream: &str, footer: &str) -> anyhow::Result<Spectrum> {
        let title = format!(
            "{} latency under load by percentile (corrected)",
            capitalised(stream)
        );
        Spectrum::of_phase(report, stream, "loaded", title, footer)
    }

    /// The distribution of `stream` in `phase` for every variant that ran it.
    pub fn of_phase(
        report: &RunReport,
        stream: &str,
        phase: &str,
        title: String,
        footer: &str,
    ) -> anyhow::Result<Spectrum> {
        let mut series = Vec::new();
        for v in &report.variants {
            let found = v.phase(phase).and_then(|p| p.stream(stream));
            if let Some(s) = found {
                series.push((v.name.clone(), decode(&s.histograms.corrected)?));
            }
        }
        Ok(Spectrum {
            title,
            stem: format!("spectrum-{stream}"),
            series,
            footer: footer.to_owned(),
        })
    }

    /// Whether it has no distribution to draw.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Every stream of a `bench` run.
    pub fn of_bench(report: &BenchReport, footer: &str) -> anyhow::Result<Spectrum> {
        let series = report
            .streams
            .iter()
            .map(|s| Ok((s.name.clone(), decode(&s.histograms.corrected)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Spectrum {
            title: "Latency by percentile (corrected)".into(),
            stem: "spectrum".into(),
            series,
            footer: footer.to_owned(),
        })
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// "Nines" of quantile `q`: 0 at 0%, 1 at 90%, 2 at 99%, 3 at 99.9%.
fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The label of a position on the nines axis.
fn percent_label(x: f64) -> String {
    let percent = (1.0 - 10f64.powf(-x)) * 100.0;
    let s = format!("{percent:.4}");
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}

/// (nines, milliseconds) points of `h`, ending at its max where the resolution of
/// its count runs out.
fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let end = (h.len() as f64).log10().clamp(1.0, 6.0);
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| {
            (
                nines(v.quantile_iterated_to()),
                v.value_iterated_to() as f64 / 1e6,
            )
        })
        .filter(|(x, _)| x.is_finite() && *x < end)
        .collect();
    points.push((end, h.max() as f64 / 1e6));
    points
}

impl Chart for Spectrum {
    fn file_stem(&self) -> String {
        self.stem.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = frame(root, &self.footer)?;
        let all: Vec<Vec<(f64, f64)>> = self.series.iter().map(|(_, h)| points(h)).collect();
        let flat = all.iter().flatten();
        let x_max = flat.clone().map(|p| p.0).fold(2.0, f64::max).ceil();
        let y_min = flat
            .clone()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min)
            .max(0.001);
        let y_max = flat.map(|p| p.1).fold(0.0, f64::max).max(y_min * 10.0) * 1.5;
        let y_min = if y_min.is_finite() {
            y_min / 1.5
        } else {
            0.001
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(&self.title, (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(
                0f64..x_max,
                (y_min..y_max)
                    .log_scale()
                    .with_key_points(log_key_points(y_min, y_max)),
            )
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            // One label per nine: 0%, 90%, 99%, 99.9%...
            .x_labels(x_max as usize + 1)
            .y_desc("latency (log scale)")
            .x_label_formatter(&|x| percent_label(*x))
            .y_label_formatter(&|y| ms_label(*y))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(plot_error)?;
        for (i, ((name, _), points)) in self.series.iter().zip(all).enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(plot_error)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_labels() {
        assert_eq!(percent_label(0.0), "0%");
        assert_eq!(percent_label(1.0), "90%");
        assert_eq!(percent_label(3.0), "99.9%");
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
    }
}
