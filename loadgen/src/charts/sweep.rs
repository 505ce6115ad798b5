//! The load sweep as curves, one line per variant against the offered load (as a
//! multiple of what the cores can finish): the probe's p99 with its interval and
//! the objective as a horizontal line (the "hockey stick": where each strategy
//! breaks), and the heavy work done against the ideal (a diagonal up to 1.0).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    color, draw_legend, frame, log_key_points, log_range, ms_label, plot_error, Chart, FONT,
};
use crate::report::{RunReport, StepFigures};

/// What a sweep chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepFigure {
    /// Probe p99 (log scale) with its interval, and the objective.
    ProbeP99,
    /// Heavy work done per second, as a share of what the cores can finish.
    Goodput,
}

/// The sweep of every variant that has one.
pub struct SweepChart {
    figure: SweepFigure,
    /// Per variant: its steps that ran.
    series: Vec<(String, Vec<StepFigures>)>,
    /// Per variant, the ideal jobs per second (to make goodput a share).
    ideal_per_s: Vec<f64>,
    objective_ms: f64,
    max_load: f64,
    footer: String,
}

impl SweepChart {
    /// `figure` over the sweeps of `report`; `None` when no variant has a sweep of
    /// more than one step.
    pub fn of_run(report: &RunReport, figure: SweepFigure, footer: &str) -> Option<SweepChart> {
        if report.settings.loads.len() < 2 {
            return None;
        }
        let mut series = Vec::new();
        let mut ideal_per_s = Vec::new();
        for v in &report.variants {
            let (Some(sweep), Some(heavy)) = (&v.sweep, &v.heavy) else {
                continue;
            };
            let ran: Vec<StepFigures> = sweep
                .steps
                .iter()
                .filter(|s| s.probe.is_some())
                .cloned()
                .collect();
            series.push((v.name.clone(), ran));
            ideal_per_s.push(heavy.ideal_per_s);
        }
        if series.is_empty() {
            return None;
        }
        Some(SweepChart {
            figure,
            series,
            ideal_per_s,
            objective_ms: report.settings.objective_ms,
            max_load: report.settings.loads.iter().copied().fold(0.0, f64::max),
            footer: footer.to_owned(),
        })
    }

    pub fn title(&self) -> String {
        match self.figure {
            SweepFigure::ProbeP99 => "Probe p99 against offered heavy load".into(),
            SweepFigure::Goodput => "Heavy work done against offered heavy load".into(),
        }
    }
}

impl Chart for SweepChart {
    fn file_stem(&self) -> String {
        match self.figure {
            SweepFigure::ProbeP99 => "sweep-probe".into(),
            SweepFigure::Goodput => "sweep-goodput".into(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = frame(root, &self.footer)?;
        match self.figure {
            SweepFigure::ProbeP99 => self.draw_probe(&area),
            SweepFigure::Goodput => self.draw_goodput(&area),
        }
    }
}

impl SweepChart {
    fn x_range(&self) -> std::ops::Range<f64> {
        0.0..(self.max_load * 1.08).max(0.1)
    }

    fn draw_probe<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let values = self
            .series
            .iter()
            .flat_map(|(_, steps)| steps.iter().filter_map(|s| s.probe.as_ref()))
            .flat_map(|p| {
                [p.p99_us / 1e3]
                    .into_iter()
                    .chain(p.p99_ci.map(|ci| ci.high_us / 1e3))
            })
            .chain([self.objective_ms]);
        let (low, high) = log_range(values);
        let mut chart = ChartBuilder::on(area)
            .caption(self.title(), (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(
                self.x_range(),
                (low..high)
                    .log_scale()
                    .with_key_points(log_key_points(low, high)),
            )
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("offered heavy load (× what the cores can finish)")
            .y_desc("probe p99 (log scale), with its 95 % interval")
            .x_label_formatter(&|x| format!("{x:.2}×"))
            .y_label_formatter(&|y| ms_label(*y))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(plot_error)?;
        let objective = RGBColor(200, 0, 0);
        chart
            .draw_series([PathElement::new(
                vec![
                    (0.0, self.objective_ms),
                    (self.x_range().end, self.objective_ms),
                ],
                objective.stroke_width(2),
            )])
            .map_err(plot_error)?
            .label(format!("objective {}", ms_label(self.objective_ms)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], objective.stroke_width(2))
            });
        for (i, (name, steps)) in self.series.iter().enumerate() {
            let c = color(i);
            let points: Vec<(f64, f64)> = steps
                .iter()
                .filter_map(|s| Some((s.load, (s.probe?.p99_us / 1e3).max(low))))
                .collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)).point_size(3))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            let whiskers = steps.iter().filter_map(|s| {
                let ci = s.probe?.p99_ci?;
                Some(PathElement::new(
                    vec![
                        (s.load, ci.low_us.max(low * 1e3) / 1e3),
                        (s.load, ci.high_us / 1e3),
                    ],
                    c.stroke_width(1),
                ))
            });
            chart.draw_series(whiskers).map_err(plot_error)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }

    fn draw_goodput<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> anyhow::Result<()> {
        let top = self
            .series
            .iter()
            .zip(&self.ideal_per_s)
            .flat_map(|((_, steps), ideal)| steps.iter().map(move |s| s.goodput_per_s / ideal))
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(self.title(), (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(self.x_range(), 0.0..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("offered heavy load (× what the cores can finish)")
            .y_desc("heavy work done (× what the cores can finish)")
            .x_label_formatter(&|x| format!("{x:.2}×"))
            .y_label_formatter(&|y| format!("{y:.2}×"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(plot_error)?;
        // The ideal: everything offered is done, up to what the cores can finish.
        let end = self.x_range().end;
        let ideal = BLACK.mix(0.5);
        chart
            .draw_series([PathElement::new(
                vec![(0.0, 0.0), (1.0, 1.0), (end, 1.0)],
                ideal.stroke_width(2),
            )])
            .map_err(plot_error)?
            .label("ideal")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], ideal.stroke_width(2))
            });
        for (i, ((name, steps), ideal_per_s)) in
            self.series.iter().zip(&self.ideal_per_s).enumerate()
        {
            let c = color(i);
            let points: Vec<(f64, f64)> = steps
                .iter()
                .map(|s| (s.load, s.goodput_per_s / ideal_per_s))
                .collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)).point_size(3))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}
