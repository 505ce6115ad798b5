//! A server's Prometheus text exposition read as the reference servers' metrics
//! report, so that `bench --scrape URL` works against any server that exposes
//! these names, and everything downstream (the interval series, the timelines,
//! the checks) is the same as for `/metrics.json`.
//!
//! The names read (all optional; a server exposes what it has), per process (the
//! `process` label; one process without it):
//! - `server_event_loop_lag_seconds` (histogram): event-loop lag; its buckets
//!   become an HdrHistogram with each bucket's samples at its upper bound (the
//!   `+Inf` bucket's at twice the last bound), the same in every snapshot so that
//!   two subtract: percentiles and the lag max of an interval are upper bounds at
//!   the buckets' resolution;
//! - `server_event_loop_lag_max_seconds`, `server_event_loop_stall_seconds`
//!   (gauges): the largest lag so far and a stall in progress;
//! - `tokio_worker_busy_seconds_total{worker}`, `tokio_worker_parks_total{worker}`
//!   (counters), `tokio_runtime_workers`, `tokio_runtime_alive_tasks`,
//!   `tokio_runtime_global_queue_depth` (gauges);
//! - `server_jobs_{in_flight,running,queued}` (gauges),
//!   `server_jobs_{completed,rejected}_total`, `server_connections_accepted_total`,
//!   `server_requests_total` (counters);
//! - `server_uptime_seconds` (gauge): the time base of differences; without it,
//!   the scrape's own wall-clock time;
//! - which code blocked, per `route` or `task` label (as [`pollwatch`] writes
//!   them): `server_poll_duration_seconds` (histogram, read as the lag histogram
//!   is, so an interval's longest poll is an upper bound at the buckets'
//!   resolution), `server_poll_duration_max_seconds` (gauge),
//!   `server_long_polls_total` (counter), `server_long_poll_threshold_seconds`
//!   (gauge). The text format has no list of individual long polls, so these
//!   give figures per phase but no marks on a timeline.
//!
//! Parsing is `prometheus-parse`'s.

use std::collections::BTreeMap;
use std::time::SystemTime;

use prometheus_parse::{Sample, Scrape, Value};
use servers::telemetry::polls::SourcePolls;
use servers::telemetry::runtime::RuntimeFigures;
use servers::telemetry::{JobFigures, LagFigures, MetricsReport, PollFigures, ProcessSnapshot};

/// The lag histogram's family.
const LAG: &str = "server_event_loop_lag_seconds";
/// The poll histogram's family.
const POLLS: &str = "server_poll_duration_seconds";

/// `text` as a metrics report, or why it is not one.
pub fn parse(text: &str, at: SystemTime) -> Result<MetricsReport, String> {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .map_err(|e| format!("not the Prometheus text format: {e}"))?;
    let mut processes: BTreeMap<Option<usize>, Vec<&Sample>> = BTreeMap::new();
    for sample in &scrape.samples {
        let process = sample.labels.get("process").and_then(|p| p.parse().ok());
        processes.entry(process).or_default().push(sample);
    }
    let known = |metric: &str| {
        metric.starts_with("server_event_loop_lag")
            || metric.starts_with("tokio_worker_busy_seconds")
            || metric.starts_with("server_requests_total")
            || metric.starts_with(POLLS)
    };
    if !scrape.samples.iter().any(|s| known(&s.metric)) {
        return Err(format!(
            "none of the names loadgen reads ({LAG}, tokio_worker_busy_seconds_total, server_requests_total, …)"
        ));
    }
    let wall = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let variant = scrape
        .samples
        .iter()
        .find_map(|s| s.labels.get("variant"))
        .unwrap_or("external")
        .to_owned();
    Ok(MetricsReport {
        schema_version: 1,
        variant,
        processes: processes
            .into_iter()
            .map(|(process, samples)| snapshot(process, &samples, wall))
            .collect(),
    })
}

/// The value of the family `name` (the first sample, or the sum over labels for
/// a counter or gauge with several), if present.
fn scalar(samples: &[&Sample], name: &str) -> Option<f64> {
    let values: Vec<f64> = samples
        .iter()
        .filter(|s| s.metric == name)
        .filter_map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Per worker (`worker` label, in order), the values of the family `name`.
fn per_worker(samples: &[&Sample], name: &str) -> Vec<f64> {
    let mut by_worker: BTreeMap<usize, f64> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.metric == name) {
        let worker = s
            .labels
            .get("worker")
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        if let Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) = s.value {
            *by_worker.entry(worker).or_default() += v;
        }
    }
    by_worker.into_values().collect()
}

fn snapshot(process: Option<usize>, samples: &[&Sample], wall: f64) -> ProcessSnapshot {
    let count = |name: &str| scalar(samples, name).map_or(0, |v| v.max(0.0) as u64);
    let max_s = scalar(samples, "server_event_loop_lag_max_seconds").unwrap_or(0.0);
    let histogram = samples
        .iter()
        .find_map(|s| match &s.value {
            Value::Histogram(buckets) if s.metric == LAG => Some(bucket_histogram(buckets)),
            _ => None,
        })
        .unwrap_or_else(servers::telemetry::histogram::new_histogram);
    let quantile = |q: f64| histogram.value_at_quantile(q) as f64 / 1e9;
    let busy_s = per_worker(samples, "tokio_worker_busy_seconds_total");
    ProcessSnapshot {
        process,
        // Scrapes are paired process by process by pid: a stable stand-in.
        pid: process.map_or(1, |i| i as u32 + 1),
        uptime_s: scalar(samples, "server_uptime_seconds").unwrap_or(wall),
        age_s: 0.0,
        lag: LagFigures {
            count: histogram.len(),
            sum_s: scalar(samples, &format!("{LAG}_sum")).unwrap_or(0.0),
            p50_s: quantile(0.5),
            p99_s: quantile(0.99),
            max_s: if max_s > 0.0 {
                max_s
            } else {
                histogram.max() as f64 / 1e9
            },
            stall_s: scalar(samples, "server_event_loop_stall_seconds").unwrap_or(0.0),
            histogram: servers::telemetry::histogram::encode(&histogram),
        },
        runtime: RuntimeFigures {
            flavor: String::new(),
            workers: scalar(samples, "tokio_runtime_workers").map_or(busy_s.len(), |w| w as usize),
            alive_tasks: count("tokio_runtime_alive_tasks") as usize,
            global_queue_depth: count("tokio_runtime_global_queue_depth") as usize,
            parks: per_worker(samples, "tokio_worker_parks_total")
                .into_iter()
                .map(|p| p as u64)
                .collect(),
            busy_s,
        },
        jobs: JobFigures {
            in_flight: count("server_jobs_in_flight"),
            running: count("server_jobs_running"),
            queued: count("server_jobs_queued"),
            completed: count("server_jobs_completed_total"),
            rejected: count("server_jobs_rejected_total"),
        },
        connections_accepted: count("server_connections_accepted_total"),
        requests: count("server_requests_total"),
        polls: polls(samples),
    }
}

/// The poll figures per `route` or `task` label, if the process exposes any.
fn polls(samples: &[&Sample]) -> Option<PollFigures> {
    let source_of = |s: &Sample| -> Option<(String, String)> {
        ["route", "task"]
            .into_iter()
            .find_map(|kind| Some((kind.to_owned(), s.labels.get(kind)?.to_owned())))
    };
    let mut sources: BTreeMap<(String, String), SourcePolls> = BTreeMap::new();
    for s in samples {
        let Some(key) = source_of(s) else { continue };
        let entry = sources.entry(key.clone()).or_insert_with(|| SourcePolls {
            kind: key.0,
            name: key.1,
            polls: 0,
            long_polls: 0,
            max_s: 0.0,
            max_ended_s: None,
            histogram: None,
        });
        match (&s.value, s.metric.as_str()) {
            (Value::Histogram(buckets), POLLS) => {
                let h = bucket_histogram(buckets);
                entry.polls = h.len();
                entry.histogram = Some(servers::telemetry::histogram::encode(&h));
            }
            (Value::Gauge(v) | Value::Untyped(v), "server_poll_duration_max_seconds") => {
                entry.max_s = *v;
            }
            (Value::Counter(v) | Value::Untyped(v), "server_long_polls_total") => {
                entry.long_polls = v.max(0.0) as u64;
            }
            _ => {}
        }
    }
    if sources.is_empty() {
        return None;
    }
    Some(PollFigures {
        threshold_s: scalar(samples, "server_long_poll_threshold_seconds").unwrap_or(0.0),
        now_s: 0.0,
        sources: sources.into_values().collect(),
        long_polls: Vec::new(),
        long_polls_total: 0,
    })
}

/// A Prometheus histogram's buckets (seconds) as an HdrHistogram in ns: each
/// bucket's own samples recorded at its upper bound, the `+Inf` bucket's at
/// twice the last finite bound.
fn bucket_histogram(buckets: &[prometheus_parse::HistogramCount]) -> hdrhistogram::Histogram<u64> {
    let mut histogram = servers::telemetry::histogram::new_histogram();
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.less_than.total_cmp(&b.less_than));
    let mut below = 0.0;
    // From the buckets the server declares, not the ones filled yet.
    let last_bound = buckets
        .iter()
        .map(|b| b.less_than)
        .filter(|b| b.is_finite())
        .fold(1.0, f64::max);
    for bucket in buckets {
        let own = (bucket.count - below).max(0.0) as u64;
        below = bucket.count.max(below);
        if own == 0 {
            continue;
        }
        // The same value for a bucket in every snapshot, so that two snapshots
        // subtract; beyond the last bound, twice it.
        let bound_s = if bucket.less_than.is_finite() {
            bucket.less_than
        } else {
            2.0 * last_bound
        };
        histogram.saturating_record_n((bound_s * 1e9).max(1.0) as u64, own);
    }
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reference_names_per_process() {
        let text = "\
# TYPE server_event_loop_lag_seconds histogram
server_event_loop_lag_seconds_bucket{variant=\"rayon\",le=\"0.001\"} 90
server_event_loop_lag_seconds_bucket{variant=\"rayon\",le=\"0.1\"} 99
server_event_loop_lag_seconds_bucket{variant=\"rayon\",le=\"+Inf\"} 100
server_event_loop_lag_seconds_sum{variant=\"rayon\"} 1.5
server_event_loop_lag_seconds_count{variant=\"rayon\"} 100
# TYPE server_event_loop_lag_max_seconds gauge
server_event_loop_lag_max_seconds{variant=\"rayon\"} 0.75
# TYPE tokio_worker_busy_seconds_total counter
tokio_worker_busy_seconds_total{variant=\"rayon\",worker=\"1\"} 2.5
tokio_worker_busy_seconds_total{variant=\"rayon\",worker=\"0\"} 1.5
# TYPE server_requests_total counter
server_requests_total{variant=\"rayon\"} 42
# TYPE server_uptime_seconds gauge
server_uptime_seconds{variant=\"rayon\"} 12.5
";
        let report = parse(text, SystemTime::now()).unwrap();
        assert_eq!(report.variant, "rayon");
        let p = &report.processes[0];
        assert_eq!((p.process, p.uptime_s, p.requests), (None, 12.5, 42));
        assert_eq!(p.runtime.busy_s, [1.5, 2.5], "ordered by worker");
        assert_eq!(p.lag.count, 100);
        // 90 samples at 1 ms, 9 at 100 ms, 1 beyond (at 200 ms): upper bounds;
        // the max is the server's own.
        assert!((p.lag.p50_s - 0.001).abs() < 1e-5, "{}", p.lag.p50_s);
        assert!((p.lag.p99_s - 0.1).abs() < 1e-3, "{}", p.lag.p99_s);
        assert!((p.lag.max_s - 0.75).abs() < 1e-3);
        let decoded = servers::telemetry::histogram::decode(&p.lag.histogram).unwrap();
        assert_eq!(decoded.len(), 100);
        assert!(parse("not a metric line at all {", SystemTime::now()).is_err());
        assert!(
            parse("# TYPE up gauge\nup 1\n", SystemTime::now()).is_err(),
            "a server exposing none of the names has no figures"
        );
    }

    /// A two-process exposition whose last finite bucket fills between scrapes.
    fn exposition(slow: u64) -> String {
        let mut text = String::from("# TYPE server_event_loop_lag_seconds histogram\n");
        for process in [0, 1] {
            let label = format!("process=\"{process}\"");
            text.push_str(&format!(
                "server_event_loop_lag_seconds_bucket{{{label},le=\"0.01\"}} 10\n\
                 server_event_loop_lag_seconds_bucket{{{label},le=\"1\"}} {}\n\
                 server_event_loop_lag_seconds_bucket{{{label},le=\"+Inf\"}} {}\n\
                 server_uptime_seconds{{{label}}} {}\n",
                10 + slow * process,
                11 + slow * process,
                1.0 + slow as f64,
            ));
        }
        text
    }

    #[test]
    fn processes_keep_their_identity_and_snapshots_subtract() {
        let (before, after) = (
            parse(&exposition(0), SystemTime::now()).unwrap(),
            parse(&exposition(5), SystemTime::now()).unwrap(),
        );
        assert_eq!(before.processes.len(), 2);
        for (a, b) in before.processes.iter().zip(&after.processes) {
            assert_eq!((a.process, a.pid), (b.process, b.pid));
            assert_ne!(a.pid, 0);
            let decode = servers::telemetry::histogram::decode;
            let mut later = decode(&b.lag.histogram).unwrap();
            // The +Inf sample sits at the same value in both, wherever the finite
            // buckets have filled: the later snapshot minus the earlier works.
            later.subtract(decode(&a.lag.histogram).unwrap()).unwrap();
        }
        let second = &after.processes[1];
        assert_eq!(second.lag.count, 16);
    }

    #[test]
    fn reads_poll_timings_by_route_and_task() {
        let watch = pollwatch::PollWatch::new();
        let t0 = std::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let route = watch.source(pollwatch::SourceKind::Route, "/work/cpu");
        route.record(t0, t0 + ms(30));
        route.record(t0, t0 + ms(0));
        let task = watch.source(pollwatch::SourceKind::Task, "profile");
        task.record(t0, t0 + ms(700));
        let report = parse(&watch.prometheus(&[]), SystemTime::now()).unwrap();
        let polls = report.processes[0].polls.as_ref().unwrap();
        assert!((polls.threshold_s - 0.001).abs() < 1e-12);
        let find = |kind: &str| polls.sources.iter().find(|s| s.kind == kind).unwrap();
        let (r, t) = (find("route"), find("task"));
        assert_eq!(
            (r.name.as_str(), r.polls, r.long_polls),
            ("/work/cpu", 2, 1)
        );
        assert!((r.max_s - 0.03).abs() < 1e-9);
        assert_eq!((t.name.as_str(), t.polls, t.long_polls), ("profile", 1, 1));
        // The longest poll read back from the buckets: the upper bound of 700 ms's.
        let h = servers::telemetry::histogram::decode(t.histogram.as_ref().unwrap()).unwrap();
        assert!((1.0e9..1.01e9).contains(&(h.max() as f64)), "{}", h.max());
    }
}
