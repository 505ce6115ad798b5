//! Turns a phase's samples into the per-interval server series of the report.
//! Everything the servers report is cumulative, so an interval's figures are the
//! difference of two snapshots of the same process (matched by pid): lag
//! histograms subtract exactly, busy time over the server's own elapsed time gives
//! the busy ratio. After failed scrapes, the next good one covers the whole gap.

use std::collections::BTreeMap;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use servers::telemetry::{MetricsReport, ProcessSnapshot};

use super::polls::PhasePolls;
use super::scraper::Sample;
use crate::stats::{decode, new_histogram, Percentiles};

/// What the server side looked like during one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerTelemetry {
    /// Scrapes attempted (0 when the server ran without telemetry).
    pub scrapes: u64,
    /// Failed scrapes by kind (`timeout`, `connection`, `status 404`, `unreadable`,
    /// `too large`).
    pub scrape_failures: BTreeMap<String, u64>,
    /// Event-loop lag over the phase (from the last snapshot at or before the start
    /// of measurement to the last one), in µs; `None` without two snapshots.
    pub lag: Option<Percentiles>,
    /// Highest lag seen in any interval, stalls still in progress at a scrape
    /// included, in µs.
    pub lag_max_us: Option<f64>,
    /// Share of the runtime workers' time spent busy over the phase.
    pub busy_ratio: Option<f64>,
    /// Highest client CPU use in one interval, in cores.
    pub client_cpu_max: f64,
    pub intervals: Vec<ServerInterval>,
    /// Per server process, the connections it accepted and the requests it served
    /// from the first good scrape of the phase to the last: how a shared accept
    /// queue or the kernel's hash spread the clients.
    #[serde(default)]
    pub traffic: Vec<ProcessTraffic>,
    /// Which routes and tasks polled long in the phase, and when; `None` when the
    /// server does not time its polls.
    #[serde(default)]
    pub polls: Option<PhasePolls>,
}

/// One server process's share of a phase's clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessTraffic {
    /// Its index in a multi-worker group (`None` for a single process).
    pub process: Option<usize>,
    pub connections_accepted: u64,
    pub requests: u64,
}

/// One interval (between two samples).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInterval {
    /// From the start of measurement, in seconds (negative during the warm-up).
    pub start_s: f64,
    pub length_s: f64,
    /// Client CPU use over the interval, in cores.
    pub client_cpu: f64,
    /// Server CPU use (all its processes), in cores.
    pub server_cpu: Option<f64>,
    /// How long the scrape at the end of the interval took, in ms.
    pub scrape_ms: Option<f64>,
    /// Why that scrape failed, if it did.
    pub scrape_error: Option<String>,
    /// The server's figures since the previous good scrape.
    pub server: Option<ServerFigures>,
}

impl ServerInterval {
    /// Whether the interval reaches into the measured part (it does not when it
    /// lies wholly in the warm-up).
    pub fn ends_in_measurement(&self) -> bool {
        self.start_s + self.length_s > 0.0
    }
}

/// Server figures between two snapshots, summed over its processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFigures {
    /// Server time covered, in seconds (longer than the interval after failed
    /// scrapes).
    pub span_s: f64,
    /// Lag probe wake-ups in the span.
    pub lag_samples: u64,
    pub lag_p99_us: f64,
    /// The largest lag recorded in the span, or the stall in progress at the scrape
    /// if that is larger.
    pub lag_max_us: f64,
    /// Busy time of all runtime workers over their time.
    pub busy_ratio: f64,
    /// Whether the server reports its workers' busy time at all (a Prometheus
    /// server of one's own may not: its ratio of 0 then means nothing).
    #[serde(default = "reported")]
    pub busy_reported: bool,
    pub alive_tasks: u64,
    pub global_queue_depth: u64,
    pub jobs_in_flight: u64,
    pub jobs_running: u64,
    pub jobs_queued: u64,
    pub jobs_rejected: u64,
    /// Processes in both snapshots (a multi-worker server reports each).
    pub processes: usize,
}

/// Reports written before `busy_reported` came from servers that report it.
fn reported() -> bool {
    true
}

impl ServerFigures {
    /// Whether the server reported any lag in the span (a probe's wake-ups, or a
    /// stall in progress); a server without a lag probe reports none.
    pub fn has_lag(&self) -> bool {
        self.lag_samples > 0 || self.lag_max_us > 0.0
    }
}

/// When a sample's figures were taken: its send time plus the time to answer.
pub(super) fn taken(s: &Sample) -> SystemTime {
    s.at + s.scrape_took
}

/// Seconds from `origin` to `t`, negative if `t` is earlier.
pub(super) fn offset(origin: SystemTime, t: SystemTime) -> f64 {
    match t.duration_since(origin) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// What changed between two reports of the same server, over the processes in both
/// (matched by pid).
struct Difference<'a> {
    lag: Histogram<u64>,
    /// Busy seconds of all runtime workers.
    busy_s: f64,
    /// Seconds the runtime workers existed (elapsed × workers).
    capacity_s: f64,
    /// Longest elapsed server time of a process.
    span_s: f64,
    /// (before, after) per process.
    pairs: Vec<(&'a ProcessSnapshot, &'a ProcessSnapshot)>,
}

impl Difference<'_> {
    /// Busy time is credited when a worker parks, so a stretch can land in a later
    /// interval: clamp what cannot be.
    fn busy_ratio(&self) -> f64 {
        (self.busy_s / self.capacity_s).min(1.0)
    }
}

fn difference<'a>(before: &'a MetricsReport, after: &'a MetricsReport) -> Option<Difference<'a>> {
    let mut d = Difference {
        lag: new_histogram(),
        busy_s: 0.0,
        capacity_s: 0.0,
        span_s: 0.0,
        pairs: Vec::new(),
    };
    let busy = |p: &ProcessSnapshot| p.runtime.busy_s.iter().sum::<f64>();
    for a in &after.processes {
        let Some(b) = before.processes.iter().find(|b| b.pid == a.pid) else {
            continue;
        };
        let elapsed = a.uptime_s - b.uptime_s;
        if elapsed <= 0.0 {
            continue;
        }
        let mut lag = decode(&a.lag.histogram).ok()?;
        lag.subtract(&decode(&b.lag.histogram).ok()?).ok()?;
        d.lag.add(&lag).ok()?;
        d.busy_s += (busy(a) - busy(b)).max(0.0);
        d.capacity_s += elapsed * a.runtime.workers.max(1) as f64;
        d.span_s = d.span_s.max(elapsed);
        d.pairs.push((b, a));
    }
    (!d.pairs.is_empty()).then_some(d)
}

/// The figures between two reports of the same server.
fn between(before: &MetricsReport, after: &MetricsReport) -> Option<ServerFigures> {
    let d = difference(before, after)?;
    let lag = Percentiles::of(&d.lag);
    let stall = d
        .pairs
        .iter()
        .map(|(_, a)| a.lag.stall_s)
        .fold(0.0, f64::max);
    let sum = |pick: fn(&ProcessSnapshot, &ProcessSnapshot) -> u64| -> u64 {
        d.pairs.iter().map(|(b, a)| pick(b, a)).sum()
    };
    Some(ServerFigures {
        span_s: d.span_s,
        lag_samples: lag.count,
        lag_p99_us: lag.p99_us,
        lag_max_us: lag.max_us.max(stall * 1e6),
        busy_ratio: d.busy_ratio(),
        busy_reported: d.pairs.iter().any(|(_, a)| !a.runtime.busy_s.is_empty()),
        alive_tasks: sum(|_, a| a.runtime.alive_tasks as u64),
        global_queue_depth: sum(|_, a| a.runtime.global_queue_depth as u64),
        jobs_in_flight: sum(|_, a| a.jobs.in_flight),
        jobs_running: sum(|_, a| a.jobs.running),
        jobs_queued: sum(|_, a| a.jobs.queued),
        jobs_rejected: sum(|b, a| a.jobs.rejected.saturating_sub(b.jobs.rejected)),
        processes: d.pairs.len(),
    })
}

/// The interval from sample `a` to sample `b` (`None` if they are not in
/// order), on an axis from `measured_from`; `last_good` is the last good report
/// before `b` (the server's figures are taken since it), and becomes `b`'s if
/// `b` is good. What `from_samples` does per pair, and what the scraper
/// publishes to the live page as each sample comes.
pub fn interval_between<'a>(
    a: &Sample,
    b: &'a Sample,
    last_good: &mut Option<&'a MetricsReport>,
    measured_from: SystemTime,
) -> Option<ServerInterval> {
    let length = b.at.duration_since(a.at).unwrap_or_default().as_secs_f64();
    if length <= 0.0 {
        return None;
    }
    let rate = |before: Option<std::time::Duration>, after: Option<std::time::Duration>| {
        Some(after?.saturating_sub(before?).as_secs_f64() / length)
    };
    let (server, scrape_error) = match &b.scrape {
        Some(Ok(report)) => {
            let figures = last_good.and_then(|before| between(before, report));
            *last_good = Some(report);
            (figures, None)
        }
        Some(Err(failure)) => (None, Some(failure.kind())),
        None => (None, None),
    };
    Some(ServerInterval {
        start_s: offset(measured_from, a.at),
        length_s: length,
        client_cpu: rate(Some(a.client_cpu), Some(b.client_cpu)).unwrap_or(0.0),
        server_cpu: rate(a.server_cpu, b.server_cpu),
        scrape_ms: b.scrape.as_ref().map(|_| b.scrape_took.as_secs_f64() * 1e3),
        scrape_error,
        server,
    })
}

impl ServerTelemetry {
    /// The series of `samples` (oldest first) for a phase whose measurement started
    /// at `measured_from` and lasted `measured_s`.
    pub fn from_samples(samples: &[Sample], measured_from: SystemTime) -> ServerTelemetry {
        let mut telemetry = ServerTelemetry::default();
        for s in samples {
            if let Some(scrape) = &s.scrape {
                telemetry.scrapes += 1;
                if let Err(failure) = scrape {
                    *telemetry.scrape_failures.entry(failure.kind()).or_default() += 1;
                }
            }
        }
        // The last good report so far, for the next interval's differences.
        let mut last_good: Option<&MetricsReport> = None;
        if let Some(Some(Ok(report))) = samples.first().map(|s| &s.scrape) {
            last_good = Some(report);
        }
        for pair in samples.windows(2) {
            if let Some(interval) =
                interval_between(&pair[0], &pair[1], &mut last_good, measured_from)
            {
                telemetry.client_cpu_max = telemetry.client_cpu_max.max(interval.client_cpu);
                telemetry.intervals.push(interval);
            }
        }
        telemetry.lag_max_us = telemetry
            .intervals
            .iter()
            .filter(|i| i.ends_in_measurement())
            .filter_map(|i| i.server.as_ref())
            .filter(|s| s.has_lag())
            .map(|s| s.lag_max_us)
            .reduce(f64::max);

        // The whole phase: from the last good report taken at or before the start
        // of measurement (else the first good one) to the last good one.
        let good: Vec<(&Sample, &MetricsReport)> = samples
            .iter()
            .filter_map(|s| match &s.scrape {
                Some(Ok(report)) => Some((s, report)),
                _ => None,
            })
            .collect();
        let start = good
            .iter()
            .rev()
            .find(|(s, _)| taken(s) <= measured_from)
            .or(good.first());
        if let (Some((_, first)), Some((_, last))) = (start, good.last()) {
            if let Some(whole) = difference(first, last) {
                // A server that exposes no lag probe or no worker busy time (a
                // Prometheus scrape of a server of one's own) has none to show.
                if !whole.lag.is_empty() {
                    telemetry.lag = Some(Percentiles::of(&whole.lag));
                }
                if whole
                    .pairs
                    .iter()
                    .any(|(_, a)| !a.runtime.busy_s.is_empty())
                {
                    telemetry.busy_ratio = Some(whole.busy_ratio());
                }
            }
        }
        // Traffic from the very first good scrape: the phase's connections are
        // opened just before its measurement starts.
        if let (Some((_, first)), Some((_, last))) = (good.first(), good.last()) {
            if let Some(whole) = difference(first, last) {
                let mut traffic: Vec<ProcessTraffic> = whole
                    .pairs
                    .iter()
                    .map(|(b, a)| ProcessTraffic {
                        process: a.process,
                        connections_accepted: a
                            .connections_accepted
                            .saturating_sub(b.connections_accepted),
                        requests: a.requests.saturating_sub(b.requests),
                    })
                    .collect();
                traffic.sort_by_key(|t| t.process);
                telemetry.traffic = traffic;
            }
        }
        telemetry.polls = PhasePolls::from_samples(samples, measured_from);
        telemetry
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use servers::telemetry::{JobFigures, LagFigures, RuntimeFigures};

    use super::*;
    use crate::stats::encode;
    use crate::telemetry::scraper::ScrapeFailure;

    /// A one-process report at `uptime_s` whose probe has seen `lags_ms`.
    fn report(uptime_s: f64, lags_ms: &[u64], busy_s: f64, rejected: u64) -> MetricsReport {
        let mut h = new_histogram();
        for ms in lags_ms {
            h.record(ms * 1_000_000).unwrap();
        }
        MetricsReport {
            schema_version: 1,
            variant: "test".into(),
            processes: vec![ProcessSnapshot {
                process: None,
                pid: 7,
                uptime_s,
                age_s: 0.0,
                lag: LagFigures {
                    count: h.len(),
                    sum_s: 0.0,
                    p50_s: 0.0,
                    p99_s: 0.0,
                    max_s: 0.0,
                    stall_s: 0.0,
                    histogram: encode(&h),
                },
                runtime: RuntimeFigures {
                    workers: 2,
                    busy_s: vec![busy_s, 0.0],
                    parks: vec![0, 0],
                    ..RuntimeFigures::default()
                },
                jobs: JobFigures {
                    rejected,
                    ..JobFigures::default()
                },
                connections_accepted: 0,
                requests: 0,
                connections_open: 0,
                connection_limit: 0,
                connection_limit_waits: 0,
                header_timeouts: 0,
                polls: None,
            }],
        }
    }

    fn sample(origin: SystemTime, s: f64, scrape: Result<MetricsReport, ScrapeFailure>) -> Sample {
        Sample {
            at: origin + Duration::from_secs_f64(s),
            client_cpu: Duration::from_secs_f64(s / 10.0),
            server_cpu: Some(Duration::from_secs_f64(s)),
            scrape: Some(scrape),
            scrape_took: Duration::ZERO,
        }
    }

    #[test]
    fn intervals_are_differences_and_a_gap_is_covered_by_the_next_scrape() {
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let samples = [
            sample(origin, 0.0, Ok(report(10.0, &[1, 1], 0.0, 0))),
            sample(origin, 1.0, Ok(report(11.0, &[1, 1, 1, 2], 1.0, 3))),
            sample(origin, 2.0, Err(ScrapeFailure::Timeout)),
            sample(origin, 3.0, Ok(report(13.0, &[1, 1, 1, 2, 900], 1.0, 3))),
        ];
        let t = ServerTelemetry::from_samples(&samples, origin);
        assert_eq!(t.scrapes, 4);
        assert_eq!(t.scrape_failures.get("timeout"), Some(&1));
        assert_eq!(t.intervals.len(), 3);

        let first = t.intervals[0].server.as_ref().unwrap();
        assert_eq!(first.lag_samples, 2, "only the new wake-ups");
        assert!((first.lag_max_us - 2_000.0).abs() < 5.0, "{first:?}");
        // 1 s busy of 2 workers × 1 s.
        assert!((first.busy_ratio - 0.5).abs() < 1e-9);
        assert_eq!(first.jobs_rejected, 3);
        assert!((t.intervals[0].server_cpu.unwrap() - 1.0).abs() < 1e-9);
        assert!((t.intervals[0].client_cpu - 0.1).abs() < 1e-9);

        assert!(t.intervals[1].server.is_none());
        assert_eq!(t.intervals[1].scrape_error.as_deref(), Some("timeout"));

        // The scrape after the gap covers both seconds and sees the 900 ms stall.
        let after = t.intervals[2].server.as_ref().unwrap();
        assert!((after.span_s - 2.0).abs() < 1e-9);
        assert!(after.lag_max_us >= 900_000.0);
        assert_eq!(after.busy_ratio, 0.0);

        let whole = t.lag.unwrap();
        assert_eq!(whole.count, 3);
        assert!(t.lag_max_us.unwrap() >= 900_000.0);
        assert!((t.busy_ratio.unwrap() - 1.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn traffic_is_counted_per_process_over_the_phase() {
        // Two processes: the first accepted 90 connections during the phase, the
        // second 10; a third process seen only at the end is left out.
        let at = |uptime_s: f64, counts: [(u64, u64); 2]| {
            let mut r = report(uptime_s, &[1], 0.0, 0);
            let one = r.processes[0].clone();
            r.processes = counts
                .iter()
                .enumerate()
                .map(|(i, &(connections, requests))| {
                    let mut p = one.clone();
                    p.process = Some(i);
                    p.pid = 10 + i as u32;
                    p.connections_accepted = connections;
                    p.requests = requests;
                    p
                })
                .collect();
            r
        };
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut last = at(2.0, [(95, 900), (12, 300)]);
        let mut newcomer = last.processes[1].clone();
        newcomer.pid = 99;
        newcomer.process = Some(2);
        last.processes.push(newcomer);
        let samples = [
            sample(origin, 0.0, Ok(at(0.0, [(5, 0), (2, 0)]))),
            sample(origin, 1.0, Ok(at(1.0, [(50, 400), (6, 100)]))),
            sample(origin, 2.0, Ok(last)),
        ];
        let t = ServerTelemetry::from_samples(&samples, origin + Duration::from_millis(500));
        let shares: Vec<(Option<usize>, u64, u64)> = t
            .traffic
            .iter()
            .map(|p| (p.process, p.connections_accepted, p.requests))
            .collect();
        assert_eq!(shares, [(Some(0), 90, 900), (Some(1), 10, 300)]);
    }
}
