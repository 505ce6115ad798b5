//! `servers worker`, a queue worker: runs jobs from the Redis queue of the
//! `redis-queue` variant. Any number of queue workers, on any machines that reach the
//! Redis, share one queue.
//!
//! Each of `--concurrency` slots takes a job under a lease with a token of its own
//! (fresh per take), checks its size against the caps of the API server that
//! accepted it, runs it on the blocking pool (so the heartbeat keeps beating while it
//! computes), renews the lease every third of the visibility timeout, and records
//! the result. Every step that changes the job is conditioned on the token still
//! owning it (see [`crate::background::redis_queue`]): a slot whose job was taken
//! over stops heartbeating, and its late result is refused rather than recorded. A
//! reaper returns jobs whose lease expired (their queue worker was killed) to the
//! queue. A job that runs past `--job-timeout` is given up (its thread cannot be
//! stopped and finishes unseen) and retried or failed by its attempts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::background::redis_queue::{Finish, Handback, QueueSettings, RedisQueue, Taken};
use crate::shutdown::Shutdown;
use crate::workload::{Job, JobReport};

/// How long an idle slot waits before asking the queue again.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// How long a slot waits after Redis failed before trying again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// The shortest `--visibility-timeout`: the heartbeat renews every third of it and
/// the reaper looks every half, so below a few milliseconds a lease would lapse
/// between two renewals of a healthy worker (a Redis round trip plus scheduling
/// is easily a millisecond), and a lease is kept in whole milliseconds.
pub const MIN_VISIBILITY_TIMEOUT: Duration = Duration::from_millis(10);

/// The shortest period of the heartbeat and of the reaper, whatever the visibility
/// timeout (a zero period panics in `tokio::time::interval`).
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// The settings of one queue worker process.
#[derive(Debug, Clone)]
pub struct QueueWorkerConfig {
    pub redis: String,
    pub concurrency: usize,
    /// How long a taken job stays leased without a heartbeat (at least
    /// [`MIN_VISIBILITY_TIMEOUT`]).
    pub visibility_timeout: Duration,
    pub job_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Parses `--visibility-timeout`: a duration of at least [`MIN_VISIBILITY_TIMEOUT`].
pub fn parse_visibility_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write durations like 50us, 500ms, 5s)"))?;
    if d < MIN_VISIBILITY_TIMEOUT {
        return Err(format!(
            "must be at least {} (the heartbeat renews the lease every third of it)",
            humantime::format_duration(MIN_VISIBILITY_TIMEOUT)
        ));
    }
    Ok(d)
}

/// How often a running job's lease is renewed: three renewals per lease, so one
/// late or lost renewal does not lose the job.
fn heartbeat_period(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 3).max(MIN_PERIOD)
}

/// How often the reaper looks for lapsed leases: a lost job waits at most half a
/// visibility timeout past its lease.
fn reap_period(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 2).max(MIN_PERIOD)
}

/// Runs the queue worker until SIGINT/SIGTERM.
pub fn run(config: QueueWorkerConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.visibility_timeout >= MIN_VISIBILITY_TIMEOUT,
        "the visibility timeout must be at least {MIN_VISIBILITY_TIMEOUT:?}"
    );
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
        let worker = uuid::Uuid::new_v4().simple().to_string();
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..config.concurrency {
            let (queue, config, shutdown) = (queue.clone(), config.clone(), shutdown.clone());
            let name = format!("{worker}-{slot}");
            slots.spawn(async move { run_slot(&queue, &name, &config, &shutdown).await });
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

/// Takes and runs jobs until shutdown. Each take gets a token of its own
/// (`SLOT-N`), so nothing done for one attempt can pass for another.
async fn run_slot(queue: &RedisQueue, slot: &str, config: &QueueWorkerConfig, shutdown: &Shutdown) {
    let mut takes: u64 = 0;
    while !shutdown.is_requested() {
        takes += 1;
        let token = format!("{slot}-{takes}");
        match queue.take(&token, config.visibility_timeout).await {
            Ok(Some(taken)) => run_one(queue, &token, config, taken).await,
            Ok(None) => tokio::time::sleep(IDLE_POLL).await,
            Err(e) => {
                tracing::warn!("cannot take a job: {e}");
                tokio::time::sleep(RETRY_AFTER_ERROR).await;
            }
        }
    }
}

/// Set once the first job without its API server's caps was taken (warned once).
static WARNED_NO_CAPS: AtomicBool = AtomicBool::new(false);

/// Checks a taken job before it runs: a readable spec whose size is within the caps
/// its API server recorded. A job with no recorded caps (from an API server that
/// does not record them) is only checked for a readable, non-zero size: this
/// worker cannot know that server's caps, and guessing (e.g. by its own calibration)
/// would fail jobs the server rightly accepted.
fn runnable(taken: &Taken) -> Result<crate::background::JobSpec, String> {
    let spec = taken.spec.clone()?;
    match taken.caps {
        Some(caps) => spec.validate(&caps),
        None => {
            if !WARNED_NO_CAPS.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "jobs carry no caps of their API server; their sizes are not checked again"
                );
            }
            let unlimited = crate::limits::Limits {
                max_units: u64::MAX,
                max_io_ms: u64::MAX,
            };
            spec.validate(&unlimited)
        }
    }
    .map_err(|e| format!("not run: {e}"))?;
    Ok(spec)
}

/// Runs one taken job to its end, keeping its lease alive while `token` owns it.
async fn run_one(queue: &RedisQueue, token: &str, config: &QueueWorkerConfig, taken: Taken) {
    let (id, attempt) = (taken.id.clone(), taken.attempt);
    let spec = match runnable(&taken) {
        Ok(spec) => spec,
        Err(refusal) => {
            tracing::warn!(%id, "{refusal}");
            log_finish(&id, queue.finish(&id, token, Err(refusal)).await);
            return;
        }
    };
    tracing::debug!(%id, attempt, "running");
    let job = Job::new(spec.work());
    let mut running = tokio::task::spawn_blocking(move || job.run());
    let period = heartbeat_period(config.visibility_timeout);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(config.job_timeout);
    tokio::pin!(deadline);
    loop {
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
                log_finish(&id, queue.finish(&id, token, outcome).await);
                return;
            }
            _ = heartbeat.tick() => {
                match queue.renew(&id, token, config.visibility_timeout).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Reaped (this worker stalled past its lease) and maybe
                        // running elsewhere: its thread finishes unseen.
                        tracing::warn!(%id, "lost the job's lease to another worker; giving it up");
                        return;
                    }
                    Err(e) => tracing::warn!(%id, "cannot renew the lease: {e}"),
                }
            }
            () = &mut deadline => {
                let reason = format!("timed out after {:?}", config.job_timeout);
                match queue.retry(&id, token, &reason).await {
                    Ok(Handback::Refused) => {
                        tracing::info!(%id, "timed out, and already taken over by another worker");
                    }
                    Ok(_) => {}
                    // The lease will expire and the reaper will put the job back.
                    Err(e) => tracing::warn!(%id, "cannot hand back a timed-out job: {e}"),
                }
                return;
            }
        }
    }
}

/// Says what became of a finish that was not simply recorded.
fn log_finish(id: &str, finish: redis::RedisResult<Finish>) {
    match finish {
        Ok(Finish::Recorded) => {}
        Ok(Finish::Refused) => {
            tracing::info!(%id, "finished, but another worker owns the job now; result discarded");
        }
        Ok(Finish::Gone) => {
            tracing::warn!(%id, "finished, but the job's record expired or was deleted; result discarded");
        }
        // The lease will expire and the reaper will put the job back.
        Err(e) => tracing::warn!(%id, "cannot record the outcome: {e}"),
    }
}

/// Returns jobs of lost queue workers to the queue, twice per visibility timeout.
async fn reap_forever(queue: RedisQueue, visibility_timeout: Duration) {
    let mut ticks = tokio::time::interval(reap_period(visibility_timeout));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match queue.reap().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("returned {n} jobs of lost workers to the queue"),
            Err(e) => tracing::warn!("cannot check for lost jobs: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_never_zero() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(2),
            Duration::from_micros(1),
        ] {
            assert!(heartbeat_period(d) >= MIN_PERIOD);
            assert!(reap_period(d) >= MIN_PERIOD);
        }
        assert_eq!(
            heartbeat_period(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            reap_period(Duration::from_secs(3)),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn a_visibility_timeout_under_the_minimum_is_refused() {
        assert!(parse_visibility_timeout("9ms")
            .unwrap_err()
            .contains("at least 10ms"));
        assert!(parse_visibility_timeout("2ns").is_err());
        assert!(parse_visibility_timeout("0s").is_err());
        assert!(parse_visibility_timeout("soon").unwrap_err().contains("5s"));
        assert_eq!(
            parse_visibility_timeout("10ms"),
            Ok(Duration::from_millis(10))
        );
    }

    fn taken(spec: crate::background::JobSpec, caps: Option<crate::limits::Limits>) -> Taken {
        Taken {
            id: "x".into(),
            spec: Ok(spec),
            attempt: 1,
            caps,
        }
    }

    #[test]
    fn a_job_over_its_servers_cap_is_not_run() {
        use crate::background::JobSpec;
        let caps = Some(crate::limits::Limits {
            max_units: 100,
            max_io_ms: 50,
        });
        assert!(runnable(&taken(JobSpec::Cpu { units: 100 }, caps)).is_ok());
        let refused = runnable(&taken(JobSpec::Cpu { units: 101 }, caps)).unwrap_err();
        assert!(
            refused.starts_with("not run: `units`=101 is over the cap of 100"),
            "{refused}"
        );
        assert!(runnable(&taken(JobSpec::Io { ms: 51 }, caps)).is_err());
        assert!(runnable(&taken(JobSpec::Upstream { ms: 51 }, caps)).is_err());
        // Without recorded caps, only the size's sanity is checked.
        assert!(runnable(&taken(JobSpec::Io { ms: 5_000 }, None)).is_ok());
        assert!(runnable(&taken(JobSpec::Cpu { units: 0 }, None)).is_err());
        let unreadable = Taken {
            spec: Err("unreadable".into()),
            ..taken(JobSpec::Cpu { units: 1 }, caps)
        };
        assert_eq!(runnable(&unreadable).unwrap_err(), "unreadable");
    }
}
