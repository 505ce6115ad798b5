//! `servers worker`, a queue worker: runs jobs from the Redis queue of the
//! `redis-queue` variant. Any number of queue workers, on any machines that reach the
//! Redis, share one queue.
//!
//! Each of `--concurrency` slots takes a job under a lease, runs it on the blocking
//! pool (so the heartbeat keeps beating while it computes), renews the lease every
//! third of the visibility timeout, and records the result. A reaper returns jobs
//! whose lease expired (their queue worker was killed) to the queue. A job that runs
//! past `--job-timeout` is given up (its thread cannot be stopped and finishes
//! unseen) and retried or failed by its attempts.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::background::redis_queue::{QueueSettings, RedisQueue, Taken};
use crate::shutdown::Shutdown;
use crate::workload::{Job, JobReport};

/// How long an idle slot waits before asking the queue again.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// How long a slot waits after Redis failed before trying again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// The settings of one queue worker process.
#[derive(Debug, Clone)]
pub struct QueueWorkerConfig {
    pub redis: String,
    pub concurrency: usize,
    /// How long a taken job stays leased without a heartbeat.
    pub visibility_timeout: Duration,
    pub job_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Runs the queue worker until SIGINT/SIGTERM.
pub fn run(config: QueueWorkerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let queue = RedisQueue::connect(
            &config.redis,
            QueueSettings {
                capacity: usize::MAX,
                ttl: Duration::ZERO,
                max_attempts: 1,
            },
        )
        .await
        .with_context(|| format!("cannot reach Redis at {}", config.redis))?;
        let shutdown = Shutdown::install()?;
        let token_base = uuid::Uuid::new_v4().simple().to_string();
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..config.concurrency {
            let (queue, config, shutdown) = (queue.clone(), config.clone(), shutdown.clone());
            let token = format!("{token_base}-{slot}");
            slots.spawn(async move { run_slot(&queue, &token, &config, &shutdown).await });
        }
        let reaper = tokio::spawn(reap_forever(queue.clone(), config.visibility_timeout));
        println!(
            "worker ready: {} slots on {}",
            config.concurrency, config.redis
        );
        tracing::info!(concurrency = config.concurrency, "worker ready");
        shutdown.clone().requested().await;
        tracing::info!("stopping: finishing the jobs in hand");
        reaper.abort();
        let finished = tokio::time::timeout(config.shutdown_grace, async {
            while slots.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                "jobs still running at exit; their leases will expire and they will be retried"
            );
        }
        anyhow::Ok(())
    })?;
    // Blocking threads still computing abandoned jobs must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Takes and runs jobs until shutdown.
async fn run_slot(
    queue: &RedisQueue,
    token: &str,
    config: &QueueWorkerConfig,
    shutdown: &Shutdown,
) {
    while !shutdown.is_requested() {
        match queue.take(token, config.visibility_timeout).await {
            Ok(Some(taken)) => run_one(queue, token, config, taken).await,
            Ok(None) => tokio::time::sleep(IDLE_POLL).await,
            Err(e) => {
                tracing::warn!("cannot take a job: {e}");
                tokio::time::sleep(RETRY_AFTER_ERROR).await;
            }
        }
    }
}

/// Runs one taken job to its end, keeping its lease alive.
async fn run_one(queue: &RedisQueue, token: &str, config: &QueueWorkerConfig, taken: Taken) {
    let Taken { id, spec, attempt } = taken;
    tracing::debug!(%id, attempt, "running");
    let job = Job::new(spec.work());
    let mut running = tokio::task::spawn_blocking(move || job.run());
    let mut heartbeat = tokio::time::interval(config.visibility_timeout / 3);
    let deadline = tokio::time::sleep(config.job_timeout);
    tokio::pin!(deadline);
    let recorded = loop {
        tokio::select! {
            finished = &mut running => {
                let outcome = match finished {
                    Ok(JobReport { error: Some(error), .. }) => Err(error),
                    Ok(report) => {
                        let mut result = report.to_json();
                        result["attempt"] = json!(attempt);
                        result["worker_pid"] = json!(std::process::id());
                        Ok(result)
                    }
                    Err(e) => Err(format!("the job panicked: {e}")),
                };
                break queue.finish(&id, outcome).await;
            }
            _ = heartbeat.tick() => {
                if let Err(e) = queue.renew(&id, token, config.visibility_timeout).await {
                    tracing::warn!(%id, "cannot renew the lease: {e}");
                }
            }
            () = &mut deadline => {
                let reason = format!("timed out after {:?}", config.job_timeout);
                break queue.retry(&id, &reason).await;
            }
        }
    };
    if let Err(e) = recorded {
        // The lease will expire and the reaper will put the job back.
        tracing::warn!(%id, "cannot record the outcome: {e}");
    }
}

/// Returns jobs of lost queue workers to the queue, twice per visibility timeout.
async fn reap_forever(queue: RedisQueue, visibility_timeout: Duration) {
    let mut ticks = tokio::time::interval(visibility_timeout / 2);
    loop {
        ticks.tick().await;
        match queue.reap().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("returned {n} jobs of lost workers to the queue"),
            Err(e) => tracing::warn!("cannot check for lost jobs: {e}"),
        }
    }
}
