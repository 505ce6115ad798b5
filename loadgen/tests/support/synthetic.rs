//! A small synthetic `loadgen run` report with known figures, for tests that
//! need one without running anything.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use loadgen::engine::{IntervalOutcome, StreamOutcome};
use loadgen::environment::Environment;
use loadgen::matrix::{
    Figures, JobPlan, MatrixReport, PhaseReport, Placement, Settings, VariantReport,
};
use loadgen::recorder::{Recorded, Sample};
use loadgen::report::StreamReport;
use loadgen::scenario::{Load, StreamSpec};
use loadgen::stats::Percentiles;
use loadgen::telemetry::ServerTelemetry;

/// The variants of the synthetic report; probe latency grows with the index
/// (loaded base latency 1, 11 and 21 ms; idle and recovery 1 ms).
pub const VARIANTS: [&str; 3] = ["spawn-blocking", "rayon", "current-thread"];

/// A stream whose responses take `base_ms` plus a tail, over `seconds` intervals.
pub fn stream(name: &str, base_ms: u64, seconds: u64) -> StreamReport {
    let spec = StreamSpec {
        name: name.into(),
        method: http::Method::GET,
        path: "/".into(),
        headers: vec![],
        body: None::<Bytes>,
        load: Load::Open {
            rate: 100.0,
            connections: 4,
        },
    };
    let t0 = Instant::now();
    let mut total = Recorded::default();
    let mut intervals = Vec::new();
    for second in 0..seconds {
        let mut interval = Recorded::default();
        for k in 0..100u64 {
            let latency = Duration::from_micros(base_ms * 1000 + (k * k * base_ms) / 10);
            interval.record(
                &Sample {
                    due: t0,
                    sent: t0,
                    done: t0 + latency,
                    result: Ok(http::StatusCode::OK),
                },
                true,
            );
        }
        total.merge(&interval);
        intervals.push(IntervalOutcome {
            start: Duration::from_secs(second),
            length: Duration::from_secs(1),
            counts: interval.counts,
            corrected: Percentiles::of(&interval.corrected),
            uncorrected: Percentiles::of(&interval.uncorrected),
        });
    }
    let outcome = StreamOutcome {
        spec,
        in_window: total.counts,
        total,
        intervals,
        unsent: 0,
    };
    StreamReport::from_outcome(&outcome, Duration::from_secs(seconds))
}

/// Server telemetry whose lag is 1 ms when idle and `slow` ms under load (max twice
/// that), with one failed scrape under load.
pub fn server_lag(phase: &str, slow: u64) -> ServerTelemetry {
    let ms = if phase == "loaded" { slow } else { 1 };
    let mut h = loadgen::stats::new_histogram();
    for _ in 0..100 {
        h.record(ms * 1_000_000).unwrap();
    }
    ServerTelemetry {
        scrapes: 3,
        scrape_failures: if phase == "loaded" {
            [("timeout".to_owned(), 1)].into()
        } else {
            Default::default()
        },
        lag: Some(Percentiles::of(&h)),
        lag_max_us: Some(2_000.0 * ms as f64),
        busy_ratio: Some(0.5),
        client_cpu_max: 0.1,
        intervals: Vec::new(),
    }
}

pub fn synthetic_report() -> MatrixReport {
    let settings = Settings::new(true);
    let job = JobPlan {
        units: 20_000,
        cost_ms: 20.0,
        cores: 2,
        ideal_per_s: 100.0,
        offered_per_s: 150.0,
    };
    let variants = VARIANTS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let slow = 1 + 10 * i as u64;
            let phase = |phase: &str, streams: Vec<StreamReport>| PhaseReport {
                name: phase.into(),
                measured_s: 2.0,
                wall_s: 2.5,
                client_cpu_s: 0.1,
                client_cpu_share: 0.05,
                server_cpu_s: 1.0,
                streams,
                server_telemetry: Some(server_lag(phase, slow)),
                jobs: None,
            };
            let phases = vec![
                phase("idle", vec![stream("probe", 1, 2)]),
                phase(
                    "loaded",
                    vec![stream("probe", slow, 2), stream("heavy", 20 * slow, 2)],
                ),
                phase("recovery", vec![stream("probe", 1, 2)]),
            ];
            let figures = Figures::derive(&phases, &job);
            VariantReport {
                name: name.to_string(),
                summary: "test".into(),
                status: "ok".into(),
                error: None,
                server: None,
                job: Some(job),
                phases,
                figures,
            }
        })
        .collect();
    MatrixReport {
        schema_version: 1,
        scenario: "responsiveness".into(),
        tool_version: "test".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        interrupted: false,
        environment: Environment::detect(),
        placement: Placement::default(),
        settings,
        resolution: None,
        variants,
    }
}
