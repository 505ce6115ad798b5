//! The open-loop driver shared by request streams ([`crate::engine`]) and job
//! submissions ([`crate::background_jobs`]): a pacing task releases request k at
//! `start + k / rate` ([`crate::pacer`]); whichever connection task is free takes
//! the next released request, with its number and due time. Latency counts from
//! the due time, so a request that waited for a free connection pays for the wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::pacer::{Pacer, Schedule};

/// Time between setting up connections and the first due request.
pub const START_DELAY: Duration = Duration::from_millis(5);

/// Hands an open-loop stream's due requests to its connection tasks.
pub struct OpenLoop {
    schedule: Schedule,
    /// One permit per request released and not yet taken.
    permits: Arc<Semaphore>,
    /// Request numbers taken by connection tasks so far.
    claimed: AtomicU64,
    /// Requests numbered at or past this are not handed out.
    limit: AtomicU64,
    /// Requests the pacer will release in all.
    total: u64,
}

impl OpenLoop {
    /// Starts releasing requests `0..total` of `schedule` at their due times, at
    /// most once per `tick` (zero: each at its own due time), until done or `stop`
    /// is set; the pacer records its own lateness for requests due from
    /// `record_from`. The pacing task is returned to be joined by whoever ends the
    /// loop.
    pub fn start(
        schedule: Schedule,
        total: u64,
        record_from: Instant,
        tick: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<(Arc<OpenLoop>, Pacer)> {
        let pacer = Pacer::start(schedule.clone(), total, record_from, tick, stop)?;
        let open_loop = OpenLoop {
            schedule,
            permits: Arc::clone(&pacer.permits),
            claimed: AtomicU64::new(0),
            limit: AtomicU64::new(total),
            total,
        };
        Ok((Arc::new(open_loop), pacer))
    }

    /// Waits for the next released request and takes it: its number and due time.
    /// `None` once the loop has ended.
    pub async fn next(&self) -> Option<(u64, Instant)> {
        let permit = self.permits.acquire().await.ok()?;
        permit.forget();
        let k = self.claimed.fetch_add(1, Ordering::Relaxed);
        (k < self.limit.load(Ordering::Relaxed)).then(|| (k, self.schedule.due(k)))
    }

    /// Ends the loop now: waiting tasks get `None`, and requests released but not
    /// taken stay unsent.
    pub fn close(&self) {
        self.permits.close();
    }

    /// Ends the loop once the `released` requests are taken (the pacer stopped after
    /// releasing them), waking the `waiters` tasks that may be waiting for more.
    pub fn end_after(&self, released: u64, waiters: usize) {
        self.limit.store(released, Ordering::Relaxed);
        self.permits.add_permits(waiters);
    }

    /// Requests taken so far. Tasks woken at the end also claim a number, past the
    /// limit, and get `None`; those are not counted.
    pub fn claimed(&self) -> u64 {
        let limit = self.limit.load(Ordering::Relaxed);
        self.claimed.load(Ordering::Relaxed).min(limit)
    }

    /// Requests the pacer will release in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_out_each_request_once_in_order_then_ends() {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let (open_loop, pacer) = OpenLoop::start(
            Schedule::new(start, 1_000.0),
            5,
            start,
            Duration::ZERO,
            stop,
        )
        .unwrap();
        let mut taken = Vec::new();
        for _ in 0..5 {
            let (k, due) = open_loop.next().await.unwrap();
            assert_eq!(due, start + Duration::from_millis(k));
            taken.push(k);
        }
        assert_eq!(taken, [0, 1, 2, 3, 4]);
        let (released, lateness) = pacer.join().await;
        assert_eq!((released, lateness.len()), (5, 5));
        open_loop.end_after(5, 1);
        assert_eq!(
            open_loop.next().await,
            None,
            "nothing past the released five"
        );
        assert_eq!(open_loop.claimed(), 5);
    }

    #[tokio::test]
    async fn a_loop_ended_early_counts_only_what_was_taken() {
        // The pacer stops after releasing 3 of 10; three waiting tasks are woken.
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let (open_loop, pacer) = OpenLoop::start(
            Schedule::new(start, 1_000.0),
            10,
            start,
            Duration::ZERO,
            Arc::clone(&stop),
        )
        .unwrap();
        for _ in 0..3 {
            open_loop.next().await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let (released, _) = pacer.join().await;
        open_loop.end_after(released.min(3), 3);
        for _ in 0..3 {
            assert_eq!(open_loop.next().await, None);
        }
        assert_eq!(open_loop.claimed(), 3, "the wake-ups are not claims");
    }

    #[tokio::test]
    async fn close_ends_waiting_tasks() {
        let stop = Arc::new(AtomicBool::new(false));
        let later = Instant::now() + Duration::from_secs(60);
        let (open_loop, pacer) = OpenLoop::start(
            Schedule::new(later, 1.0),
            10,
            later,
            Duration::ZERO,
            Arc::clone(&stop),
        )
        .unwrap();
        let waiter = {
            let open_loop = Arc::clone(&open_loop);
            tokio::spawn(async move { open_loop.next().await })
        };
        open_loop.close();
        assert_eq!(waiter.await.unwrap(), None);
        stop.store(true, Ordering::Relaxed);
        let (released, _) = pacer.join().await;
        assert_eq!(released, 0);
    }
}
