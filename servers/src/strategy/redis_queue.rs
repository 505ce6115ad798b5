//! The `redis-queue` variant's answer for `/work/cpu` and `/work/io`: the job goes
//! into the Redis queue, a separate queue worker (`servers worker`) runs it, and the
//! handler waits for the result. The API process never runs a job, so its event loop
//! stays free; capacity comes from however many queue workers share the queue.
//!
//! The wait is one blocking `BLPOP` on a connection of its own, woken by the job's
//! finish ([`RedisQueue::wait`]), not a poll: a waiting request costs Redis nothing
//! while it waits, so a thousand of them cannot starve the workers' takes and
//! renewals. It ends at the request's deadline (`--wait-timeout`, counted from its
//! arrival) with an error; a job no worker has taken by then is withdrawn, so with
//! no workers running the queue does not fill with jobs nobody waits for.

use std::time::Duration;

use super::{JobFuture, Rejection, Strategy};
use crate::background::redis_queue::{Abandoned, RedisQueue};
use crate::background::{JobSpec, JobView, Refusal, Status};
use crate::workload::{Job, JobReport, Work};

/// Work sent through Redis to separate queue worker processes.
pub struct RedisQueueStrategy {
    queue: RedisQueue,
    wait_timeout: Duration,
}

impl RedisQueueStrategy {
    /// How long a request waits for its job by default (`--wait-timeout`): far
    /// longer than any job the default caps allow plus a queue of them, so only a
    /// missing or stuck worker reaches it.
    pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Waits up to [`Self::DEFAULT_WAIT_TIMEOUT`] per request.
    pub fn new(queue: RedisQueue) -> Self {
        RedisQueueStrategy {
            queue,
            wait_timeout: Self::DEFAULT_WAIT_TIMEOUT,
        }
    }

    /// Waits up to `wait_timeout` per request, counted from its arrival.
    pub fn with_wait_timeout(mut self, wait_timeout: Duration) -> Self {
        self.wait_timeout = wait_timeout;
        self
    }
}

/// The refusal for a request whose job did not finish by its deadline.
fn timed_out(message: String) -> Rejection {
    Rejection::TimedOut(message)
}

impl Strategy for RedisQueueStrategy {
    fn submit(&self, job: Job) -> JobFuture {
        let queue = self.queue.clone();
        let wait_timeout = self.wait_timeout;
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
            let id = queue
                .submit_waited(spec)
                .await
                .map_err(|refusal| match refusal {
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
            let deadline = job.arrived + wait_timeout;
            // If the client hangs up first (this future dropped), a job no
            // worker has taken yet is withdrawn too, not left in the queue.
            let hang_up = WithdrawOnDrop(Some((queue.clone(), id.clone())));
            let waited = queue.wait(&id, deadline).await;
            hang_up.disarm();
            let view = match waited {
                Ok(Some(view)) => view,
                Ok(None) => return Err(give_up(&queue, &id, wait_timeout).await),
                Err(_) => return Err(Rejection::WorkerLost),
            };
            report_of(view, &job)
        })
    }
}

/// Withdraws a still-queued job when dropped armed: the request waiting for it
/// went away (hyper drops the future when its client hangs up).
struct WithdrawOnDrop(Option<(RedisQueue, String)>);

impl WithdrawOnDrop {
    /// The wait ended by itself: nothing to withdraw here.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        if let Some((queue, id)) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = queue
                        .abandon(
                            &id,
                            "the client went away before a queue worker took the job",
                        )
                        .await;
                });
            }
        }
    }
}

/// Gives up on job `id` at the deadline: withdraws it if still queued, and says
/// which it was. A job that finished in between is still answered as timed out:
/// the deadline is the contract.
async fn give_up(queue: &RedisQueue, id: &str, wait_timeout: Duration) -> Rejection {
    let waited = humantime::format_duration(wait_timeout);
    let reason = format!(
        "no queue worker took the job within the wait timeout of {waited} (is a `servers worker` running on this Redis?)"
    );
    match queue.abandon(id, &reason).await {
        Ok(Abandoned::Withdrawn) => timed_out(format!("{reason}; the job was withdrawn")),
        Ok(Abandoned::Taken) => timed_out(format!(
            "the job did not finish within the wait timeout of {waited}; a queue worker has it, and its outcome will be under GET /jobs/{id}"
        )),
        Ok(Abandoned::Gone) | Err(_) => timed_out(format!(
            "the job did not finish within the wait timeout of {waited}"
        )),
    }
}

/// The answer for a finished job.
fn report_of(view: JobView, job: &Job) -> Result<JobReport, Rejection> {
    match view.status {
        Status::Queued | Status::Running => Err(Rejection::WorkerLost),
        Status::Failed => Err(match view.error {
            Some(error) => Rejection::Failed(error),
            None => Rejection::WorkerLost,
        }),
        Status::Done => {
            let result = view.result.unwrap_or_default();
            let us = |field: &str| Duration::from_micros(result[field].as_u64().unwrap_or(0));
            let computed = us("compute_us");
            Ok(JobReport {
                queued: job.arrived.elapsed().saturating_sub(computed),
                computed,
                checksum: result["checksum"]
                    .as_str()
                    .and_then(|c| u64::from_str_radix(c, 16).ok()),
                error: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_flags_default_is_the_strategys() {
        let cli = crate::cli::Cli::try_parse_from(["servers", "--variant", "rayon"]).unwrap();
        assert_eq!(cli.wait_timeout, RedisQueueStrategy::DEFAULT_WAIT_TIMEOUT);
        assert!(cli.validate().is_ok());
        let cli = crate::cli::Cli::try_parse_from([
            "servers",
            "--variant",
            "rayon",
            "--wait-timeout",
            "1s",
        ])
        .unwrap();
        assert!(cli.validate().unwrap_err().contains("--wait-timeout"));
    }
}
