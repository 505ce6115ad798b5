//! Runs the job right inside the handler's future: the event loop thread that polls
//! the request does the work and can do nothing else meanwhile. Used by
//! `blocking-in-async`, `current-thread` and both multi-worker variants.

use super::{JobFuture, Strategy};
use crate::workload::Job;

/// Work done inline in the async handler, blocking its runtime thread.
#[derive(Debug, Default)]
pub struct Inline;

impl Strategy for Inline {
    fn submit(&self, job: Job) -> JobFuture {
        Box::pin(async move { Ok(job.run()) })
    }
}
