//! The frames of a finished run, made from its report: what the live page
//! received while it ran (the same figures, in the same order per section), so
//! `report.html` draws them with the same page.

use super::{Frame, Kind, Outcome};
use crate::matrix::plan::INTERVAL;
use crate::report::table::loaded_probe_p99;
use crate::report::{BenchReport, RunReport, Scenario, Settings, VariantReport};

/// The frames of a `bench` report.
pub fn bench_frames(report: &BenchReport) -> Vec<Frame> {
    let mut frames = vec![bench_run(
        report,
        report.streams.iter().map(|s| s.name.clone()).collect(),
    )];
    // Interval by interval, the streams' frames together, as they were published.
    let mut intervals: Vec<(f64, usize, Frame)> = Vec::new();
    for (order, stream) in report.streams.iter().enumerate() {
        for interval in &stream.intervals {
            intervals.push((
                interval.start_s,
                order,
                Frame::reported_interval(&stream.name, interval, stream.measured_s, 0.0),
            ));
        }
    }
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    frames.extend(intervals.into_iter().map(|(_, _, f)| f));
    if let Some(telemetry) = &report.server_telemetry {
        frames.extend(
            telemetry
                .intervals
                .iter()
                .filter(|i| i.start_s + i.length_s > 0.0)
                .map(|i| Frame::server(i, 0.0)),
        );
    }
    frames.push(end(report.interrupted));
    frames
}

/// The `run` frame of a bench with `streams`.
pub fn bench_run(report: &BenchReport, streams: Vec<String>) -> Frame {
    let config = &report.config;
    Frame::Run {
        kind: Kind::Bench,
        title: config.url.clone(),
        planned_s: config.warmup_s + config.duration_s,
        interval_s: config.interval_s,
        streams,
        variants: Vec::new(),
    }
}

/// The `run` frame of `loadgen run` over `variants` (their dashboard names).
pub fn run_frame(scenario: Scenario, settings: &Settings, variants: Vec<String>) -> Frame {
    Frame::Run {
        kind: Kind::Run,
        title: scenario.title().into(),
        planned_s: settings.planned_run(variants.len()).as_secs_f64(),
        interval_s: INTERVAL.as_secs_f64(),
        streams: Vec::new(),
        variants,
    }
}

/// The frames of a `run` report.
pub fn run_frames(report: &RunReport) -> Vec<Frame> {
    let names = report.variants.iter().map(|v| v.name.clone()).collect();
    let mut frames = vec![run_frame(report.scenario, &report.settings, names)];
    for (i, variant) in report.variants.iter().enumerate() {
        frames.extend(variant_frames(report, variant));
        let so_far = RunReport {
            variants: report.variants[..=i].to_vec(),
            ..report.clone()
        };
        frames.push(comparison(&so_far, variant));
    }
    frames.push(end(report.interrupted));
    frames
}

/// One variant's phases, intervals and server samples, on its axis.
fn variant_frames(report: &RunReport, variant: &VariantReport) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut at_s = 0.0;
    for phase in &variant.phases {
        frames.push(Frame::Phase {
            variant: variant.name.clone(),
            phase: phase.name.clone(),
            at_s,
            loaded: report
                .settings
                .phases
                .iter()
                .any(|p| p.name == phase.name && p.heavy),
        });
        let mut intervals: Vec<(f64, usize, Frame)> = Vec::new();
        for (order, stream) in phase.streams.iter().enumerate() {
            for interval in &stream.intervals {
                intervals.push((
                    interval.start_s,
                    order,
                    Frame::reported_interval(&stream.name, interval, phase.measured_s, at_s),
                ));
            }
        }
        intervals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        frames.extend(intervals.into_iter().map(|(_, _, f)| f));
        if let Some(telemetry) = &phase.server_telemetry {
            frames.extend(
                telemetry
                    .intervals
                    .iter()
                    .filter(|i| i.start_s + i.length_s > 0.0)
                    .map(|i| Frame::server(i, at_s)),
            );
        }
        at_s += phase.measured_s;
    }
    frames
}

/// The comparison once `latest` has finished: `so_far` holds the variants
/// finished until then.
pub fn comparison(so_far: &RunReport, latest: &VariantReport) -> Frame {
    let status = serde_json::to_value(latest.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let ranked = so_far.ranked();
    Frame::Comparison {
        variant: latest.name.clone(),
        status,
        error: latest.error.clone(),
        header: so_far.header().iter().map(|h| (*h).to_owned()).collect(),
        rows: so_far
            .rows()
            .into_iter()
            .map(|row| row.into_iter().map(|cell| cell.text).collect())
            .collect(),
        bars: ranked
            .into_iter()
            .map(|v| (v.name.clone(), loaded_probe_p99(v)))
            .collect(),
    }
}

fn end(interrupted: bool) -> Frame {
    Frame::End {
        outcome: if interrupted {
            Outcome::Interrupted
        } else {
            Outcome::Finished
        },
        error: None,
    }
}
