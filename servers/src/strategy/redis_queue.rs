//! The `redis-queue` variant's answer for `/work/cpu` and `/work/io`: the job goes
//! into the Redis queue, a separate queue worker (`servers worker`) runs it, and the
//! handler waits for the result by polling the job's status. The API process never
//! runs a job, so its event loop stays free; capacity comes from however many
//! queue workers share the queue.

use std::time::Duration;

use super::{JobFuture, Rejection, Strategy};
use crate::background::redis_queue::RedisQueue;
use crate::background::{JobSpec, Refusal, Status};
use crate::workload::{Job, JobReport, Work};

/// How often a waiting handler reads its job's status.
const POLL: Duration = Duration::from_millis(2);

/// Work sent through Redis to separate queue worker processes.
pub struct RedisQueueStrategy {
    queue: RedisQueue,
}

impl RedisQueueStrategy {
    pub fn new(queue: RedisQueue) -> Self {
        RedisQueueStrategy { queue }
    }
}

impl Strategy for RedisQueueStrategy {
    fn submit(&self, job: Job) -> JobFuture {
        let queue = self.queue.clone();
        Box::pin(async move {
            let spec = match job.work {
                Work::Cpu { units } => JobSpec::Cpu { units },
                Work::Io { duration } => JobSpec::Io {
                    ms: duration.as_millis() as u64,
                },
                Work::Upstream { delay } => JobSpec::Upstream {
                    ms: delay.as_millis() as u64,
                },
            };
            let id = queue.submit(spec).await.map_err(|refusal| match refusal {
                Refusal::Full { capacity } => Rejection::QueueFull {
                    capacity,
                    retry_after: Duration::from_secs(1),
                },
                Refusal::Kept { kept, retry_after } => Rejection::QueueFull {
                    capacity: kept,
                    retry_after,
                },
                Refusal::Unavailable(_) => Rejection::WorkerLost,
            })?;
            loop {
                tokio::time::sleep(POLL).await;
                let view = queue
                    .view(&id)
                    .await
                    .map_err(|_| Rejection::WorkerLost)?
                    .ok_or(Rejection::WorkerLost)?;
                match view.status {
                    Status::Queued | Status::Running => continue,
                    Status::Failed => {
                        return Err(match view.error {
                            Some(error) => Rejection::Failed(error),
                            None => Rejection::WorkerLost,
                        })
                    }
                    Status::Done => {
                        let result = view.result.unwrap_or_default();
                        let us = |field: &str| {
                            Duration::from_micros(result[field].as_u64().unwrap_or(0))
                        };
                        let computed = us("compute_us");
                        return Ok(JobReport {
                            queued: job.arrived.elapsed().saturating_sub(computed),
                            computed,
                            checksum: result["checksum"]
                                .as_str()
                                .and_then(|c| u64::from_str_radix(c, 16).ok()),
                            error: None,
                        });
                    }
                }
            }
        })
    }
}
