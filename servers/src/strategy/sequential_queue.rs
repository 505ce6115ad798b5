//! A bounded queue drained one job at a time by one dedicated thread: the "buffer the
//! jobs and process them one by one while the server stays responsive" answer. The
//! event loop never runs a job; when the queue is full a request is refused at once
//! (503 with `Retry-After`) rather than left waiting without bound.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{JobFuture, Rejection, Strategy};
use crate::workload::{Job, JobReport};

struct Queued {
    job: Job,
    reply: oneshot::Sender<JobReport>,
}

/// Counters shared between the handlers and the queue's thread.
#[derive(Default)]
struct QueueStats {
    /// Jobs accepted and not yet finished (queued plus the one running).
    backlog: AtomicUsize,
    /// Exponentially weighted mean job duration in nanoseconds, for `Retry-After`.
    mean_job_ns: AtomicU64,
}

/// Jobs queued (up to a capacity) and run one at a time on a dedicated thread.
pub struct SequentialQueue {
    sender: SyncSender<Queued>,
    capacity: usize,
    stats: Arc<QueueStats>,
}

impl SequentialQueue {
    /// Starts the queue's thread; at most `capacity` jobs wait besides the one running.
    pub fn new(capacity: usize) -> anyhow::Result<Self> {
        let (sender, receiver) = sync_channel::<Queued>(capacity);
        let stats = Arc::new(QueueStats::default());
        let thread_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("sequential-queue".into())
            .spawn(move || {
                // Ends when every sender is gone, i.e. when the server shuts down.
                for Queued { job, reply } in receiver {
                    let report = job.run();
                    if !report.skipped() {
                        thread_stats.record_duration(report.computed);
                    }
                    thread_stats.backlog.fetch_sub(1, Ordering::Relaxed);
                    let _ = reply.send(report);
                }
            })?;
        Ok(SequentialQueue {
            sender,
            capacity,
            stats,
        })
    }

    /// Jobs accepted and not yet finished.
    pub fn backlog(&self) -> usize {
        self.stats.backlog.load(Ordering::Relaxed)
    }
}

impl QueueStats {
    fn record_duration(&self, took: Duration) {
        let sample = took.as_nanos().min(u64::MAX as u128) as u64;
        let old = self.mean_job_ns.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.mean_job_ns.store(new, Ordering::Relaxed);
    }

    /// How long until the queue has room again, by the mean job length; whole seconds
    /// because that is what `Retry-After` carries, and never less than one.
    fn retry_after(&self) -> Duration {
        let backlog = self.backlog.load(Ordering::Relaxed) as u64;
        let ns = self
            .mean_job_ns
            .load(Ordering::Relaxed)
            .saturating_mul(backlog);
        Duration::from_secs(ns.div_ceil(1_000_000_000).max(1))
    }
}

impl Strategy for SequentialQueue {
    fn submit(&self, job: Job) -> JobFuture {
        let (reply, result) = oneshot::channel();
        self.stats.backlog.fetch_add(1, Ordering::Relaxed);
        let sent = self.sender.try_send(Queued { job, reply });
        let stats = Arc::clone(&self.stats);
        let capacity = self.capacity;
        Box::pin(async move {
            match sent {
                Ok(()) => result.await.map_err(|_| Rejection::WorkerLost),
                Err(refused) => {
                    stats.backlog.fetch_sub(1, Ordering::Relaxed);
                    Err(match refused {
                        TrySendError::Full(_) => Rejection::QueueFull {
                            capacity,
                            retry_after: stats.retry_after(),
                        },
                        TrySendError::Disconnected(_) => Rejection::WorkerLost,
                    })
                }
            }
        })
    }
}
