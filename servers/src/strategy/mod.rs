//! Strategies for running a heavy job from an async handler, one per file.
//!
//! Every variant answers the same endpoints; only the [`Strategy`] that runs the job
//! differs. A strategy takes a [`Job`] and returns a future that resolves when the job
//! is done (or refused). Where the job actually runs — inside that future, on a
//! blocking pool, on rayon, on a dedicated thread — is the whole point of the
//! comparison.

mod async_io;
mod block_in_place;
mod bounded_pool;
mod cooperative;
mod inline;
mod rayon_pool;
mod redis_queue;
mod sequential_queue;
mod spawn_blocking;

pub use async_io::AsyncIo;
pub use block_in_place::BlockInPlace;
pub use bounded_pool::{BoundedPool, PoolPriority};
pub use cooperative::Cooperative;
pub use inline::Inline;
pub use rayon_pool::RayonPool;
pub use redis_queue::RedisQueueStrategy;
pub use sequential_queue::SequentialQueue;
pub use spawn_blocking::SpawnBlocking;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::workload::{Job, JobReport};

/// Why a strategy did not run a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The strategy's queue is full; the client should retry after about this long.
    QueueFull {
        capacity: usize,
        retry_after: Duration,
    },
    /// The thread, pool or queue worker that was to run the job went away (it
    /// panicked, or the server is shutting down).
    WorkerLost,
    /// The job ran and failed (an upstream call that got no good answer).
    Failed(String),
    /// The job did not finish by the request's deadline (redis-queue's
    /// `--wait-timeout`): 504, the message saying what became of it.
    TimedOut(String),
}

/// The future a strategy returns for one job.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobReport, Rejection>> + Send>>;

/// A way of running heavy work on behalf of an async handler.
pub trait Strategy: Send + Sync + 'static {
    /// Starts (or queues) `job` and resolves when it has finished (or was
    /// refused).
    fn submit(&self, job: Job) -> JobFuture;

    /// Admits or refuses `job` now, before anything is awaited, and returns the
    /// future of an admitted one: how `POST /jobs` refuses with 503 instead of
    /// answering 202 for a background job the queue would refuse. Strategies
    /// without admission control admit everything.
    fn try_submit(&self, job: Job) -> Result<JobFuture, Rejection> {
        Ok(self.submit(job))
    }
}
