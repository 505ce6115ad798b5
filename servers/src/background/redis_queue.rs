//! The durable queue on Redis, the Celery/RQ answer: the API server only records and
//! enqueues jobs; separate queue workers (`servers worker`), on this machine or
//! others, take them. The reliable-queue pattern, each step one atomic Lua script:
//!
//! - submit: job hash `bb:job:ID` (spec, status, times, attempts) + `LPUSH bb:queue`;
//! - take: `RPOPLPUSH bb:queue bb:processing` *and* a lease key `bb:job:ID:lease`
//!   with a visibility timeout, in one step, so no job is ever in `processing`
//!   without a lease while its queue worker lives;
//! - the queue worker renews the lease while the job runs (heartbeat) and on
//!   completion records the result, removes the job from `processing` and lets the
//!   hash expire after the ttl;
//! - any queue worker's reaper returns a job whose lease expired (its queue worker
//!   was killed or stalled) to the queue, or marks it failed once it has used its
//!   attempts.
//!
//! An accepted job is therefore never lost: it is in the queue, in `processing`
//! under a live lease, or finished, and Redis (not the API server) holds it.
//! The `redis` crate is used directly (see the README for why not apalis-redis):
//! the harness wants per-job times and attempts readable by id from the API process
//! and a lease per job, and the pattern is five short scripts.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{timestamp, Backlog, JobSpec, JobView, Refusal, Status};

const QUEUE: &str = "bb:queue";
const PROCESSING: &str = "bb:processing";
const JOB_PREFIX: &str = "bb:job:";

/// The scripts, hashed once: `EVALSHA` after the first use of each.
struct Scripts {
    submit: Script,
    take: Script,
    renew: Script,
    finish: Script,
    retry: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    submit: Script::new(SUBMIT_LUA),
    take: Script::new(TAKE_LUA),
    renew: Script::new(RENEW_LUA),
    finish: Script::new(FINISH_LUA),
    retry: Script::new(RETRY_LUA),
});

/// Submit: refuse past the capacity, else record the job and enqueue it.
const SUBMIT_LUA: &str = r"
  if redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then
    return 0
  end
  redis.call('HSET', KEYS[3], 'spec', ARGV[2], 'status', 'queued', 'queued_at', ARGV[3],
    'attempts', 0, 'ttl_ms', ARGV[5], 'max_attempts', ARGV[6])
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1";

/// Take: move the oldest job to `processing` and lease it, in one step.
const TAKE_LUA: &str = r"
  local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
  if not id then return false end
  local job = ARGV[4] .. id
  redis.call('SET', job .. ':lease', ARGV[1], 'PX', ARGV[2])
  redis.call('HSET', job, 'status', 'running', 'started_at', ARGV[3])
  local attempts = redis.call('HINCRBY', job, 'attempts', 1)
  return {id, redis.call('HGET', job, 'spec'), attempts}";

/// Renew: extend the lease, only for the queue worker holding it.
const RENEW_LUA: &str = r"
  if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return 0";

/// Finish: record the outcome once, leave both lists, expire after the ttl.
const FINISH_LUA: &str = r"
  local status = redis.call('HGET', KEYS[3], 'status')
  if status == 'done' or status == 'failed' then return 0 end
  redis.call('HSET', KEYS[3], 'status', ARGV[2], ARGV[3], ARGV[4], 'finished_at', ARGV[5])
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('LREM', KEYS[1], 0, ARGV[1])
  redis.call('DEL', KEYS[3] .. ':lease')
  local ttl = redis.call('HGET', KEYS[3], 'ttl_ms')
  if ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
  return 1";

/// Retry: back to the queue, or failed once the attempts are used.
const RETRY_LUA: &str = r"
  if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 0 then return 0 end
  redis.call('DEL', KEYS[3] .. ':lease')
  local attempts = tonumber(redis.call('HGET', KEYS[3], 'attempts') or '0')
  local most = tonumber(redis.call('HGET', KEYS[3], 'max_attempts') or '1')
  if attempts >= most then
    redis.call('HSET', KEYS[3], 'status', 'failed', 'finished_at', ARGV[3],
      'error', ARGV[2] .. ' (attempt ' .. attempts .. ' of ' .. most .. ')')
    local ttl = redis.call('HGET', KEYS[3], 'ttl_ms')
    if ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
    return 2
  end
  redis.call('HSET', KEYS[3], 'status', 'queued', 'last_error', ARGV[2])
  redis.call('RPUSH', KEYS[1], ARGV[1])
  return 1";

/// Settings shared by the API server and the queue workers.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Most jobs queued or processing at once; more are refused.
    pub capacity: usize,
    /// How long a finished job's status is kept.
    pub ttl: Duration,
    /// How often a job may be started before it is failed.
    pub max_attempts: u32,
}

/// A connection to the queue (cheap to clone; reconnects by itself).
#[derive(Clone)]
pub struct RedisQueue {
    connection: ConnectionManager,
    settings: QueueSettings,
}

/// A job a queue worker has taken.
#[derive(Debug, Clone)]
pub struct Taken {
    pub id: String,
    pub spec: JobSpec,
    pub attempt: u32,
}

fn job_key(id: &str) -> String {
    format!("{JOB_PREFIX}{id}")
}

fn now() -> String {
    timestamp(SystemTime::now())
}

fn unavailable(e: redis::RedisError) -> Refusal {
    Refusal::Unavailable(e.to_string())
}

impl RedisQueue {
    /// Connects to `url` (`redis://HOST:PORT`), failing if Redis does not answer.
    pub async fn connect(url: &str, settings: QueueSettings) -> anyhow::Result<RedisQueue> {
        let client = redis::Client::open(url)?;
        let mut connection =
            tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager())
                .await
                .map_err(|_| anyhow::anyhow!("Redis at {url} did not answer within 5 s"))??;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(RedisQueue {
            connection,
            settings,
        })
    }

    /// Records and enqueues a job; returns its id.
    pub async fn submit(&self, spec: JobSpec) -> Result<String, Refusal> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let script = &SCRIPTS.submit;
        let spec_json = serde_json::to_string(&spec).expect("a spec serialises");
        let accepted: i32 = script
            .key(QUEUE)
            .key(PROCESSING)
            .key(job_key(&id))
            .arg(&id)
            .arg(spec_json)
            .arg(now())
            .arg(self.settings.capacity)
            .arg(self.settings.ttl.as_millis() as u64)
            .arg(self.settings.max_attempts)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        if accepted == 0 {
            return Err(Refusal::Full {
                capacity: self.settings.capacity,
            });
        }
        Ok(id)
    }

    /// The status of job `id`; `Ok(None)` if unknown or expired.
    pub async fn view(&self, id: &str) -> Result<Option<JobView>, Refusal> {
        let fields: HashMap<String, String> = self
            .connection
            .clone()
            .hgetall(job_key(id))
            .await
            .map_err(unavailable)?;
        Ok(view_of(id, &fields))
    }

    /// Queued and running counts.
    pub async fn backlog(&self) -> Result<Backlog, Refusal> {
        let mut connection = self.connection.clone();
        let (queued, running): (u64, u64) = redis::pipe()
            .llen(QUEUE)
            .llen(PROCESSING)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(Backlog {
            queued,
            running,
            // Finished jobs expire in Redis on their own; counting them would mean
            // scanning keys.
            finished: 0,
            capacity: self.settings.capacity as u64,
        })
    }

    /// Takes the oldest queued job under a lease of `lease` held by `token`.
    pub async fn take(&self, token: &str, lease: Duration) -> redis::RedisResult<Option<Taken>> {
        let script = &SCRIPTS.take;
        let taken: Option<(String, Option<String>, u32)> = script
            .key(QUEUE)
            .key(PROCESSING)
            .arg(token)
            .arg(lease.as_millis() as u64)
            .arg(now())
            .arg(JOB_PREFIX)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(taken.and_then(|(id, spec, attempt)| {
            let spec = serde_json::from_str(spec.as_deref()?).ok()?;
            Some(Taken { id, spec, attempt })
        }))
    }

    /// Extends the lease on job `id` if `token` still holds it.
    pub async fn renew(&self, id: &str, token: &str, lease: Duration) -> redis::RedisResult<bool> {
        let script = &SCRIPTS.renew;
        let renewed: i32 = script
            .key(format!("{}:lease", job_key(id)))
            .arg(token)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Records that job `id` finished: `Ok(result)` done, `Err(reason)` failed for
    /// good. A job already finished (by a queue worker that took it over) stays as
    /// it is.
    pub async fn finish(
        &self,
        id: &str,
        outcome: Result<serde_json::Value, String>,
    ) -> redis::RedisResult<()> {
        let script = &SCRIPTS.finish;
        let (status, field, value) = match outcome {
            Ok(result) => ("done", "result", result.to_string()),
            Err(reason) => ("failed", "error", reason),
        };
        let _: i32 = script
            .key(QUEUE)
            .key(PROCESSING)
            .key(job_key(id))
            .arg(id)
            .arg(status)
            .arg(field)
            .arg(value)
            .arg(now())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Puts job `id` back in the queue after a failed attempt (`reason`), or fails
    /// it if it has used its attempts. Does nothing if it is not in `processing`.
    pub async fn retry(&self, id: &str, reason: &str) -> redis::RedisResult<()> {
        let script = &SCRIPTS.retry;
        let _: i32 = script
            .key(QUEUE)
            .key(PROCESSING)
            .key(job_key(id))
            .arg(id)
            .arg(reason)
            .arg(now())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Returns every job in `processing` whose lease has expired to the queue (or
    /// fails it); returns how many were found.
    pub async fn reap(&self) -> redis::RedisResult<usize> {
        let mut connection = self.connection.clone();
        let processing: Vec<String> = connection.lrange(PROCESSING, 0, -1).await?;
        let mut lost = 0;
        for id in processing {
            let leased: bool = connection.exists(format!("{}:lease", job_key(&id))).await?;
            if !leased {
                self.retry(&id, "the worker running it was lost (no heartbeat)")
                    .await?;
                lost += 1;
            }
        }
        Ok(lost)
    }
}

/// A job hash as the API shows it.
fn view_of(id: &str, fields: &HashMap<String, String>) -> Option<JobView> {
    let spec = serde_json::from_str(fields.get("spec")?).ok()?;
    let status = match fields.get("status")?.as_str() {
        "queued" => Status::Queued,
        "running" => Status::Running,
        "done" => Status::Done,
        _ => Status::Failed,
    };
    Some(JobView {
        id: id.to_owned(),
        status,
        job: spec,
        queued_at: fields.get("queued_at").cloned().unwrap_or_default(),
        started_at: fields.get("started_at").cloned(),
        finished_at: fields.get("finished_at").cloned(),
        result: fields
            .get("result")
            .and_then(|r| serde_json::from_str(r).ok()),
        error: fields.get("error").cloned(),
        attempts: fields
            .get("attempts")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
    })
}
