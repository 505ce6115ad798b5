//! Runs the job with `tokio::task::block_in_place`: the worker thread keeps the job
//! but first hands its other tasks (and the I/O driver) to a fresh thread, so the
//! runtime keeps serving. Only valid on the multi-thread runtime (it panics on a
//! `current_thread` one), and it stalls any sibling futures inside the same task.

use super::{JobFuture, Strategy};
use crate::workload::Job;

/// Work run through `tokio::task::block_in_place` on the multi-thread runtime.
#[derive(Debug, Default)]
pub struct BlockInPlace;

impl Strategy for BlockInPlace {
    fn submit(&self, job: Job) -> JobFuture {
        Box::pin(async move { Ok(tokio::task::block_in_place(move || job.run())) })
    }
}
