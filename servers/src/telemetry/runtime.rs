//! tokio's own figures, from the stable `Handle::metrics()` API (no `tokio_unstable`
//! needed): worker count, live tasks, the global (injection) queue, and per worker
//! the time spent busy and how often it parked. Busy time is cumulative, so a
//! scraper turns two readings into a busy ratio over exactly its own interval
//! (which is also why tokio-metrics' interval sampler, one consumer draining deltas,
//! is not used here).

use serde::{Deserialize, Serialize};
use tokio::runtime::{Handle, RuntimeFlavor};

/// The runtime's figures at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuntimeFigures {
    /// `multi_thread` or `current_thread`.
    pub flavor: String,
    pub workers: usize,
    pub alive_tasks: usize,
    /// Tasks waiting in the runtime's shared queue.
    pub global_queue_depth: usize,
    /// Per worker: seconds spent busy since the runtime started. A worker stuck in
    /// one long poll is credited when it next parks.
    pub busy_s: Vec<f64>,
    /// Per worker: times it parked (went idle) since the runtime started.
    pub parks: Vec<u64>,
}

/// Reads the figures of the runtime behind `handle`; safe from any thread.
pub fn figures(handle: &Handle) -> RuntimeFigures {
    let metrics = handle.metrics();
    let workers = metrics.num_workers();
    RuntimeFigures {
        flavor: match handle.runtime_flavor() {
            RuntimeFlavor::CurrentThread => "current_thread",
            RuntimeFlavor::MultiThread => "multi_thread",
            _ => "other",
        }
        .into(),
        workers,
        alive_tasks: metrics.num_alive_tasks(),
        global_queue_depth: metrics.global_queue_depth(),
        busy_s: (0..workers)
            .map(|w| metrics.worker_total_busy_duration(w).as_secs_f64())
            .collect(),
        parks: (0..workers).map(|w| metrics.worker_park_count(w)).collect(),
    }
}
