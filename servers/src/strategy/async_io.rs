//! The I/O answer: a network call is awaited on the event loop with an async
//! client (`reqwest`), like `await client.post(...)` with `httpx.AsyncClient` in an
//! `async def`. A waiting call holds no thread, so thousands wait at once on a few
//! threads; the client's calls in flight are capped and time out
//! ([`crate::upstream::client`]). A blocking sleep is awaited as
//! `tokio::time::sleep` for the same reason.
//!
//! CPU work has no async form: it runs inline in the handler, exactly as on
//! `blocking-in-async`. That is the point of having this variant in the CPU
//! scenarios too: the right answer depends on whether the work waits or computes.

use std::time::Instant;

use super::{JobFuture, Strategy};
use crate::workload::{Job, Work};

/// I/O awaited on the event loop; CPU work inline.
#[derive(Debug, Default)]
pub struct AsyncIo;

impl Strategy for AsyncIo {
    fn submit(&self, job: Job) -> JobFuture {
        Box::pin(async move {
            let (delay, upstream) = match job.work {
                Work::Cpu { .. } => return Ok(job.run()),
                Work::Io { duration } => (duration, false),
                Work::Upstream { delay } => (delay, true),
            };
            // Waiting for one of the client's slots is queueing, not calling.
            let slot = if upstream {
                match crate::upstream::client::async_slot().await {
                    Ok(slot) => Some(slot),
                    Err(error) => return Err(crate::strategy::Rejection::Failed(error)),
                }
            } else {
                None
            };
            let _running = job.begin();
            let started = Instant::now();
            let error = if upstream {
                crate::upstream::client::call_async(delay).await.err()
            } else {
                tokio::time::sleep(delay).await;
                None
            };
            drop(slot);
            Ok(job.report(started, None, error))
        })
    }
}
