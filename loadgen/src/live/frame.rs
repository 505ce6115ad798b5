//! What the live page receives: one JSON object per event, tagged by `type`. The
//! frozen report (`report.html`) holds the same frames, made from the report
//! ([`super::replay`]), so the page draws a finished run as it drew it live.

use serde::Serialize;

use crate::engine::IntervalRecord;
use crate::report::stream::IntervalReport;
use crate::report::VariantStatus;
use crate::telemetry::ServerInterval;

/// Which command the frames come from: a `bench` has one section of streams, a
/// `run` one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bench,
    Run,
}

/// One event of a run, as the page reads it. Times are seconds on the
/// section's axis: from the start of measurement for a `bench`; for a variant
/// of a `run`, its phases' measured windows laid end to end (as the timeline
/// charts lay them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// The run started: what it loads and for how long.
    Run {
        kind: Kind,
        title: String,
        /// Warm-up plus measured time, in seconds (every variant's, for a run).
        planned_s: f64,
        interval_s: f64,
        streams: Vec<String>,
        /// A run's variants, in the order they run.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        variants: Vec<String>,
    },
    /// A run's variant starts a phase; the intervals that follow are its.
    Phase {
        variant: String,
        phase: String,
        /// Where the phase's measured window starts on the variant's axis.
        at_s: f64,
        /// Whether the phase carries the heavy load.
        loaded: bool,
    },
    /// One stream's interval closed.
    Interval {
        stream: String,
        start_s: f64,
        length_s: f64,
        /// Corrected latency (from the due time), in µs, as the report has it.
        p50_us: f64,
        p99_us: f64,
        max_us: f64,
        /// Responses per second.
        throughput: f64,
        /// Requests whose outcome was recorded, per second.
        sent_rate: f64,
        /// Open loop: requests the schedule made due, per second.
        target_rate: Option<f64>,
        errors: u64,
        /// False for the drain's interval (completions after the measured
        /// window, often over a few ms: its rates say nothing of the load).
        in_window: bool,
    },
    /// The server's own figures over one telemetry sample (when scraped).
    Server {
        start_s: f64,
        length_s: f64,
        /// Event-loop lag over the sample, in µs.
        lag_p99_us: Option<f64>,
        lag_max_us: Option<f64>,
        /// Share of the runtime workers' time spent busy.
        busy_ratio: Option<f64>,
        /// Server CPU (all its processes), in cores.
        server_cpu: Option<f64>,
        /// Why the scrape failed (a server too blocked to answer says so here).
        #[serde(skip_serializing_if = "Option::is_none")]
        scrape_error: Option<String>,
    },
    /// A run's variant finished (or failed): the comparison so far, of its
    /// round (variants by their own names).
    Comparison {
        variant: String,
        status: VariantStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The summary table of the variants finished so far, ranked as the
        /// report ranks them.
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        /// Probe p99 under load per finished variant, in µs, ranked (`None`:
        /// not measured).
        bars: Vec<(String, Option<f64>)>,
    },
    /// The run ended: `finished`, `interrupted` or `failed` (with why).
    End {
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// How a run ended, as the page says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Finished,
    Interrupted,
    Failed,
}

impl Frame {
    /// The `run` frame of a `bench` of `streams` against `title` (its URL).
    pub fn bench_run(title: &str, planned_s: f64, interval_s: f64, streams: Vec<String>) -> Frame {
        Frame::Run {
            kind: Kind::Bench,
            title: title.to_owned(),
            planned_s,
            interval_s,
            streams,
            variants: Vec::new(),
        }
    }

    /// The frame of an interval just closed, `offset_s` along the section's
    /// axis: made from its report, as the frozen page's are.
    pub fn interval(record: &IntervalRecord<'_>, offset_s: f64) -> Frame {
        Frame::reported_interval(
            record.stream,
            &IntervalReport::of(record.interval),
            record.interval.in_window,
            offset_s,
        )
    }

    /// The frame of a reported interval of `stream`, `offset_s` along the
    /// section's axis; `in_window` is false for the drain's.
    pub fn reported_interval(
        stream: &str,
        interval: &IntervalReport,
        in_window: bool,
        offset_s: f64,
    ) -> Frame {
        Frame::Interval {
            stream: stream.to_owned(),
            start_s: offset_s + interval.start_s,
            length_s: interval.length_s,
            p50_us: interval.corrected.p50_us,
            p99_us: interval.corrected.p99_us,
            max_us: interval.corrected.max_us,
            throughput: interval.throughput,
            sent_rate: interval.sent_rate,
            target_rate: interval.target_rate,
            errors: interval.errors,
            in_window,
        }
    }

    /// The frame of one telemetry interval, `offset_s` along the section's axis.
    pub fn server(interval: &ServerInterval, offset_s: f64) -> Frame {
        let figures = interval.server.as_ref();
        let lag = figures.filter(|f| f.has_lag());
        // A server that reports no worker busy time (a Prometheus scrape of
        // another server) reports a ratio of 0 over no capacity: none to show.
        Frame::Server {
            start_s: offset_s + interval.start_s,
            length_s: interval.length_s,
            lag_p99_us: lag.map(|f| f.lag_p99_us),
            lag_max_us: lag.map(|f| f.lag_max_us),
            busy_ratio: figures.filter(|f| f.busy_reported).map(|f| f.busy_ratio),
            server_cpu: interval.server_cpu,
            scrape_error: interval.scrape_error.clone(),
        }
    }
}
