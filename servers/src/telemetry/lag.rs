//! The event-loop lag probe, tokio's counterpart of Node's `monitorEventLoopDelay`:
//! a task that asks to wake every few milliseconds and records how late it actually
//! woke. A runtime thread stuck in a job cannot poll the probe (nor, with tokio's
//! shared timer driver, often anything else), so the lateness is exactly how long
//! ready work waited on this runtime.
//!
//! tokio's timer fires on millisecond ticks, so an idle runtime still shows up to
//! about 1 ms of lag: that is the probe's floor, not a stall.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::histogram::{encode, new_histogram};

/// How often the probe asks to wake.
pub const PERIOD: Duration = Duration::from_millis(5);

/// What the probe has seen since the process started.
struct Recorded {
    histogram: Histogram<u64>,
    sum_ns: u64,
}

/// The probe's shared state: written by the probe task, read by whoever reports.
pub struct LagProbe {
    recorded: Mutex<Recorded>,
    /// When the probe's pending wake-up is due, in ns from `origin`; 0 when it is not
    /// waiting. Lets a reader on another thread see a stall while it is still going on.
    due_ns: AtomicU64,
    origin: Instant,
}

/// The probe's figures, cumulative since the process started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LagFigures {
    /// Wake-ups recorded.
    pub count: u64,
    pub sum_s: f64,
    pub p50_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    /// How overdue the pending wake-up is right now: a stall still in progress,
    /// which the histogram only records once it ends.
    pub stall_s: f64,
    /// The whole distribution in ns (see [`super::histogram`]); subtract two
    /// snapshots to get the lag of the time between them.
    pub histogram: String,
}

impl LagProbe {
    /// A probe that has not started.
    pub fn new() -> Arc<LagProbe> {
        Arc::new(LagProbe {
            recorded: Mutex::new(Recorded {
                histogram: new_histogram(),
                sum_ns: 0,
            }),
            due_ns: AtomicU64::new(0),
            origin: Instant::now(),
        })
    }

    /// Runs the probe on the runtime of `handle` until the runtime shuts down.
    pub fn start(self: &Arc<Self>, handle: &tokio::runtime::Handle) {
        let probe = Arc::clone(self);
        handle.spawn(async move {
            loop {
                let due = Instant::now() + PERIOD;
                probe
                    .due_ns
                    .store(probe.ns_since_origin(due), Ordering::Relaxed);
                tokio::time::sleep_until(due.into()).await;
                let late = due.elapsed();
                probe.due_ns.store(0, Ordering::Relaxed);
                probe.record(late);
            }
        });
    }

    fn ns_since_origin(&self, t: Instant) -> u64 {
        // Never 0, which means "not waiting".
        (t.saturating_duration_since(self.origin).as_nanos() as u64).max(1)
    }

    fn record(&self, late: Duration) {
        let ns = late.as_nanos().min(u64::MAX as u128) as u64;
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        recorded.histogram.saturating_record(ns);
        recorded.sum_ns = recorded.sum_ns.saturating_add(ns);
    }

    /// How overdue the pending wake-up is now (zero if none is overdue).
    pub fn stall(&self) -> Duration {
        let due = self.due_ns.load(Ordering::Relaxed);
        let now = self.ns_since_origin(Instant::now());
        if due == 0 || now <= due {
            Duration::ZERO
        } else {
            Duration::from_nanos(now - due)
        }
    }

    /// The figures so far.
    pub fn figures(&self) -> LagFigures {
        let stall = self.stall();
        let recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        let h = &recorded.histogram;
        let s = |ns: u64| ns as f64 / 1e9;
        LagFigures {
            count: h.len(),
            sum_s: s(recorded.sum_ns),
            p50_s: s(h.value_at_quantile(0.5)),
            p99_s: s(h.value_at_quantile(0.99)),
            max_s: s(h.max()),
            stall_s: stall.as_secs_f64(),
            histogram: encode(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_lateness_and_sees_a_stall_in_progress() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let probe = LagProbe::new();
        probe.start(runtime.handle());
        runtime.block_on(async {
            tokio::time::sleep(PERIOD * 10).await;
            // Block the only thread: the probe cannot run meanwhile.
            std::thread::sleep(Duration::from_millis(150));
            // The pending wake-up is overdue by most of the block.
            assert!(
                probe.stall() >= Duration::from_millis(100),
                "{:?}",
                probe.stall()
            );
            tokio::time::sleep(PERIOD * 4).await;
        });
        let figures = probe.figures();
        assert!(figures.count >= 5, "{figures:?}");
        assert!(figures.max_s >= 0.1, "{figures:?}");
        assert!(figures.p50_s < 0.05, "{figures:?}");
        assert!(figures.sum_s >= figures.max_s);
    }
}
