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
//!   (gauge); read with their quotes and escapes (a route `/jobs/{id}` holds a
//!   brace), which `prometheus-parse` does not do. The text format has no list
//!   of individual long polls, so these give figures per phase but no marks on
//!   a timeline.
//!
//! Parsing is `prometheus-parse`'s, except for the poll families (above).

use std::collections::BTreeMap;
use std::time::SystemTime;

use prometheus_parse::{Sample, Scrape, Value};

use servers::telemetry::polls::SourcePolls;
use servers::telemetry::runtime::RuntimeFigures;
use servers::telemetry::{JobFigures, LagFigures, MetricsReport, PollFigures, ProcessSnapshot};

/// The lag histogram's family.
const LAG: &str = "server_event_loop_lag_seconds";

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
    };
    let mut polls = poll_figures(text);
    for process in polls.keys() {
        processes.entry(*process).or_default();
    }
    if polls.is_empty() && !scrape.samples.iter().any(|s| known(&s.metric)) {
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
            .map(|(process, samples)| {
                let mut snapshot = snapshot(process, &samples, wall);
                snapshot.polls = polls.remove(&process);
                snapshot
            })
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
            Value::Histogram(buckets) if s.metric == LAG => Some(bucket_histogram(
                &buckets
                    .iter()
                    .map(|b| (b.less_than, b.count))
                    .collect::<Vec<_>>(),
            )),
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
            skipped_abandoned: count("server_jobs_skipped_abandoned_total"),
        },
        connections_accepted: count("server_connections_accepted_total"),
        requests: count("server_requests_total"),
        connections_open: count("server_connections_open"),
        connection_limit: count("server_connections_max"),
        connection_limit_waits: count("server_connection_limit_waits_total"),
        header_timeouts: count("server_header_timeouts_total"),
        polls: None,
    }
}

/// One bucket of a Prometheus histogram: its upper bound (seconds) and the
/// cumulative count up to it.
struct Bucket {
    less_than: f64,
    count: f64,
}

/// A sample's labels, in order: (name, value).
type Labels = Vec<(String, String)>;

/// One sample line of the text format: name, labels, value. Label values are
/// read with their quotes and escapes (a route such as `/jobs/{id}` holds a
/// brace, a task name may hold a comma or a quote), which `prometheus-parse`
/// does not do.
fn sample_line(line: &str) -> Option<(&str, Labels, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inside) = rest.trim_start().strip_prefix('{') {
        let mut chars = inside.char_indices().peekable();
        loop {
            while chars
                .next_if(|(_, c)| c.is_whitespace() || *c == ',')
                .is_some()
            {}
            let (at, c) = chars.next()?;
            if c == '}' {
                rest = &inside[at + 1..];
                break;
            }
            let mut key = String::from(c);
            while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                key.push(c);
            }
            chars.next()?; // '='
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.push((key.trim().to_owned(), value));
        }
    }
    // Rust's parser reads `+Inf`, `-Inf` and `NaN` as the format writes them.
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// The samples of [`pollwatch`]'s families that carry a route or task.
enum PollFamily {
    Bucket,
    Sum,
    Max,
    Long,
}

/// The poll figures per process (`process` label) and per `route` or `task`
/// label, from the families [`pollwatch`] writes; empty when there are none.
fn poll_figures(text: &str) -> BTreeMap<Option<usize>, PollFigures> {
    type Key = (Option<usize>, String, String);
    let mut buckets: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    let mut sources: BTreeMap<Key, SourcePolls> = BTreeMap::new();
    let mut thresholds: BTreeMap<Option<usize>, f64> = BTreeMap::new();
    for (name, labels, value) in text.lines().filter_map(sample_line) {
        let label = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let process = label("process").and_then(|p| p.parse().ok());
        if name == "server_long_poll_threshold_seconds" {
            thresholds.insert(process, value);
            continue;
        }
        let family = match name {
            "server_poll_duration_seconds_bucket" => PollFamily::Bucket,
            "server_poll_duration_seconds_sum" => PollFamily::Sum,
            "server_poll_duration_max_seconds" => PollFamily::Max,
            "server_long_polls_total" => PollFamily::Long,
            _ => continue,
        };
        let Some((kind, source)) = ["route", "task"]
            .into_iter()
            .find_map(|kind| Some((kind, label(kind)?)))
        else {
            continue;
        };
        let key = (process, kind.to_owned(), source.to_owned());
        let entry = sources.entry(key.clone()).or_insert_with(|| SourcePolls {
            kind: kind.to_owned(),
            name: source.to_owned(),
            polls: 0,
            long_polls: 0,
            max_s: 0.0,
            max_ended_s: None,
            sum_s: 0.0,
            histogram: None,
            buckets_only: true,
        });
        let count = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        match family {
            PollFamily::Bucket => {
                let le = match label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => le.parse().unwrap_or(f64::NAN),
                    None => f64::NAN,
                };
                if !le.is_nan() {
                    buckets.entry(key).or_default().push((le, count));
                }
            }
            PollFamily::Sum => entry.sum_s = count,
            PollFamily::Max => entry.max_s = count,
            PollFamily::Long => entry.long_polls = count as u64,
        }
    }
    let mut figures: BTreeMap<Option<usize>, PollFigures> = BTreeMap::new();
    for (key, mut source) in sources {
        // A source is one only with its histogram: other families with a
        // `route` label are some other exporter's.
        let Some(buckets) = buckets.get(&key) else {
            continue;
        };
        let h = bucket_histogram(buckets);
        source.polls = h.len();
        source.histogram = Some(servers::telemetry::histogram::encode(&h));
        figures
            .entry(key.0)
            .or_insert_with(|| PollFigures {
                threshold_s: thresholds.get(&key.0).copied().unwrap_or(0.0),
                ..PollFigures::default()
            })
            .sources
            .push(source);
    }
    figures
}

/// A Prometheus histogram's buckets (upper bound in seconds, cumulative count)
/// as an HdrHistogram in ns: each bucket's own samples recorded at its upper
/// bound, the `+Inf` bucket's at twice the last finite bound.
fn bucket_histogram(buckets: &[(f64, f64)]) -> hdrhistogram::Histogram<u64> {
    let mut histogram = servers::telemetry::histogram::new_histogram();
    let mut buckets: Vec<Bucket> = buckets
        .iter()
        .map(|&(less_than, count)| Bucket { less_than, count })
        .collect();
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
    fn route_patterns_and_task_names_survive_the_text_format() {
        let watch = pollwatch::PollWatch::new();
        let t0 = std::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        for (kind, name) in [
            (pollwatch::SourceKind::Route, "/jobs/{id}"),
            (pollwatch::SourceKind::Task, "say \"hi\",x=1 \\ {}"),
        ] {
            watch.source(kind, name).record(t0, t0 + ms(3));
        }
        let text = watch.prometheus(&[("process", "1".into())]);
        let report = parse(&text, SystemTime::now()).unwrap();
        assert_eq!(report.processes.len(), 1);
        assert_eq!(report.processes[0].process, Some(1));
        let polls = report.processes[0].polls.as_ref().unwrap();
        let names: Vec<(&str, &str, u64)> = polls
            .sources
            .iter()
            .map(|s| (s.kind.as_str(), s.name.as_str(), s.long_polls))
            .collect();
        assert_eq!(
            names,
            [
                ("route", "/jobs/{id}", 1),
                ("task", "say \"hi\",x=1 \\ {}", 1)
            ]
        );
    }

    #[test]
    fn sample_lines_with_spaces_timestamps_and_odd_values_are_read() {
        let line = |l: &str| sample_line(l).map(|(n, labels, v)| (n.to_owned(), labels, v));
        let (name, labels, value) = line("m {a = \"x, y}\", b=\"\"} +Inf 1700000000").unwrap();
        assert_eq!(name, "m");
        assert_eq!(
            labels,
            [
                ("a".to_owned(), "x, y}".to_owned()),
                ("b".to_owned(), String::new())
            ]
        );
        assert!(value.is_infinite());
        assert!(line("m 3").is_some_and(|(_, l, v)| l.is_empty() && v == 3.0));
        for bad in [
            "m{a=\"x\" 1",
            "m{a=x} 1",
            "m{a=\"x\\",
            "m{a} 1",
            "m{a=\"x\"}",
            "# HELP m x",
            "",
        ] {
            assert!(line(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn other_families_with_a_route_label_are_not_poll_timings() {
        let text = "# TYPE http_requests_total counter\nhttp_requests_total{route=\"/x\"} 5\n\
            # TYPE server_requests_total counter\nserver_requests_total 5\n";
        let report = parse(text, SystemTime::now()).unwrap();
        assert!(report.processes[0].polls.is_none());
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
        assert!(t.buckets_only);
        let h = servers::telemetry::histogram::decode(t.histogram.as_ref().unwrap()).unwrap();
        assert!((1.0e9..1.01e9).contains(&(h.max() as f64)), "{}", h.max());
    }
}
