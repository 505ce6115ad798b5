//! Cuts the job into short slices and yields to the runtime between them, like
//! sprinkling `await asyncio.sleep(0)` through a long loop. Other tasks get a turn
//! every slice, at the price of the job itself taking longer when the loop is busy.
//! tokio's guidance is no more than 10–100 µs between `.await`s; the default slice is
//! 50 µs.

use std::time::{Duration, Instant};

use super::{JobFuture, Strategy};
use crate::workload::{initial_state, run_units, Job, Work};

/// Work split into slices with `tokio::task::yield_now` between them.
#[derive(Debug, Clone, Copy)]
pub struct Cooperative {
    /// Length of one slice of blocking I/O.
    slice: Duration,
    /// Kernel units in one slice of CPU work (the calibrated equivalent of `slice`).
    units_per_slice: u64,
}

impl Cooperative {
    /// A strategy whose slices last `slice`, `units_per_slice` being the same length in
    /// kernel units.
    pub fn new(slice: Duration, units_per_slice: u64) -> Self {
        Cooperative {
            slice,
            units_per_slice: units_per_slice.max(1),
        }
    }
}

impl Strategy for Cooperative {
    fn submit(&self, job: Job) -> JobFuture {
        let Cooperative {
            slice,
            units_per_slice,
        } = *self;
        Box::pin(async move {
            // Every accepted job is running here: the slices interleave.
            let _running = job.begin();
            let started = Instant::now();
            let mut error = None;
            let checksum = match job.work {
                Work::Cpu { units } => {
                    let mut state = initial_state(units);
                    let mut left = units;
                    while left > 0 {
                        let n = left.min(units_per_slice);
                        state = run_units(state, n);
                        left -= n;
                        if left > 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    Some(state)
                }
                Work::Io { duration } => {
                    // A blocking call cannot be interrupted; the closest cooperative
                    // form is many short blocking calls with yields between them.
                    let mut left = duration;
                    while !left.is_zero() {
                        let n = left.min(slice);
                        std::thread::sleep(n);
                        left -= n;
                        if !left.is_zero() {
                            tokio::task::yield_now().await;
                        }
                    }
                    None
                }
                Work::Upstream { delay } => {
                    // A network call cannot be cut into slices: it blocks the
                    // event loop thread for its whole length.
                    error = crate::upstream::client::call_blocking(delay).err();
                    None
                }
            };
            Ok(job.report(started, checksum, error))
        })
    }
}
