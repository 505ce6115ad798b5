//! The frames of a finished run, made from its report: what the live page
//! received while it ran (the same figures; per section, the same frames), so
//! `report.html` draws them with the same page. A phase that failed part-way
//! is the exception: its frames went live, but the report keeps no phase.

use super::{Frame, Kind, Outcome};
use crate::matrix::plan::INTERVAL;
use crate::report::table::loaded_probe_p99;
use crate::report::{BenchReport, RunReport, Settings, StreamReport, VariantReport};
use crate::telemetry::ServerTelemetry;

/// The frames of a `bench` report.
pub fn bench_frames(report: &BenchReport) -> Vec<Frame> {
    let config = &report.config;
    let mut frames = vec![Frame::bench_run(
        &config.url,
        config.warmup_s + config.duration_s,
        config.interval_s,
        report.streams.iter().map(|s| s.name.clone()).collect(),
    )];
    let measured_s = report.streams.first().map_or(0.0, |s| s.measured_s);
    frames.extend(measured_frames(
        &report.streams,
        measured_s,
        report.server_telemetry.as_ref(),
        0.0,
    ));
    frames.push(end(report.interrupted));
    frames
}

/// The `run` frame of `loadgen run` over `variants` (their dashboard names).
pub fn run_frame(settings: &Settings, variants: Vec<String>) -> Frame {
    Frame::Run {
        kind: Kind::Run,
        title: settings.scenario.title().into(),
        planned_s: settings.planned_run(variants.len()).as_secs_f64(),
        interval_s: INTERVAL.as_secs_f64(),
        streams: Vec::new(),
        variants,
    }
}

/// The frames of a `run` report.
pub fn run_frames(report: &RunReport) -> Vec<Frame> {
    let names = report.variants.iter().map(|v| v.name.clone()).collect();
    let mut frames = vec![run_frame(&report.settings, names)];
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
        frames.extend(measured_frames(
            &phase.streams,
            phase.measured_s,
            phase.server_telemetry.as_ref(),
            at_s,
        ));
        at_s += phase.measured_s;
    }
    frames
}

/// The intervals of `streams` measured for `measured_s` (interval by
/// interval, the streams' frames together, as they were published), then the
/// server's samples, `at_s` along the section's axis.
fn measured_frames(
    streams: &[StreamReport],
    measured_s: f64,
    telemetry: Option<&ServerTelemetry>,
    at_s: f64,
) -> Vec<Frame> {
    let mut intervals: Vec<(f64, usize, Frame)> = Vec::new();
    for (order, stream) in streams.iter().enumerate() {
        for interval in &stream.intervals {
            intervals.push((
                interval.start_s,
                order,
                Frame::reported_interval(
                    &stream.name,
                    interval,
                    interval.is_in_window(measured_s),
                    at_s,
                ),
            ));
        }
    }
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut frames: Vec<Frame> = intervals.into_iter().map(|(_, _, f)| f).collect();
    if let Some(telemetry) = telemetry {
        frames.extend(
            telemetry
                .intervals
                .iter()
                .filter(|i| i.ends_in_measurement())
                .map(|i| Frame::server(i, at_s)),
        );
    }
    frames
}

/// The comparison once `latest` has finished: `so_far` holds the variants
/// finished until then.
pub fn comparison(so_far: &RunReport, latest: &VariantReport) -> Frame {
    Frame::Comparison {
        variant: latest.name.clone(),
        status: latest.status,
        error: latest.error.clone(),
        header: so_far.header().iter().map(|h| (*h).to_owned()).collect(),
        rows: so_far
            .rows()
            .into_iter()
            .map(|row| row.into_iter().map(|cell| cell.text).collect())
            .collect(),
        bars: so_far
            .ranked()
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
