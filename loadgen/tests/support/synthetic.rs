//! A small synthetic `loadgen run` report with known figures, for tests that
//! need one without running anything.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use loadgen::engine::{IntervalOutcome, StreamLabel, StreamOutcome};
use loadgen::environment::Environment;
use loadgen::plan::Load;
use loadgen::recorder::{Recorded, Sample};
use loadgen::report::{
    Figures, HeavySize, JobsFigures, PhaseReport, Placement, RunReport, Scenario, Settings,
    StreamReport, Sweep, VariantReport, VariantStatus,
};
use loadgen::stats::Percentiles;
use loadgen::telemetry::{
    LongPollMark, PhasePolls, ServerFigures, ServerInterval, ServerTelemetry, SourcePhasePolls,
};

/// The variants of the synthetic report; probe latency grows with the index
/// (loaded base latency 1, 11 and 21 ms; idle and recovery 1 ms).
pub const VARIANTS: [&str; 3] = ["spawn-blocking", "rayon", "current-thread"];

/// A stream whose responses take `base_ms` plus a tail, over `seconds` intervals of
/// 100 responses.
pub fn stream(name: &str, base_ms: u64, seconds: u64) -> StreamReport {
    stream_with(name, base_ms, seconds, 100)
}

/// A stream of `per_second` responses a second for `seconds`, each taking `base_ms`
/// plus a tail up to about twice that.
pub fn stream_with(name: &str, base_ms: u64, seconds: u64, per_second: u64) -> StreamReport {
    let label = StreamLabel {
        name: name.into(),
        method: http::Method::GET,
        path: "/".into(),
        load: Load::Open {
            rate: 100.0,
            connections: 4,
        },
        stages: Vec::new(),
    };
    let t0 = Instant::now();
    let mut total = Recorded::default();
    let mut intervals = Vec::new();
    for second in 0..seconds {
        let mut interval = Recorded::default();
        for i in 0..per_second {
            // The same shape whatever the count: k runs over 0..100.
            let k = i * 100 / per_second;
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
        intervals.push(IntervalOutcome::of(
            Duration::from_secs(second),
            Duration::from_secs(1),
            &interval,
        ));
    }
    let outcome = StreamOutcome {
        stream: label,
        in_window: total.counts,
        total,
        intervals,
        unsent: 0,
        pacer_lateness: None,
        due: None,
        setup: None,
    };
    StreamReport::from_outcome(&outcome, Duration::from_secs(seconds))
}

/// Server telemetry whose lag is 1 ms when idle and `slow` ms under load (max twice
/// that), with one failed scrape under load; two 1 s intervals of those figures.
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
        intervals: (0..2)
            .map(|i| ServerInterval {
                start_s: i as f64,
                length_s: 1.0,
                client_cpu: 0.1,
                server_cpu: Some(0.5),
                scrape_ms: Some(1.0),
                scrape_error: None,
                server: Some(ServerFigures {
                    span_s: 1.0,
                    lag_samples: 50,
                    lag_p99_us: 1_000.0 * ms as f64,
                    lag_max_us: 2_000.0 * ms as f64,
                    busy_ratio: 0.5,
                    busy_reported: true,
                    alive_tasks: 10,
                    global_queue_depth: 0,
                    jobs_in_flight: 0,
                    jobs_running: 0,
                    jobs_queued: 0,
                    jobs_rejected: 0,
                    processes: 1,
                }),
            })
            .collect(),
        traffic: Vec::new(),
        polls: Some(phase_polls(ms)),
    }
}

/// Poll timings: `/health` polled briefly; under load, `/work/cpu` polls as long
/// as the lag (one mark a second) when that is long.
fn phase_polls(ms: u64) -> PhasePolls {
    let source = |name: &str, polls, long_polls, longest_us| SourcePhasePolls {
        kind: "route".into(),
        name: name.into(),
        polls,
        long_polls,
        longest_us,
        longest_exact: true,
    };
    let mut sources = vec![source("/health", 900, 0, 40.0)];
    let mut marks = Vec::new();
    if ms > 1 {
        sources.insert(0, source("/work/cpu", 300, 3, 2_000.0 * ms as f64));
        marks = (0..3)
            .map(|i| LongPollMark {
                kind: "route".into(),
                name: "/work/cpu".into(),
                start_s: 0.5 + i as f64,
                duration_us: 2_000.0 * ms as f64,
                process: None,
            })
            .collect();
    }
    PhasePolls {
        threshold_us: 1_000.0,
        compared: true,
        sources,
        marks,
        marks_left_out: 0,
    }
}

pub fn synthetic_report() -> RunReport {
    let settings = Settings::new(true, Scenario::Responsiveness);
    let heavy = HeavySize {
        units: 20_000,
        cost_ms: 20.0,
        cores: 2,
        ideal_per_s: 100.0,
        offered_per_s: 150.0,
        measured: None,
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
                load: (phase == "loaded").then_some(1.5),
                settled_s: None,
            };
            let phases = vec![
                phase("idle", vec![stream("probe", 1, 2)]),
                phase(
                    "loaded",
                    vec![stream("probe", slow, 2), stream("heavy", 20 * slow, 2)],
                ),
                phase("recovery", vec![stream("probe", 1, 2)]),
            ];
            let figures = Figures::derive(&phases, &heavy);
            let mut variant = VariantReport {
                name: name.to_string(),
                summary: "test".into(),
                mirrors: String::new(),
                status: VariantStatus::Ok,
                error: None,
                server: None,
                heavy: Some(heavy),
                phases,
                figures,
                verdict: None,
                sweep: None,
                skipped_steps: Vec::new(),
            };
            variant.verdict = variant.judge(settings.objective_ms);
            variant
        })
        .collect();
    RunReport {
        schema_version: 1,
        scenario: Scenario::Responsiveness,
        tool_version: "test".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        interrupted: false,
        environment: Environment::detect(),
        placement: Placement::default(),
        settings,
        resolution: None,
        variants,
        recommendation: None,
    }
}

/// The synthetic run as a run of the jobs scenario: the loaded phase has the probe
/// and `jobs` (end-to-end, 100 ms base times the variant's slowness; 1,000 samples
/// each, enough to bound their p99) and `submit` streams and job figures instead of
/// a heavy stream; no derived figures.
pub fn synthetic_jobs_report() -> RunReport {
    let mut report = synthetic_report();
    report.scenario = Scenario::Jobs;
    report.settings.scenario = Scenario::Jobs;
    for (i, v) in report.variants.iter_mut().enumerate() {
        let slow = 1 + 10 * i as u64;
        v.figures = None;
        let loaded = &mut v.phases[1];
        loaded.streams = vec![
            stream_with("probe", slow, 2, 500),
            stream("submit", 1, 2),
            stream_with("jobs", 100 * slow, 2, 500),
        ];
        loaded.jobs = Some(JobsFigures {
            rate: 80.0,
            submitted: 200,
            accepted: 200,
            done: 200,
            ..JobsFigures::default()
        });
    }
    report
}

/// The synthetic run with 5,000 probe samples in every phase (enough to bound the
/// p99), its figures derived again.
pub fn well_sampled_report() -> RunReport {
    let mut report = synthetic_report();
    for (i, v) in report.variants.iter_mut().enumerate() {
        let slow = 1 + 10 * i as u64;
        for p in &mut v.phases {
            let base = if p.name == "loaded" { slow } else { 1 };
            p.streams[0] = stream_with("probe", base, 10, 500);
        }
        v.figures = Figures::derive(&v.phases, v.heavy.as_ref().unwrap());
        v.verdict = v.judge(report.settings.objective_ms);
    }
    report
}

/// Multiplies a p99 and its interval by `factor`, as a regression would move them.
pub fn scale_p99(p: &mut Percentiles, factor: f64) {
    p.p99_us *= factor;
    if let Some(ci) = p.p99_ci.as_mut() {
        ci.low_us *= factor;
        ci.high_us *= factor;
    }
}

/// A run with a load sweep at 0.5×, 1× and 1.5× what the cores can finish (ideal
/// 100 jobs/s), 1,000 probe samples a phase. spawn-blocking keeps the probe fast
/// at 0.5× only (p99 about 4, 60, 600 ms); rayon stays fast throughout and keeps up
/// to 1× (at 1.5× it answers 90 of 150 jobs/s); current-thread misses the 50 ms
/// objective from the first step.
pub fn synthetic_sweep_report() -> RunReport {
    let mut report = synthetic_report();
    let settings = Settings::new(true, Scenario::Responsiveness);
    let probe_ms: [[u64; 3]; 3] = [[2, 30, 300], [1, 2, 3], [100, 500, 2_000]];
    let goodput: [[u64; 3]; 3] = [[50, 95, 140], [50, 95, 90], [40, 40, 40]];
    for (i, v) in report.variants.iter_mut().enumerate() {
        let phase = |name: &str, load: Option<f64>, streams: Vec<StreamReport>| PhaseReport {
            name: name.into(),
            measured_s: 2.0,
            wall_s: 2.5,
            client_cpu_s: 0.1,
            client_cpu_share: 0.05,
            server_cpu_s: 1.0,
            streams,
            server_telemetry: None,
            jobs: None,
            load,
            settled_s: None,
        };
        let mut phases = vec![phase("idle", None, vec![stream_with("probe", 1, 2, 500)])];
        for (k, step) in settings.steps().enumerate() {
            phases.push(phase(
                &step.name,
                step.load,
                vec![
                    stream_with("probe", probe_ms[i][k], 2, 500),
                    stream_with("heavy", 20, 2, goodput[i][k]),
                ],
            ));
        }
        phases.push(phase(
            "recovery",
            None,
            vec![stream_with("probe", 1, 2, 500)],
        ));
        v.phases = phases;
        v.figures = Figures::derive(&v.phases, v.heavy.as_ref().unwrap());
        v.verdict = v.judge(settings.objective_ms);
        v.sweep = Sweep::derive(v, &settings);
    }
    report.settings = settings;
    report
}
