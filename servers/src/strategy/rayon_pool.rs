//! Sends the job to a rayon pool with one thread per core and awaits the result on a
//! `tokio::sync::oneshot`, the pattern tokio's documentation recommends for CPU-bound
//! work. The closest Rust answer to FastAPI's `ProcessPoolExecutor`: a fixed pool
//! sized to the CPU, so overload queues instead of oversubscribing the cores.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{JobFuture, Rejection, Strategy};
use crate::workload::Job;

/// Work run on a dedicated rayon thread pool.
pub struct RayonPool {
    pool: Arc<rayon::ThreadPool>,
}

impl RayonPool {
    /// Builds a pool of `threads` threads named `rayon-N`.
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("rayon-{i}"))
            .build()?;
        Ok(RayonPool {
            pool: Arc::new(pool),
        })
    }
}

impl Strategy for RayonPool {
    fn submit(&self, job: Job) -> JobFuture {
        let pool = Arc::clone(&self.pool);
        Box::pin(async move {
            let (reply, result) = oneshot::channel();
            pool.spawn(move || {
                // The receiver is gone if the client hung up; nothing to do then.
                let _ = reply.send(job.run());
            });
            result.await.map_err(|_| Rejection::WorkerLost)
        })
    }
}
