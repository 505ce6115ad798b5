//! The comparison at a glance, one bar each per variant, side by side, best variant
//! on top: probe p99 under load (log scale) and, on the right, what the load got
//! done: heavy efficiency (responsiveness) or the background jobs' end-to-end p99
//! (jobs, log scale).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{color, frame, log_key_points, log_range, ms_label, plot_error, Chart, FONT};
use crate::report::table::loaded_probe_p99;
use crate::report::{RunReport, Scenario};

/// Bars of the variants that have figures.
pub struct Comparison {
    scenario: Scenario,
    /// (variant, probe p99 under load in ms, the right-hand figure), best first:
    /// efficiency in % (responsiveness) or jobs end-to-end p99 in ms (jobs).
    rows: Vec<(String, f64, f64)>,
    /// Each row's 95 % interval of the probe p99, in ms, where the samples bound it.
    intervals: Vec<Option<(f64, f64)>>,
    /// The responsiveness objective, in ms: a line across the probe bars.
    objective_ms: f64,
    footer: String,
}

impl Comparison {
    pub fn of_run(report: &RunReport, footer: &str) -> Comparison {
        let (rows, intervals) = report
            .ranked()
            .into_iter()
            .filter_map(|v| {
                let right = match report.scenario {
                    Scenario::Responsiveness | Scenario::Upstream => {
                        v.figures.as_ref()?.heavy_efficiency * 100.0
                    }
                    Scenario::Jobs => {
                        let jobs = v.phase("loaded")?.stream("jobs")?;
                        jobs.latency.corrected.p99_us / 1e3
                    }
                };
                let probe = &v.phase("loaded")?.stream("probe")?.latency.corrected;
                let interval = probe.p99_ci.map(|ci| (ci.low_us / 1e3, ci.high_us / 1e3));
                Some((
                    (v.name.clone(), loaded_probe_p99(v)? / 1e3, right),
                    interval,
                ))
            })
            .unzip();
        Comparison {
            scenario: report.scenario,
            rows,
            intervals,
            objective_ms: report.settings.objective_ms,
            footer: footer.to_owned(),
        }
    }

    pub fn title(&self) -> String {
        match self.scenario {
            Scenario::Responsiveness => "Probe p99 under load and heavy efficiency, per variant",
            Scenario::Upstream => {
                "Probe p99 under upstream calls, and calls done per second as % of a blocking pool per core"
            }
            Scenario::Jobs => {
                "Probe p99 while background jobs run and the jobs' end-to-end p99, per variant"
            }
        }
        .into()
    }

    /// Vertical position of row `i`: the first row at the top.
    fn y(&self, i: usize) -> f64 {
        (self.rows.len() - 1 - i) as f64
    }
}

impl Chart for Comparison {
    fn file_stem(&self) -> String {
        "comparison".into()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = frame(root, &self.footer)?;
        let area = area.titled(&self.title(), (FONT, 22)).map_err(plot_error)?;
        let (width, _) = area.dim_in_pixel();
        let (left, right) = area.split_horizontally(width * 60 / 100);
        let n = self.rows.len().max(1);
        let names: Vec<String> = (0..n)
            .map(|i| {
                self.rows
                    .get(n - 1 - i)
                    .map(|r| r.0.clone())
                    .unwrap_or_default()
            })
            .collect();
        // Labels fall every half unit; only the bar centres (i + 0.5) get a name.
        let name_of = |y: &f64| {
            let centred = (y - y.floor() - 0.5).abs() < 0.01;
            let name = names.get(y.floor() as usize).filter(|_| centred);
            name.cloned().unwrap_or_default()
        };

        let low = self
            .rows
            .iter()
            .map(|r| r.1)
            .fold(f64::INFINITY, f64::min)
            .max(0.01);
        let low = if low.is_finite() { low / 3.0 } else { 0.01 };
        let high = self
            .rows
            .iter()
            .map(|r| r.1)
            .chain(self.intervals.iter().flatten().map(|i| i.1))
            .chain([self.objective_ms])
            .fold(0.0, f64::max)
            .max(low * 10.0)
            * 3.0;
        let mut p99 = ChartBuilder::on(&left)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(140)
            .build_cartesian_2d(
                (low..high)
                    .log_scale()
                    .with_key_points(log_key_points(low, high)),
                0f64..n as f64,
            )
            .map_err(plot_error)?;
        p99.configure_mesh()
            .x_desc("probe p99 under load, with its 95 % interval (log scale)")
            .x_label_formatter(&|x| ms_label(*x))
            .y_labels(2 * n + 1)
            .y_label_formatter(&name_of)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .disable_y_mesh()
            .draw()
            .map_err(plot_error)?;
        p99.draw_series(self.rows.iter().enumerate().map(|(i, r)| {
            Rectangle::new(
                [(low, self.y(i) + 0.15), (r.1.max(low), self.y(i) + 0.85)],
                color(i).filled(),
            )
        }))
        .map_err(plot_error)?;
        // Each p99's interval as a whisker across the end of its bar.
        let whisker = ShapeStyle::from(&BLACK).stroke_width(2);
        for (i, interval) in self.intervals.iter().enumerate() {
            if let Some((lo, hi)) = *interval {
                let (lo, hi, y) = (lo.max(low), hi.max(low), self.y(i) + 0.5);
                p99.draw_series([
                    PathElement::new(vec![(lo, y), (hi, y)], whisker),
                    PathElement::new(vec![(lo, y - 0.15), (lo, y + 0.15)], whisker),
                    PathElement::new(vec![(hi, y - 0.15), (hi, y + 0.15)], whisker),
                ])
                .map_err(plot_error)?;
            }
        }
        // The objective: responsive variants' whole interval lies left of it.
        let objective = self.objective_ms;
        p99.draw_series([PathElement::new(
            vec![(objective, 0.0), (objective, n as f64)],
            ShapeStyle::from(&RGBColor(200, 0, 0)).stroke_width(2),
        )])
        .map_err(plot_error)?;
        p99.draw_series([Text::new(
            format!("objective {}", ms_label(objective)),
            (objective * 1.1, n as f64 - 0.1),
            (FONT, 14).into_font().color(&RGBColor(200, 0, 0)),
        )])
        .map_err(plot_error)?;

        match self.scenario {
            Scenario::Responsiveness | Scenario::Upstream => self.draw_efficiency(&right, n),
            Scenario::Jobs => self.draw_end_to_end(&right, n),
        }
    }
}

impl Comparison {
    /// Heavy efficiency in %, linear.
    fn draw_efficiency<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        n: usize,
    ) -> anyhow::Result<()> {
        let top = self.rows.iter().map(|r| r.2).fold(100.0, f64::max) * 1.1;
        let mut efficiency = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(10)
            .build_cartesian_2d(0f64..top, 0f64..n as f64)
            .map_err(plot_error)?;
        efficiency
            .configure_mesh()
            .x_desc(match self.scenario {
                Scenario::Upstream => "upstream calls done (% of one blocking thread per core)",
                _ => "heavy efficiency (% of cores ÷ job cost)",
            })
            .x_label_formatter(&|x| format!("{x:.0}%"))
            .y_label_formatter(&|_| String::new())
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .disable_y_mesh()
            .draw()
            .map_err(plot_error)?;
        efficiency
            .draw_series(self.rows.iter().enumerate().map(|(i, r)| {
                Rectangle::new(
                    [(0.0, self.y(i) + 0.15), (r.2, self.y(i) + 0.85)],
                    color(i).mix(0.6).filled(),
                )
            }))
            .map_err(plot_error)?;
        Ok(())
    }

    /// The jobs' end-to-end p99 in ms, log scale.
    fn draw_end_to_end<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        n: usize,
    ) -> anyhow::Result<()> {
        let (low, high) = log_range(self.rows.iter().map(|r| r.2));
        let mut end_to_end = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(10)
            .build_cartesian_2d(
                (low..high)
                    .log_scale()
                    .with_key_points(log_key_points(low, high)),
                0f64..n as f64,
            )
            .map_err(plot_error)?;
        end_to_end
            .configure_mesh()
            .x_desc("jobs end-to-end p99 (log scale)")
            .x_label_formatter(&|x| ms_label(*x))
            .y_label_formatter(&|_| String::new())
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .disable_y_mesh()
            .draw()
            .map_err(plot_error)?;
        end_to_end
            .draw_series(self.rows.iter().enumerate().map(|(i, r)| {
                Rectangle::new(
                    [(low, self.y(i) + 0.15), (r.2.max(low), self.y(i) + 0.85)],
                    color(i).mix(0.6).filled(),
                )
            }))
            .map_err(plot_error)?;
        Ok(())
    }
}
