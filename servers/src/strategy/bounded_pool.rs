//! Admission control in front of a CPU-sized pool: the answer a careful engineer
//! ships for CPU-heavy requests. Three ingredients, each with a switch so the
//! README's ablation can show what it buys:
//!
//! - **A pool of one thread per core**, so overload queues instead of
//!   oversubscribing the cores (as `rayon`).
//! - **Lower scheduling priority for the pool's threads** ([`PoolPriority`],
//!   `SCHED_IDLE` by default): when the event loop thread wakes up, the kernel
//!   runs it before a pool thread, so a request that needs no heavy work is
//!   answered sooner even with every core computing. Measured on 2 shared cores
//!   at 1.5× overload (six rounds of `loadgen run --ablation`, median [range]):
//!   probe p99 about 1 ms at `SCHED_IDLE` or `nice` 19 (0.46–1.48 ms and
//!   0.31–2.24 ms), against 1.5–3.3 ms at normal priority, with the same work
//!   done; the two low priorities cannot be told apart there. `SCHED_IDLE`, the
//!   stronger, is the default; its price: on a machine whose other processes keep
//!   every core busy, the pool gets almost nothing.
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
    /// `nice` 19 on each pool thread: the lowest weight the fair scheduler gives;
    /// a woken event loop thread still waits for the scheduler to preempt a pool
    /// thread, less often than at normal priority.
    Nice,
    /// `SCHED_IDLE`: the pool runs only when nothing else on the core wants to
    /// (the default).
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

    /// Folds one finished job's actual length into the slowdown (a moving
    /// average over about eight jobs, updated atomically as threads finish
    /// together). Only ever ≥ 1: a job cannot run faster than on a free core.
    fn record(&self, estimated_ns: u64, took: Duration) {
        if estimated_ns == 0 {
            return;
        }
        let ratio = (took.as_nanos() as f64 / estimated_ns as f64).clamp(1.0, 64.0);
        let sample = ratio * 1024.0;
        let _ = self
            .slowdown_x1024
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old as f64 + (sample - old as f64) / 8.0).round() as u64)
            });
    }
}

/// Work run on a pool of low-priority threads behind a latency budget.
pub struct BoundedPool {
    sender: Sender<Queued>,
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
            sender,
            shared,
            threads: threads.max(1),
            budget,
            calibration,
        })
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
        if !report.skipped() {
            shared.record(cost_ns, report.computed);
        }
        shared.outstanding_ns.fetch_sub(cost_ns, Ordering::Relaxed);
        // The receiver is gone if the client hung up; nothing to do then.
        let _ = reply.send(report);
    }
}

impl BoundedPool {
    /// Admits `work` of `cost_ns` by adding it to the outstanding work, in one
    /// atomic step, if the work already outstanding lets it start within the
    /// budget; two requests arriving together cannot both take the last room.
    fn admit(&self, work: &Work, cost_ns: u64) -> Result<(), Rejection> {
        let slowdown = self.shared.slowdown();
        let threads = self.threads as f64;
        let wait_of = |outstanding: u64| {
            Duration::from_nanos((outstanding as f64 * slowdown / threads) as u64)
        };
        let admitted = self.shared.outstanding_ns.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |outstanding| match self.budget {
                Some(budget) if wait_of(outstanding) > budget => None,
                _ => Some(outstanding + cost_ns),
            },
        );
        match (admitted, self.budget) {
            (Ok(_), _) | (Err(_), None) => Ok(()),
            (Err(outstanding), Some(budget)) => Err(Rejection::QueueFull {
                capacity: self.capacity_for(budget, work.estimated_cost(&self.calibration)),
                // Room opens once the work ahead has shrunk to the budget.
                retry_after: wait_of(outstanding).saturating_sub(budget),
            }),
        }
    }
}

impl Strategy for BoundedPool {
    fn submit(&self, job: Job) -> JobFuture {
        match self.try_submit(job) {
            Ok(running) => running,
            Err(rejection) => Box::pin(std::future::ready(Err(rejection))),
        }
    }

    fn try_submit(&self, job: Job) -> Result<JobFuture, Rejection> {
        let cost_ns = job.work.estimated_cost(&self.calibration).as_nanos() as u64;
        self.admit(&job.work, cost_ns)?;
        let (reply, result) = oneshot::channel();
        self.sender
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
        Ok(Box::pin(async move {
            result.await.map_err(|_| Rejection::WorkerLost)
        }))
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
                // 120 ms of work ahead, 100 ms of budget: room in about 20 ms.
                assert!(
                    retry_after > Duration::ZERO && retry_after <= Duration::from_millis(20),
                    "{retry_after:?}"
                );
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
