//! Probe latency over time: p50, p99 and max per interval, the phases side by side
//! with the loaded one shaded, the server's own event-loop lag on the same time axis
//! (so a stall shows on both sides), and heavy completions per second on a second
//! axis. The picture of a server freezing and recovering. Under the latency, each
//! long poll the server timed is a short bar as long as the poll, at the height of
//! its duration and coloured by its route or task: which code blocked, and when.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{color, draw_legend, frame, log_key_points, ms_label, plot_error, Chart, FONT};
use crate::report::polls::source_name;
use crate::report::{IntervalReport, StreamReport, VariantReport};
use crate::telemetry::ServerTelemetry;

/// One interval of the latency stream.
struct Point {
    t: f64,
    /// Latencies recorded in the interval (responses and timeouts).
    count: u64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// The time series of one variant (or one `bench` stream).
pub struct Timeline {
    pub title: String,
    stem: String,
    /// (name, start, end, loaded) on the time axis, in seconds.
    phases: Vec<(String, f64, f64, bool)>,
    latency: Vec<Point>,
    /// The server's largest event-loop lag per scrape interval, in ms, placed at
    /// the scrape that reported it.
    server_lag: Vec<(f64, f64)>,
    throughput: Vec<(f64, f64)>,
    throughput_label: String,
    /// Open-loop `bench` stream whose rate changes: the target rate per
    /// interval, on the throughput's axis (target against achieved).
    target_rate: Vec<(f64, f64)>,
    footer: String,
    long_polls: Vec<LongPollBar>,
    /// The routes and tasks with long polls, most long polls first (the rest
    /// folded into the last, `other`).
    poll_sources: Vec<String>,
}

/// Routes and tasks given their own colour; the rest share one.
const POLL_COLOURS: usize = 4;

/// The colours of long polls: none of the latency lines' or the throughput's.
const POLL_PALETTE: [usize; POLL_COLOURS] = [5, 2, 9, 6];

/// The long polls of every phase, each cut to its phase's measured window and
/// placed at the phase's `offset`, with their sources.
#[derive(Default)]
struct LongPolls {
    /// (start, end, duration in ms, source).
    marks: Vec<(f64, f64, f64, String)>,
}

impl LongPolls {
    fn add(&mut self, telemetry: &ServerTelemetry, offset: f64, measured_s: f64) {
        let Some(polls) = &telemetry.polls else {
            return;
        };
        for m in &polls.marks {
            let (start, end) = (
                m.start_s.max(0.0),
                (m.start_s + m.duration_us / 1e6).min(measured_s),
            );
            if start < end {
                self.marks.push((
                    offset + start,
                    offset + end,
                    m.duration_us / 1e3,
                    source_name(&m.kind, &m.name),
                ));
            }
        }
    }

    /// (marks, sources): the most frequent sources get their own index.
    fn finish(self) -> (Vec<LongPollBar>, Vec<String>) {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (_, _, _, name) in &self.marks {
            match counts.iter_mut().find(|(n, _)| n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name.clone(), 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let mut sources: Vec<String> = counts.into_iter().map(|(n, _)| n).collect();
        if sources.len() > POLL_COLOURS {
            sources.truncate(POLL_COLOURS - 1);
            sources.push("other".into());
        }
        let marks = self
            .marks
            .into_iter()
            .map(|(start, end, ms, name)| LongPollBar {
                start,
                end,
                ms,
                source: sources
                    .iter()
                    .position(|s| *s == name)
                    .unwrap_or(sources.len() - 1),
            })
            .collect();
        (marks, sources)
    }
}

/// One long poll as drawn: from `start` to `end` at the height of its length.
struct LongPollBar {
    start: f64,
    end: f64,
    ms: f64,
    /// Index into the timeline's `poll_sources`.
    source: usize,
}

fn point(offset: f64, i: &IntervalReport) -> Point {
    Point {
        t: offset + i.start_s + i.length_s / 2.0,
        count: i.corrected.count,
        p50: i.corrected.p50_us / 1e3,
        p99: i.corrected.p99_us / 1e3,
        max: i.corrected.max_us / 1e3,
    }
}

/// Intervals inside the measured window (the drain's own interval left out).
fn in_window(s: &StreamReport) -> impl Iterator<Item = &IntervalReport> {
    s.intervals
        .iter()
        .filter(move |i| i.is_in_window(s.measured_s))
}

/// The server's largest lag per scrape interval of a phase that starts at
/// `offset` and measured `measured_s`, in ms. Each figure covers the interval
/// ending at its scrape; the scrape just after the end still covers the end.
fn lag_points(telemetry: &ServerTelemetry, offset: f64, measured_s: f64) -> Vec<(f64, f64)> {
    telemetry
        .intervals
        .iter()
        .filter_map(|i| {
            let end = i.start_s + i.length_s;
            let figures = i.server.as_ref().filter(|f| f.has_lag())?;
            (end > 0.0 && i.start_s < measured_s)
                .then(|| (offset + end.min(measured_s), figures.lag_max_us / 1e3))
        })
        .collect()
}

impl Timeline {
    /// The probe of every phase of a variant, back to back.
    pub fn of_variant(v: &VariantReport, footer: &str) -> Option<Timeline> {
        if v.phases.is_empty() {
            return None;
        }
        let (mut phases, mut latency, mut throughput) = (Vec::new(), Vec::new(), Vec::new());
        let mut server_lag = Vec::new();
        let mut long_polls = LongPolls::default();
        let mut offset = 0.0;
        for phase in &v.phases {
            if let Some(telemetry) = &phase.server_telemetry {
                server_lag.extend(lag_points(telemetry, offset, phase.measured_s));
                long_polls.add(telemetry, offset, phase.measured_s);
            }
            if let Some(probe) = phase.stream("probe") {
                latency.extend(in_window(probe).map(|i| point(offset, i)));
            }
            if let Some(heavy) = phase.stream("heavy") {
                throughput.extend(
                    in_window(heavy).map(|i| (offset + i.start_s + i.length_s / 2.0, i.throughput)),
                );
            }
            phases.push((
                phase.name.clone(),
                offset,
                offset + phase.measured_s,
                phase.load.is_some() || phase.name == "loaded",
            ));
            offset += phase.measured_s;
        }
        let (long_polls, poll_sources) = long_polls.finish();
        Some(Timeline {
            title: format!("{}: probe latency per interval (corrected)", v.name),
            stem: format!("timeline-{}", v.name),
            phases,
            latency,
            server_lag,
            throughput,
            throughput_label: "heavy completions/s (right axis)".into(),
            target_rate: Vec::new(),
            footer: footer.to_owned(),
            long_polls,
            poll_sources,
        })
    }

    /// One stream of a `bench` run, with its own throughput on the second axis,
    /// and the server's lag when `--scrape` read it.
    pub fn of_stream(s: &StreamReport, server: Option<&ServerTelemetry>, footer: &str) -> Timeline {
        let mut long_polls = LongPolls::default();
        if let Some(t) = server {
            long_polls.add(t, 0.0, s.measured_s);
        }
        let (long_polls, poll_sources) = long_polls.finish();
        Timeline {
            title: format!("{}: latency per interval (corrected)", s.name),
            stem: format!("timeline-{}", s.name),
            phases: vec![("measured".into(), 0.0, s.measured_s, false)],
            latency: in_window(s).map(|i| point(0.0, i)).collect(),
            server_lag: server.map_or_else(Vec::new, |t| lag_points(t, 0.0, s.measured_s)),
            throughput: in_window(s)
                .map(|i| (i.start_s + i.length_s / 2.0, i.throughput))
                .collect(),
            throughput_label: "responses/s (right axis)".into(),
            target_rate: if s.stages.is_empty() {
                Vec::new()
            } else {
                in_window(s)
                    .filter_map(|i| Some((i.start_s + i.length_s / 2.0, i.target_rate?)))
                    .collect()
            },
            footer: footer.to_owned(),
            long_polls,
            poll_sources,
        }
    }
}

impl Chart for Timeline {
    fn file_stem(&self) -> String {
        self.stem.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = frame(root, &self.footer)?;
        let end = self.phases.last().map_or(1.0, |p| p.2).max(1.0);
        let answered = self.latency.iter().filter(|p| p.count > 0);
        let y_min = answered
            .clone()
            .map(|p| p.p50)
            .fold(f64::INFINITY, f64::min)
            .max(0.001);
        let y_min = if y_min.is_finite() { y_min / 1.5 } else { 0.01 };
        let y_max = answered
            .map(|p| p.max)
            .chain(self.server_lag.iter().map(|p| p.1))
            .chain(self.long_polls.iter().map(|p| p.ms))
            .fold(0.0, f64::max)
            .max(y_min * 10.0)
            * 3.0;
        let rate_max = self
            .throughput
            .iter()
            .chain(&self.target_rate)
            .map(|p| p.1)
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(&self.title, (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .right_y_label_area_size(60)
            .build_cartesian_2d(
                0f64..end,
                (y_min..y_max)
                    .log_scale()
                    .with_key_points(log_key_points(y_min, y_max)),
            )
            .map_err(plot_error)?
            .set_secondary_coord(0f64..end, 0f64..rate_max);
        chart
            .configure_mesh()
            .x_desc("measured time, phases back to back (s)")
            .y_desc("probe latency (log scale)")
            .y_label_formatter(&|y| ms_label(*y))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(plot_error)?;
        chart
            .configure_secondary_axes()
            .y_desc(self.throughput_label.as_str())
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(plot_error)?;
        for (name, start, stop, loaded) in &self.phases {
            if *loaded {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(*start, y_min), (*stop, y_max)],
                        RGBColor(255, 228, 225).filled(),
                    )))
                    .map_err(plot_error)?;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    name.clone(),
                    (*start + end * 0.01, y_max / 1.6),
                    (FONT, 15).into_font(),
                )))
                .map_err(plot_error)?;
        }
        type Pick = fn(&Point) -> f64;
        let lines: [(&str, Pick); 3] = [("p50", |p| p.p50), ("p99", |p| p.p99), ("max", |p| p.max)];
        for (i, (label, pick)) in lines.into_iter().enumerate() {
            let c = [color(0), color(1), color(3)][i];
            // A line only joins answered intervals next to each other: a frozen
            // interval breaks it rather than being bridged.
            let runs = self
                .latency
                .split(|p| p.count == 0)
                .filter(|run| !run.is_empty());
            let mut labelled = false;
            for run in runs {
                let points: Vec<(f64, f64)> =
                    run.iter().map(|p| (p.t, pick(p).max(y_min))).collect();
                let series = chart
                    .draw_series(LineSeries::new(points, c.stroke_width(2)).point_size(2))
                    .map_err(plot_error)?;
                if !labelled {
                    series
                        .label(format!("probe {label}"))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                        });
                    labelled = true;
                }
            }
        }
        if !self.server_lag.is_empty() {
            let purple = RGBColor(120, 40, 160);
            let points: Vec<(f64, f64)> = self
                .server_lag
                .iter()
                .map(|&(t, ms)| (t, ms.max(y_min)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(
                    points.clone(),
                    3,
                    3,
                    purple.stroke_width(2),
                ))
                .map_err(plot_error)?;
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| TriangleMarker::new(p, 5, purple.filled())),
                )
                .map_err(plot_error)?
                .label("server event-loop lag max (per scrape)")
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 5, purple.filled()));
        }
        for (i, source) in self.poll_sources.iter().enumerate() {
            let c = color(POLL_PALETTE[i % POLL_PALETTE.len()]);
            let bars = self.long_polls.iter().filter(|p| p.source == i).map(|p| {
                let y = p.ms.max(y_min);
                PathElement::new(vec![(p.start, y), (p.end, y)], c.stroke_width(3))
            });
            chart
                .draw_series(bars)
                .map_err(plot_error)?
                .label(format!("long poll: {source} (bar = its length)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
        }
        let frozen: Vec<(f64, f64)> = self
            .latency
            .iter()
            .filter(|p| p.count == 0)
            .map(|p| (p.t, y_max / 2.2))
            .collect();
        if !frozen.is_empty() {
            let red = RGBColor(200, 0, 0);
            chart
                .draw_series(
                    frozen
                        .into_iter()
                        .map(|p| Cross::new(p, 6, red.stroke_width(2))),
                )
                .map_err(plot_error)?
                .label("no probe answered in the interval")
                .legend(move |(x, y)| Cross::new((x + 10, y), 6, red.stroke_width(2)));
        }
        let grey = RGBColor(110, 110, 110);
        chart
            .draw_secondary_series(DashedLineSeries::new(
                self.throughput.clone(),
                6,
                4,
                grey.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(self.throughput_label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(3))
            });
        if !self.target_rate.is_empty() {
            let black = RGBColor(20, 20, 20);
            chart
                .draw_secondary_series(LineSeries::new(
                    self.target_rate.clone(),
                    black.stroke_width(1),
                ))
                .map_err(plot_error)?
                .label("target requests/s (right axis)")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], black.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}
