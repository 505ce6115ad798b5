//! What one stream records: latency histograms (corrected and uncorrected), send
//! lateness, and counts of every outcome, for the current interval. The engine rolls
//! the interval over once per interval and merges it into the run's totals, so memory
//! stays the same however long the run lasts.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::client::Failure;
use crate::stats::new_histogram;

/// A request sent more than this long after its due time counts as late.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(1);

/// How one request went.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it should have been sent (open loop), or when it was sent (closed loop).
    pub due: Instant,
    pub sent: Instant,
    pub done: Instant,
    pub result: Result<StatusCode, Failure>,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests sent (or attempted) whose outcome is known.
    pub sent: u64,
    /// Responses received, any status.
    pub responses: u64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub status_1xx: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Of the 5xx: 503 Service Unavailable, a server shedding load on purpose.
    #[serde(default)]
    pub status_503: u64,
    pub connect_errors: u64,
    pub timeouts: u64,
    pub io_errors: u64,
    /// Still unanswered when the run stopped waiting at its end.
    #[serde(default)]
    pub abandoned: u64,
    /// Answered with a body larger than loadgen keeps (only where it keeps
    /// bodies: job submissions and status polls).
    #[serde(default)]
    pub too_large: u64,
    /// HTTP/2: requests whose stream the server reset (RST_STREAM).
    #[serde(default)]
    pub resets: u64,
    /// HTTP/2: requests in flight when the server sent GOAWAY.
    #[serde(default)]
    pub goaways: u64,
    /// Open loop: sent more than [`LATE_THRESHOLD`] after the due time.
    pub late: u64,
}

impl Counts {
    /// Requests that failed: no response, or a 4xx/5xx response.
    pub fn errors(&self) -> u64 {
        self.connect_errors
            + self.timeouts
            + self.io_errors
            + self.abandoned
            + self.too_large
            + self.resets
            + self.goaways
            + self.status_4xx
            + self.status_5xx
    }

    /// Adds `o` to these counts.
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.responses += o.responses;
        self.status_1xx += o.status_1xx;
        self.status_2xx += o.status_2xx;
        self.status_3xx += o.status_3xx;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.status_503 += o.status_503;
        self.connect_errors += o.connect_errors;
        self.timeouts += o.timeouts;
        self.io_errors += o.io_errors;
        self.abandoned += o.abandoned;
        self.too_large += o.too_large;
        self.resets += o.resets;
        self.goaways += o.goaways;
        self.late += o.late;
    }
}

/// Histograms and counts over some span of the run.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Latency from the due time to the end of the response (coordinated-omission
    /// corrected). Closed loop: the same as `uncorrected`.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send to the end of the response.
    pub uncorrected: Histogram<u64>,
    /// Open loop: actual send time minus due time.
    pub lateness: Histogram<u64>,
    /// A stream that opens a new connection per request: how long each connect
    /// took (made on the first one recorded, so keep-alive streams carry none).
    pub connect: Option<Histogram<u64>>,
    /// Time to first byte: from the moment each answered request could be
    /// written (after any connect) to its response's first byte; from the send,
    /// not the due time (the wait for a connection is in `corrected`).
    pub first_byte: Option<Histogram<u64>>,
    pub counts: Counts,
}

impl Default for Recorded {
    fn default() -> Self {
        Recorded {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            lateness: new_histogram(),
            connect: None,
            first_byte: None,
            counts: Counts::default(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

impl Recorded {
    /// Records one request. A timed-out or abandoned request is recorded at the
    /// moment it was given up: its real latency is at least that, and leaving it
    /// out would hide exactly the tail a stalled server produces. Connect and I/O
    /// failures are counted but add no latency (they fail fast, and a fast failure
    /// is not a fast response).
    pub fn record(&mut self, s: &Sample, open_loop: bool) {
        let c = &mut self.counts;
        c.sent += 1;
        let lateness = s.sent.saturating_duration_since(s.due);
        if open_loop {
            self.lateness.saturating_record(nanos(lateness));
            if lateness > LATE_THRESHOLD {
                c.late += 1;
            }
        }
        match s.result {
            Ok(status) => {
                c.responses += 1;
                match status.as_u16() / 100 {
                    1 => c.status_1xx += 1,
                    2 => c.status_2xx += 1,
                    3 => c.status_3xx += 1,
                    4 => c.status_4xx += 1,
                    _ => c.status_5xx += 1,
                }
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    c.status_503 += 1;
                }
                self.record_latency(s);
            }
            Err(Failure::Connect) => c.connect_errors += 1,
            Err(Failure::Timeout) => {
                c.timeouts += 1;
                self.record_latency(s);
            }
            Err(Failure::Abandoned) => {
                c.abandoned += 1;
                self.record_latency(s);
            }
            Err(Failure::Io) => c.io_errors += 1,
            Err(Failure::TooLarge) => c.too_large += 1,
            Err(Failure::Reset) => c.resets += 1,
            Err(Failure::GoAway) => c.goaways += 1,
        }
    }

    /// Records how long a new connection took to open (the handshake, done when the
    /// kernel has it: a stuck server's accept queue does not show here).
    pub fn record_connect(&mut self, took: Duration) {
        self.connect
            .get_or_insert_with(new_histogram)
            .saturating_record(nanos(took));
    }

    /// Records one answered request's time to first byte.
    pub fn record_first_byte(&mut self, took: Duration) {
        self.first_byte
            .get_or_insert_with(new_histogram)
            .saturating_record(nanos(took));
    }

    fn record_latency(&mut self, s: &Sample) {
        self.corrected
            .saturating_record(nanos(s.done.saturating_duration_since(s.due)));
        self.uncorrected
            .saturating_record(nanos(s.done.saturating_duration_since(s.sent)));
    }

    /// Records a request that fell due at `due` but was never sent, given up at
    /// `given_up`: corrected latency only, as a lower bound (it was never sent, so
    /// it has no uncorrected latency).
    pub fn record_unsent(&mut self, due: Instant, given_up: Instant) {
        self.corrected
            .saturating_record(nanos(given_up.saturating_duration_since(due)));
    }

    /// Adds everything in `other` (histogram merging is exact).
    pub fn merge(&mut self, other: &Recorded) {
        // Same bounds on both sides, so adding cannot fail.
        self.corrected.add(&other.corrected).expect("same bounds");
        self.uncorrected
            .add(&other.uncorrected)
            .expect("same bounds");
        self.lateness.add(&other.lateness).expect("same bounds");
        for (mine, theirs) in [
            (&mut self.connect, &other.connect),
            (&mut self.first_byte, &other.first_byte),
        ] {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(new_histogram)
                    .add(theirs)
                    .expect("same bounds");
            }
        }
        self.counts.add(&other.counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        due_ms: u64,
        sent_ms: u64,
        done_ms: u64,
        result: Result<StatusCode, Failure>,
    ) -> Sample {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        Sample {
            due: at(due_ms),
            sent: at(sent_ms),
            done: at(done_ms),
            result,
        }
    }

    #[test]
    fn corrected_latency_counts_from_the_due_time() {
        let mut r = Recorded::default();
        r.record(&sample(0, 100, 110, Ok(StatusCode::OK)), true);
        assert_eq!(r.corrected.max() / 1_000_000, 110);
        assert_eq!(r.uncorrected.max() / 1_000_000, 10);
        assert_eq!(r.counts.late, 1);
        r.record(&sample(0, 0, 5, Ok(StatusCode::OK)), true);
        assert_eq!(r.counts.late, 1, "on time is not late");
    }

    #[test]
    fn counts_every_kind_of_outcome() {
        let mut r = Recorded::default();
        for result in [
            Ok(StatusCode::OK),
            Ok(StatusCode::NOT_FOUND),
            Ok(StatusCode::SERVICE_UNAVAILABLE),
            Err(Failure::Connect),
            Err(Failure::Timeout),
            Err(Failure::Io),
        ] {
            r.record(&sample(0, 0, 1, result), false);
        }
        let c = r.counts;
        assert_eq!(
            (
                c.sent,
                c.responses,
                c.status_2xx,
                c.status_4xx,
                c.status_5xx
            ),
            (6, 3, 1, 1, 1)
        );
        assert_eq!((c.connect_errors, c.timeouts, c.io_errors), (1, 1, 1));
        assert_eq!(c.status_503, 1);
        assert_eq!(c.errors(), 5);
        assert_eq!(
            r.corrected.len(),
            4,
            "responses and timeouts have a latency"
        );
        assert_eq!(r.lateness.len(), 0, "closed loop records no lateness");
        let mut total = Recorded::default();
        total.merge(&r);
        total.merge(&r);
        assert_eq!(total.counts.sent, 12);
        assert_eq!(total.corrected.len(), 8);
    }
}
