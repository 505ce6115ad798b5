//! Admission control in front of a CPU-sized pool: the answer a careful engineer
//! ships for CPU-heavy requests. Three ingredients, each with a switch so the
//! README's ablation can show what it buys:
//!
//! - **A pool of one thread per core**, so overload queues instead of
//!   oversubscribing the cores (as `rayon`).
//! - **Lower scheduling priority for the pool's threads** ([`PoolPriority`],
//!   `SCHED_IDLE` by default): when the event loop thread wakes up, the kernel
//!   runs it before a pool thread, so a request that needs no heavy work is
//!   answered at once even with every core computing. Measured on 2 shared cores
//!   at 1.5× overload (three rounds of `loadgen run --ablation`): probe p99 0.46
//!   ms at `SCHED_IDLE`, 2.1 ms at `nice` 19, 2.6 ms at normal priority, with the
//!   same work done. The price of `SCHED_IDLE`: on a machine where other
//!   processes keep every core busy, the pool gets almost nothing.
//! - **A bound on the queue, from a latency budget** (`--queue-budget`): a job is
//!   admitted only if the work already accepted (queued and running, by the
//!   calibration, scaled by how much slower than calibrated jobs have actually
//!   run) would let it start within the budget on the pool's threads; otherwise
//!   it is refused at once with 503 and a `Retry-After` of that wait. The bound is
//!   in time, not in jobs: `budget × threads ÷ job cost` jobs when all are the same
//!   size, and right for mixed sizes too. Accepted requests then take at most
//!   about the budget plus their own length, instead of queueing until clients
//!   time out (as on `rayon`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{JobFuture, Rejection, Strategy};
use crate::workload::{Calibration, Job, JobReport, Work};

/// The scheduling priority of the pool's threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum PoolPriority {
    /// The same as the event loop's (the ablation's "priority off").
    Normal,
    /// `nice` 19 on each pool thread: the lowest weight the fair scheduler gives,
    /// so a woken event loop thread preempts a pool thread at once.
    Nice,
    /// `SCHED_IDLE`: the pool runs only when nothing else on the core wants to
    /// (the default: the lowest probe latency measured, the same work done).
    Idle,
}

impl PoolPriority {
    /// Applies the priority to the calling thread (Linux sets `nice` per thread).
    fn apply(self) -> std::io::Result<()> {
        // SAFETY: plain system calls on the calling thread with valid arguments.
        let failed = unsafe {
            match self {
                PoolPriority::Normal => return Ok(()),
                PoolPriority::Nice => libc::setpriority(libc::PRIO_PROCESS, 0, 19) != 0,
                PoolPriority::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0
                }
            }
        };
        if failed {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

struct Queued {
    job: Job,
    /// The job's estimated cost in nanoseconds, counted in `outstanding_ns`.
    cost_ns: u64,
    reply: oneshot::Sender<JobReport>,
}

/// What the handlers and the pool's threads share.
struct Shared {
    /// Estimated cost of the work accepted and not finished (queued and running).
    outstanding_ns: AtomicU64,
    /// How much longer than estimated jobs actually take (wall-clock over the
    /// calibration, ×1024, a moving average; 1024 means as calibrated).
    slowdown_x1024: AtomicU64,
}

impl Shared {
    fn slowdown(&self) -> f64 {
        self.slowdown_x1024.load(Ordering::Relaxed) as f64 / 1024.0
    }

    /// Folds one finished job's actual length into the slowdown. Only ever ≥ 1:
    /// a job cannot run faster than on a free core.
    fn record(&self, estimated_ns: u64, took: Duration) {
        if estimated_ns == 0 {
            return;
        }
        let ratio = (took.as_nanos() as f64 / estimated_ns as f64).clamp(1.0, 64.0);
        let sample = (ratio * 1024.0) as u64;
        let old = self.slowdown_x1024.load(Ordering::Relaxed);
        self.slowdown_x1024
            .store(old - old / 8 + sample / 8, Ordering::Relaxed);
    }
}

/// Work run on a pool of low-priority threads behind a latency budget.
pub struct BoundedPool {
    sender: Mutex<Sender<Queued>>,
    shared: Arc<Shared>,
    threads: usize,
    /// Longest a job may wait to start; `None` admits everything (ablation).
    budget: Option<Duration>,
    calibration: Calibration,
}

impl BoundedPool {
    /// Starts `threads` threads at `priority`, admitting jobs that can start
    /// within `budget` (everything when `None`).
    pub fn new(
        threads: usize,
        priority: PoolPriority,
        budget: Option<Duration>,
        calibration: Calibration,
    ) -> anyhow::Result<Self> {
        let (sender, receiver) = channel::<Queued>();
        let receiver = Arc::new(Mutex::new(receiver));
        let shared = Arc::new(Shared {
            outstanding_ns: AtomicU64::new(0),
            slowdown_x1024: AtomicU64::new(1024),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            let shared = Arc::clone(&shared);
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("pool-{i}"))
                .spawn(move || {
                    let _ = ready.send(priority.apply());
                    drop(ready);
                    work_forever(&receiver, &shared);
                })?;
        }
        drop(ready_tx);
        // Every thread says whether it could lower its priority before serving starts.
        for outcome in ready_rx {
            outcome
                .map_err(|e| anyhow::anyhow!("cannot set the pool's priority {priority:?}: {e}"))?;
        }
        Ok(BoundedPool {
            sender: Mutex::new(sender),
            shared,
            threads: threads.max(1),
            budget,
            calibration,
        })
    }

    /// How long work accepted now would wait before a thread is free for it.
    fn expected_wait(&self) -> Duration {
        let outstanding = self.shared.outstanding_ns.load(Ordering::Relaxed) as f64;
        Duration::from_nanos((outstanding * self.shared.slowdown() / self.threads as f64) as u64)
    }

    /// How many jobs of `cost` the budget holds: the bound as a count, for messages.
    fn capacity_for(&self, budget: Duration, cost: Duration) -> usize {
        let per_job = cost.as_secs_f64() * self.shared.slowdown();
        ((budget.as_secs_f64() * self.threads as f64) / per_job.max(1e-9)).floor() as usize
    }
}

/// One pool thread: runs jobs until the server shuts down (every sender gone).
fn work_forever(receiver: &Mutex<Receiver<Queued>>, shared: &Shared) {
    loop {
        // The lock is held only while waiting for the next job, never while one runs.
        let next = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(Queued {
            job,
            cost_ns,
            reply,
        }) = next
        else {
            return;
        };
        let report = job.run();
        shared.record(cost_ns, report.computed);
        shared.outstanding_ns.fetch_sub(cost_ns, Ordering::Relaxed);
        // The receiver is gone if the client hung up; nothing to do then.
        let _ = reply.send(report);
    }
}

impl Strategy for BoundedPool {
    fn admission(&self, work: &Work) -> Result<(), Rejection> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        let wait = self.expected_wait();
        if wait <= budget {
            return Ok(());
        }
        Err(Rejection::QueueFull {
            capacity: self.capacity_for(budget, work.estimated_cost(&self.calibration)),
            // Whole seconds are all `Retry-After` carries; the client is told when
            // the work ahead of it will be done.
            retry_after: wait,
        })
    }

    fn submit(&self, job: Job) -> JobFuture {
        let admitted = self.admission(&job.work).and_then(|()| {
            let cost_ns = job.work.estimated_cost(&self.calibration).as_nanos() as u64;
            let (reply, result) = oneshot::channel();
            self.shared
                .outstanding_ns
                .fetch_add(cost_ns, Ordering::Relaxed);
            let sender = self.sender.lock().map_err(|_| Rejection::WorkerLost)?;
            sender
                .send(Queued {
                    job,
                    cost_ns,
                    reply,
                })
                .map_err(|_| {
                    self.shared
                        .outstanding_ns
                        .fetch_sub(cost_ns, Ordering::Relaxed);
                    Rejection::WorkerLost
                })?;
            Ok(result)
        });
        Box::pin(async move { admitted?.await.map_err(|_| Rejection::WorkerLost) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn pool(budget: Option<Duration>) -> BoundedPool {
        BoundedPool::new(
            1,
            PoolPriority::Normal,
            budget,
            Calibration {
                ns_per_unit: 1_000_000.0,
            },
        )
        .unwrap()
    }

    fn sleep_job(ms: u64) -> Job {
        Job::new(Work::Io {
            duration: Duration::from_millis(ms),
        })
    }

    #[tokio::test]
    async fn admits_within_the_budget_and_refuses_beyond_it() {
        // One thread, 100 ms budget, 60 ms jobs: the first runs, the second waits
        // 60 ms (admitted), the third would wait 120 ms (refused).
        let pool = pool(Some(Duration::from_millis(100)));
        let first = pool.submit(sleep_job(60));
        let second = pool.submit(sleep_job(60));
        let third = pool.submit(sleep_job(60)).await;
        match third {
            Err(Rejection::QueueFull {
                capacity,
                retry_after,
            }) => {
                assert_eq!(capacity, 1);
                assert!(retry_after > Duration::from_millis(100), "{retry_after:?}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(first.await.is_ok());
        assert!(second.await.is_ok());
        // Once the work is done there is room again.
        assert!(pool.submit(sleep_job(1)).await.is_ok());
    }

    #[tokio::test]
    async fn without_a_budget_everything_queues() {
        let pool = pool(None);
        let started = Instant::now();
        let jobs: Vec<_> = (0..5).map(|_| pool.submit(sleep_job(20))).collect();
        for job in jobs {
            assert!(job.await.is_ok());
        }
        // One thread ran them one after another.
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn a_slow_job_raises_the_slowdown_and_a_fast_one_never_lowers_it_below_one() {
        let shared = Shared {
            outstanding_ns: AtomicU64::new(0),
            slowdown_x1024: AtomicU64::new(1024),
        };
        shared.record(1_000_000, Duration::from_millis(3));
        assert!(shared.slowdown() > 1.2, "{}", shared.slowdown());
        for _ in 0..200 {
            shared.record(1_000_000, Duration::from_micros(10));
        }
        assert!(
            (shared.slowdown() - 1.0).abs() < 0.01,
            "{}",
            shared.slowdown()
        );
    }

    #[test]
    fn every_priority_can_be_taken_by_an_unprivileged_thread() {
        for priority in [PoolPriority::Normal, PoolPriority::Nice, PoolPriority::Idle] {
            std::thread::spawn(move || priority.apply())
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{priority:?}: {e}"));
        }
    }
}
