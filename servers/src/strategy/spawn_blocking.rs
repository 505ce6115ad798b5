//! Hands the job to tokio's blocking thread pool (`spawn_blocking`), the equivalent of
//! a plain `def` endpoint or `run_in_threadpool` in FastAPI. The pool grows up to 512
//! threads and queues without bound, so under overload the threads share the cores
//! and every job slows down instead of being refused.

use super::{JobFuture, Rejection, Strategy};
use crate::workload::Job;

/// Work moved to `tokio::task::spawn_blocking`.
#[derive(Debug, Default)]
pub struct SpawnBlocking;

impl Strategy for SpawnBlocking {
    fn submit(&self, job: Job) -> JobFuture {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || job.run())
                .await
                .map_err(|_| Rejection::WorkerLost)
        })
    }
}
