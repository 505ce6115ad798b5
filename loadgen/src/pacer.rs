//! Open-loop pacing: when each request is due, and a thread that releases requests
//! at their due times.
//!
//! Request k of a stream is due at `start + k / rate` (or, with stages, where the
//! integrated rate reaches k: [`crate::stages`]), fixed before the run starts and
//! never moved by what the server does. That fixed schedule is what makes the
//! coordinated-omission correction possible: latency is measured from the due time,
//! so a request that could not be sent because every connection was stuck waiting on
//! a slow server still pays for the wait.
//!
//! Releasing is done by a task on the runtime that sleeps on a [`PreciseTimer`]
//! (a timerfd: nanosecond resolution, no timer slack) rather than tokio's timer,
//! whose millisecond granularity would make a 1 ms lateness threshold meaningless,
//! and rather than a thread of its own, whose wake-ups cost a second wake-up of a
//! runtime worker per release. Each due request adds one permit to a semaphore;
//! connection tasks take a permit, then claim the next request number.
//!
//! The release granularity (`tick`) trades lateness for CPU: with a tick of zero
//! every request is released at its own due time, one wake-up each below a few
//! thousand per second; with a tick, the pacer sleeps at least that long between
//! releases and releases everything due by then together (wrk2 ticks every 1 ms),
//! so a request can be up to a tick late but one wake-up serves many.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::precise_timer::PreciseTimer;
use crate::stages::RateProfile;
use crate::stats::new_histogram;

/// Longest single sleep of the pacing task, so it notices a stop request quickly.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Far enough ahead to mean never, near enough not to overflow an [`Instant`].
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The due times of an open-loop stream: a constant rate, or a [`RateProfile`]
/// of stages.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    rates: Rates,
}

/// What a schedule's due times follow.
#[derive(Debug, Clone)]
enum Rates {
    /// The common case, computed without a profile.
    Constant(f64),
    Staged(Arc<RateProfile>),
}

impl Schedule {
    pub fn new(start: Instant, rate: f64) -> Self {
        Schedule {
            start,
            rates: Rates::Constant(rate),
        }
    }

    /// Due times that follow `profile` from `start`.
    pub fn with_profile(start: Instant, profile: RateProfile) -> Self {
        let rates = match profile.constant_rate() {
            Some(rate) => Rates::Constant(rate),
            None => Rates::Staged(Arc::new(profile)),
        };
        Schedule { start, rates }
    }

    /// When request `k` (counting from 0) is due; for a profile that ends at rate
    /// zero, requests past its last are due at a time that never comes.
    pub fn due(&self, k: u64) -> Instant {
        let offset = match &self.rates {
            Rates::Constant(rate) => Duration::from_secs_f64(k as f64 / rate),
            Rates::Staged(profile) => profile.due_s(k).map_or(NEVER, |s| {
                Duration::from_secs_f64(s.min(NEVER.as_secs_f64()))
            }),
        };
        self.start + offset
    }

    /// Requests due by `offset` into the run, not rounded.
    fn count_by(&self, offset: Duration) -> f64 {
        let t = offset.as_secs_f64();
        match &self.rates {
            Rates::Constant(rate) => t * rate,
            Rates::Staged(profile) => profile.count_by(t),
        }
    }

    /// How many requests are due strictly before `offset` into the run.
    pub fn due_before(&self, offset: Duration) -> u64 {
        let n = self.count_by(offset).ceil() as u64;
        // Guard against rounding: request n is due at or after `offset`.
        if n > 0 && self.due(n - 1) >= self.start + offset {
            n - 1
        } else {
            n
        }
    }
}

/// Releases due requests of one stream to its connection tasks.
pub struct Pacer {
    /// One permit per request that is due and not yet taken by a connection.
    pub permits: Arc<Semaphore>,
    /// Requests it will release in all.
    total: u64,
    /// The pacing task; it returns how many requests it released and how late it
    /// released them.
    task: JoinHandle<(u64, Histogram<u64>)>,
}

impl Pacer {
    /// Starts releasing requests `0..total` of `schedule` at their due times, at
    /// most one release per `tick` (zero: each at its own due time), until done or
    /// `stop` is set, recording how late it released those due from `record_from`
    /// on (its own lateness: the machine's, not the server's). Must be called in a
    /// tokio runtime. Whoever runs the connection tasks closes [`Pacer::permits`]
    /// to end them: the pacer cannot know when the last released request has been
    /// taken.
    pub fn start(
        schedule: Schedule,
        total: u64,
        record_from: Instant,
        tick: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Pacer> {
        let permits = Arc::new(Semaphore::new(0));
        let timer = PreciseTimer::new()?;
        let task = {
            let permits = Arc::clone(&permits);
            tokio::spawn(async move {
                let mut k = 0u64;
                let mut lateness = new_histogram();
                // The last release; the next comes no sooner than a tick after it.
                let mut released_at: Option<Instant> = None;
                while k < total && !stop.load(Ordering::Relaxed) {
                    let mut wake = schedule.due(k);
                    if let Some(at) = released_at {
                        wake = wake.max(at + tick);
                    }
                    let now = Instant::now();
                    if wake > now {
                        if timer.sleep((wake - now).min(STOP_CHECK)).await.is_err() {
                            // A timerfd that fails to re-arm: fall back to tokio's
                            // (coarser) timer rather than spin or stop.
                            tokio::time::sleep((wake - now).min(STOP_CHECK)).await;
                        }
                        continue;
                    }
                    // Release everything due by now in one go.
                    let mut n = 1;
                    while k + n < total && schedule.due(k + n) <= now {
                        n += 1;
                    }
                    permits.add_permits(n as usize);
                    for due in (k..k + n).map(|j| schedule.due(j)) {
                        if due >= record_from {
                            let late = now.saturating_duration_since(due);
                            lateness.saturating_record(late.as_nanos() as u64);
                        }
                    }
                    k += n;
                    released_at = Some(now);
                    if k < total && schedule.due(k) <= Instant::now() && tick.is_zero() {
                        // Behind schedule: let the connection tasks on this worker
                        // run before releasing more.
                        tokio::task::yield_now().await;
                    }
                }
                (k, lateness)
            })
        };
        Ok(Pacer {
            permits,
            total,
            task,
        })
    }

    /// Requests it will release in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Waits for the pacing task to finish (it has been told to stop, or is done)
    /// and returns how many requests it released and how late (from `record_from`).
    pub async fn join(self) -> (u64, Histogram<u64>) {
        self.task.await.unwrap_or_else(|_| (0, new_histogram()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_the_rate() {
        let start = Instant::now();
        let s = Schedule::new(start, 100.0);
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(1) - start, Duration::from_millis(10));
        assert_eq!(s.due(250) - start, Duration::from_millis(2500));
        // Fractional rates: one every 4 seconds.
        let slow = Schedule::new(start, 0.25);
        assert_eq!(slow.due(3) - start, Duration::from_secs(12));
    }

    #[test]
    fn counts_requests_due_before_an_offset() {
        let s = Schedule::new(Instant::now(), 100.0);
        assert_eq!(s.due_before(Duration::ZERO), 0);
        assert_eq!(s.due_before(Duration::from_millis(1)), 1);
        assert_eq!(s.due_before(Duration::from_millis(10)), 1);
        assert_eq!(s.due_before(Duration::from_millis(11)), 2);
        assert_eq!(s.due_before(Duration::from_secs(2)), 200);
        let third = Schedule::new(Instant::now(), 3.0);
        assert_eq!(third.due_before(Duration::from_secs(1)), 3);
    }

    #[tokio::test]
    async fn pacer_releases_on_schedule() {
        let start = Instant::now();
        let pacer = Pacer::start(
            Schedule::new(start, 1000.0),
            50,
            start,
            Duration::ZERO,
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        let permits = Arc::clone(&pacer.permits);
        let (released, lateness) = pacer.join().await;
        assert_eq!(released, 50);
        assert_eq!(lateness.len(), 50, "each release's lateness recorded");
        // The last request is due 49 ms in; releasing them all cannot take less.
        assert!(start.elapsed() >= Duration::from_millis(49));
        assert_eq!(permits.available_permits(), 50);
    }

    #[tokio::test]
    async fn a_tick_releases_in_batches_at_most_once_per_tick() {
        // 1,000/s for 60 ms with a 20 ms tick: after each release the next comes
        // no sooner than 20 ms later, so a request due 1 ms after a release waits
        // at least 19 ms, and all 60 are still released, none early.
        let start = Instant::now();
        let pacer = Pacer::start(
            Schedule::new(start, 1000.0),
            60,
            start,
            Duration::from_millis(20),
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        let (released, lateness) = pacer.join().await;
        assert_eq!(released, 60);
        assert!(
            lateness.max() >= Duration::from_millis(19).as_nanos() as u64,
            "max lateness {} ns",
            lateness.max()
        );
        assert!(start.elapsed() >= Duration::from_millis(59));
    }

    #[tokio::test]
    async fn pacer_stops_when_told() {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let pacer = Pacer::start(
            Schedule::new(start, 10.0),
            1_000,
            start,
            Duration::ZERO,
            Arc::clone(&stop),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        stop.store(true, Ordering::Relaxed);
        let (released, _) = pacer.join().await;
        assert!((1..100).contains(&released), "{released}");
    }
}
