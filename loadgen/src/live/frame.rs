//! What the live page receives: one JSON object per event, tagged by `type`.

use serde::Serialize;

use crate::engine::IntervalRecord;

/// One event of a run, as the page reads it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// The run started: what it loads and for how long.
    Run {
        title: String,
        /// Warm-up plus measured time, in seconds.
        planned_s: f64,
        interval_s: f64,
        streams: Vec<String>,
    },
    /// One stream's interval closed.
    Interval {
        stream: String,
        /// From the start of measurement, in seconds.
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
    /// The frame of a closed interval.
    pub fn interval(record: &IntervalRecord<'_>) -> Frame {
        let seconds = record.length.as_secs_f64().max(f64::MIN_POSITIVE);
        let corrected = &record.corrected;
        let counts = &record.recorded.counts;
        Frame::Interval {
            stream: record.stream.to_owned(),
            start_s: record.start.as_secs_f64(),
            length_s: record.length.as_secs_f64(),
            p50_us: corrected.p50_us,
            p99_us: corrected.p99_us,
            max_us: corrected.max_us,
            throughput: counts.responses as f64 / seconds,
            sent_rate: counts.sent as f64 / seconds,
            target_rate: record.due.map(|due| due as f64 / seconds),
            errors: counts.errors(),
            in_window: record.in_window,
        }
    }
}
