//! What one stream measured, as every report carries it: counts, rates, latency
//! percentiles (corrected first), the full histograms and the interval series.

use serde::{Deserialize, Serialize};

use crate::engine::{IntervalOutcome, StreamOutcome};
use crate::plan::Load;
use crate::recorder::Counts;
use crate::stages::Stage;
pub use crate::stats::EncodedHistograms;
use crate::stats::{decode, Percentiles};

/// How a stream decided when to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    /// At a fixed rate, whatever the server does.
    Open,
    /// Back to back on each connection.
    Closed,
}

/// What one stream measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamReport {
    pub name: String,
    pub method: String,
    pub path: String,
    pub mode: StreamMode,
    pub connections: usize,
    /// Open loop: requests per second asked for (with stages, on average over
    /// the measured time).
    pub target_rate: Option<f64>,
    /// Open loop: the stages the rate followed, ramping from `start_rate`;
    /// absent when the rate was constant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// With stages: the rate they started from (held through the warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_rate: Option<f64>,
    /// Length of the measured part in seconds.
    pub measured_s: f64,
    /// Requests sent per second.
    pub achieved_rate: f64,
    /// Responses (any status) completed inside the measured window, per second.
    pub throughput: f64,
    /// 2xx responses completed inside the measured window, per second.
    pub ok_throughput: f64,
    pub counts: Counts,
    /// The outcomes that completed inside the measured window (not during the
    /// drain): what throughput counts.
    #[serde(default)]
    pub in_window: Option<Counts>,
    /// Open loop: due in the measured part but never sent (no free connection);
    /// in the corrected latency as lower bounds.
    pub unsent: u64,
    pub latency: Latency,
    /// Open loop: send time minus due time.
    pub lateness: Option<Percentiles>,
    /// Open loop: how late the pacer itself released requests (the client
    /// machine's part of `lateness`; the rest is waiting for a free connection).
    #[serde(default)]
    pub pacer_lateness: Option<Percentiles>,
    /// A stream of new connections: how long each took to connect (the kernel
    /// completes the handshake before the server accepts, so a stuck accept loop
    /// shows in the latency, and only an overflowing accept queue here).
    #[serde(default)]
    pub connect: Option<Percentiles>,
    /// Connections opened before the clock: how long each took to set up (TCP
    /// connect plus any TLS handshake), apart from request latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Percentiles>,
    /// Time to first byte of the answered requests: from when each could be
    /// written (after any connect) to its response's first byte.
    #[serde(default, rename = "ttfb")]
    pub first_byte: Option<Percentiles>,
    /// Full distributions, HdrHistogram V2 compressed and base64-encoded, in ns.
    pub histograms: EncodedHistograms,
    pub intervals: Vec<IntervalReport>,
}

/// Corrected (from the due time) first, then uncorrected (from the send time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

/// One interval of the time series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalReport {
    /// From the start of measurement, in seconds.
    pub start_s: f64,
    pub length_s: f64,
    pub responses: u64,
    pub errors: u64,
    /// Responses per second in this interval.
    pub throughput: f64,
    /// Requests whose outcome was recorded in this interval, per second: the
    /// achieved rate, beside the target. Counted by completion, so a request due
    /// late in one interval and answered in the next counts in the next; the two
    /// rates differ by about one latency's worth of requests per interval.
    #[serde(default)]
    pub sent_rate: f64,
    /// Open loop: requests the schedule made due in this interval, per second.
    #[serde(default)]
    pub target_rate: Option<f64>,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
    /// The interval's full histograms, kept when the run was started with
    /// `--start-at` (what `loadgen merge` adds, interval by interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<EncodedHistograms>,
    /// False for the drain's interval (what completed after the measured
    /// window); `None` in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_window: Option<bool>,
}

impl IntervalReport {
    /// The report of one closed interval (also what the live page is sent of
    /// it, so the two agree by construction).
    pub fn of(i: &IntervalOutcome) -> IntervalReport {
        let seconds = i.length.as_secs_f64().max(f64::MIN_POSITIVE);
        IntervalReport {
            start_s: i.start.as_secs_f64(),
            length_s: i.length.as_secs_f64(),
            responses: i.counts.responses,
            errors: i.counts.errors(),
            throughput: i.counts.responses as f64 / seconds,
            sent_rate: i.counts.sent as f64 / seconds,
            target_rate: i.due.map(|due| due as f64 / seconds),
            corrected: i.corrected,
            uncorrected: i.uncorrected,
            histograms: i.histograms.clone(),
            in_window: Some(i.in_window),
        }
    }

    /// Whether the interval lies in the measured window of a stream measured
    /// for `measured_s` (not the drain's); reports written before the engine's
    /// own flag was kept say so by where the interval starts.
    pub fn is_in_window(&self, measured_s: f64) -> bool {
        self.in_window.unwrap_or(self.start_s < measured_s)
    }
}

impl StreamReport {
    /// Of the corrected latencies recorded, how many exceeded `threshold_ns`, and
    /// how many there were (`None` if the histogram cannot be read).
    pub fn count_above(&self, threshold_ns: u64) -> Option<(u64, u64)> {
        let h = decode(&self.histograms.corrected).ok()?;
        let total = h.len();
        Some((total - h.count_between(0, threshold_ns).min(total), total))
    }

    /// Summarises one stream's outcome; `measured` is the measured length.
    pub fn from_outcome(outcome: &StreamOutcome, measured: std::time::Duration) -> StreamReport {
        let stream = &outcome.stream;
        let total = &outcome.total;
        let seconds = measured.as_secs_f64().max(f64::MIN_POSITIVE);
        let open = matches!(stream.load, Load::Open { .. });
        StreamReport {
            name: stream.name.clone(),
            method: stream.method.to_string(),
            path: stream.path.clone(),
            mode: if open {
                StreamMode::Open
            } else {
                StreamMode::Closed
            },
            connections: stream.load.connections(),
            target_rate: match (stream.stages.is_empty(), outcome.due) {
                (false, Some(due)) => Some(due as f64 / seconds),
                _ => stream.load.rate(),
            },
            stages: stream.stages.clone(),
            start_rate: (!stream.stages.is_empty())
                .then(|| stream.load.rate())
                .flatten(),
            measured_s: measured.as_secs_f64(),
            achieved_rate: total.counts.sent as f64 / seconds,
            throughput: outcome.in_window.responses as f64 / seconds,
            ok_throughput: outcome.in_window.status_2xx as f64 / seconds,
            counts: total.counts,
            in_window: Some(outcome.in_window),
            unsent: outcome.unsent,
            latency: Latency {
                corrected: Percentiles::of(&total.corrected),
                uncorrected: Percentiles::of(&total.uncorrected),
            },
            lateness: open.then(|| Percentiles::of(&total.lateness)),
            pacer_lateness: outcome.pacer_lateness,
            connect: total.connect.as_ref().map(Percentiles::of),
            setup: outcome.setup,
            first_byte: total.first_byte.as_ref().map(Percentiles::of),
            histograms: EncodedHistograms::of(&total.corrected, &total.uncorrected),
            intervals: outcome.intervals.iter().map(IntervalReport::of).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{encode, new_histogram};

    #[test]
    fn counts_the_latencies_above_a_threshold() {
        // 90 fast new clients and 10 that waited behind a 20 ms job.
        let mut h = new_histogram();
        for _ in 0..90 {
            h.record(300_000).unwrap();
        }
        for _ in 0..10 {
            h.record(25_000_000).unwrap();
        }
        let encoded = encode(&h);
        let report: StreamReport = serde_json::from_value(serde_json::json!({
            "name": "fresh", "method": "GET", "path": "/health", "mode": "open",
            "connections": 16, "target_rate": 200.0, "measured_s": 3.0,
            "achieved_rate": 200.0, "throughput": 200.0, "ok_throughput": 200.0,
            "counts": Counts::default(), "unsent": 0,
            "latency": { "corrected": Percentiles::of(&h), "uncorrected": Percentiles::of(&h) },
            "lateness": null,
            "histograms": { "corrected": encoded, "uncorrected": encoded },
            "intervals": [],
        }))
        .unwrap();
        assert_eq!(report.count_above(10_000_000), Some((10, 100)));
        assert_eq!(report.count_above(30_000_000), Some((0, 100)));
        assert_eq!(report.count_above(0), Some((100, 100)));
    }
}
