//! The durable queue on Redis, the Celery/RQ answer: the API server only records and
//! enqueues jobs; separate queue workers (`servers worker`), on this machine or
//! others, take them. The reliable-queue pattern, each step one atomic Lua script:
//!
//! - submit: job hash `bb:job:ID` (spec, status, times, attempts, the caps of the
//!   API server that accepted it) + `LPUSH bb:queue`;
//! - take: `RPOPLPUSH bb:queue bb:processing`, a lease key `bb:job:ID:lease` holding
//!   the taker's token with a visibility timeout, and the same token as the hash's
//!   `owner`, in one step, so no job is ever in `processing` without an owner;
//! - the queue worker renews the lease while the job runs (heartbeat) and on
//!   completion records the result, removes the job from `processing` and lets the
//!   hash expire after the ttl;
//! - any queue worker's reaper returns a job whose lease expired (its queue worker
//!   was killed or stalled) to the queue, or marks it failed once it has used its
//!   attempts.
//!
//! # Ownership
//!
//! A take's token (unique per take) is the job's `owner` until the job is finished,
//! handed back by its owner (job timeout) or reaped. Every script that changes a
//! taken job checks, in the same atomic step as the change, that the caller still
//! has the right to it: finish, renew and retry need `owner == token` and `status ==
//! running`; the reaper needs the lease to be gone. A caller that lost the job (its
//! lease lapsed, a reaper re-queued it, another worker took it) changes nothing and
//! is told so ([`Finish::Refused`], [`Handback::Refused`]), so one attempt's late
//! finish can never overwrite or discard another's, and a stale reaper can never
//! delete a live lease. The lease key is only the liveness signal: a lease that
//! lapsed without a reaper acting leaves the owner in place, so its worker may still
//! renew or finish (no work is wasted when nobody else has taken the job).
//!
//! A finish or retry never recreates a job record that has expired or was deleted
//! ([`Finish::Gone`], [`Handback::Gone`]): `HSET` on a missing hash would create one
//! without its ttl, kept forever.
//!
//! # Waiting for a result
//!
//! `/work/cpu` and `/work/io` wait for their job with `BLPOP bb:job:ID:done` on a
//! connection of their own ([`RedisQueue::wait`]), which the finishing script
//! `LPUSH`es (only for jobs submitted with a waiter; with the job's ttl, at least
//! [`DONE_KEY_MIN_TTL_MS`]). A list rather than pub/sub because the signal is
//! stored: a finish that lands before the waiter blocks, or while its connection is
//! being replaced, is still seen, with no subscribe-before-check ordering to get
//! right, and Redis wakes only that one waiter (a pub/sub channel would broadcast
//! every completion to every API process). The cost is one Redis connection per
//! waiting request (at most `--jobs-capacity` of them; Redis allows 10,000 clients
//! by default), kept in a small pool: a `BLPOP` would block every other command on
//! the shared multiplexed [`ConnectionManager`], so it never goes there.
//!
//! An accepted job is therefore never lost while Redis keeps its data: it is in the
//! queue, in `processing` with an owner, or finished. A Redis restart loses
//! everything unless Redis persists it: with `appendonly yes` and `appendfsync
//! everysec`, Redis writes each change to its file before it replies, so a killed
//! redis-server loses nothing it acknowledged, and the kernel has it on disk within
//! about a second, so a machine crash loses at most the jobs acknowledged in the
//! last second (`appendfsync always` closes that window at a write per command).
//! The `redis` crate is used directly (see the README for why not apalis-redis):
//! the harness wants per-job times and attempts readable by id from the API process
//! and a lease per job, and the pattern is a few short scripts.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncCommands, Script};

use super::{timestamp, Backlog, JobSpec, JobView, Refusal, Status};
use crate::limits::Limits;

const QUEUE: &str = "bb:queue";
const PROCESSING: &str = "bb:processing";
const JOB_PREFIX: &str = "bb:job:";

/// The least time a completion signal is kept, whatever the job's ttl: long enough
/// for Redis to hand it to a waiter already blocked on it.
pub const DONE_KEY_MIN_TTL_MS: u64 = 1_000;

/// How much longer than its `BLPOP` timeout a waiter gives Redis to answer before it
/// drops the connection as dead.
const BLOCK_GRACE: Duration = Duration::from_secs(2);

/// How long opening a waiting connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle waiting connections kept for the next waiters; more are closed, so a burst
/// of waits does not hold its connections open for ever after.
const IDLE_WAIT_CONNECTIONS: usize = 64;

/// The scripts, hashed once: `EVALSHA` after the first use of each.
struct Scripts {
    submit: Script,
    take: Script,
    renew: Script,
    finish: Script,
    retry: Script,
    reap: Script,
    abandon: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| {
    let with_common = |body: &str| Script::new(&format!("{COMMON_LUA}\n{body}"));
    Scripts {
        submit: Script::new(SUBMIT_LUA),
        take: Script::new(TAKE_LUA),
        renew: Script::new(RENEW_LUA),
        finish: with_common(FINISH_LUA),
        retry: with_common(RETRY_LUA),
        reap: with_common(REAP_LUA),
        abandon: with_common(ABANDON_LUA),
    }
});

/// Submit: refuse past the capacity, else record the job and enqueue it.
///
/// KEYS: queue, processing, job. ARGV: id, spec, now, capacity, ttl_ms,
/// max_attempts, notify (`1` when a request waits on it), max_units and max_io_ms
/// (the API server's caps; empty when unknown). Returns 1, or 0 when full.
const SUBMIT_LUA: &str = r"
  if redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then
    return 0
  end
  redis.call('HSET', KEYS[3], 'spec', ARGV[2], 'status', 'queued', 'queued_at', ARGV[3],
    'attempts', 0, 'ttl_ms', ARGV[5], 'max_attempts', ARGV[6], 'notify', ARGV[7])
  if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[3], 'max_units', ARGV[8], 'max_io_ms', ARGV[9])
  end
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1";

/// Take: move the oldest job to `processing`, lease it and make `token` its owner,
/// in one step.
///
/// KEYS: queue, processing. ARGV: token, lease_ms (at least 1, checked before
/// anything moves), now, job key prefix. Returns nil when the queue is empty, else
/// `{id, spec, attempts, max_units, max_io_ms}` (caps empty when not recorded);
/// `spec` is nil when the job's record is gone, in which case the id is dropped from
/// `processing` and nothing is leased.
const TAKE_LUA: &str = r"
  if (tonumber(ARGV[2]) or 0) < 1 then
    return redis.error_reply('the lease must be at least 1 ms')
  end
  local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
  if not id then return false end
  local job = ARGV[4] .. id
  local spec = redis.call('HGET', job, 'spec')
  if not spec then
    redis.call('LREM', KEYS[2], 1, id)
    return {id, false, 0, '', ''}
  end
  redis.call('SET', job .. ':lease', ARGV[1], 'PX', ARGV[2])
  redis.call('HSET', job, 'status', 'running', 'started_at', ARGV[3], 'owner', ARGV[1])
  local attempts = redis.call('HINCRBY', job, 'attempts', 1)
  return {id, spec, attempts, redis.call('HGET', job, 'max_units') or '',
    redis.call('HGET', job, 'max_io_ms') or ''}";

/// Renew: extend the lease (re-creating it if it lapsed), only while `token` still
/// owns the running job.
///
/// KEYS: job, lease. ARGV: token, lease_ms. Returns 1 renewed, 0 not the owner.
const RENEW_LUA: &str = r"
  if (tonumber(ARGV[2]) or 0) < 1 then
    return redis.error_reply('the lease must be at least 1 ms')
  end
  if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
    or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
    return 0
  end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return 1";

/// Functions shared by the scripts that end or hand back a taken job. Every one of
/// them takes KEYS: queue, processing, job, lease, done, and as its last ARGV the
/// least ttl of a completion signal (`signal` reads it there).
const COMMON_LUA: &str = r"
  -- A finished job's record expires after its ttl (never 0: PEXPIRE 0 deletes).
  local function keep_for_ttl(job)
    local ttl = redis.call('HGET', job, 'ttl_ms')
    if ttl then redis.call('PEXPIRE', job, math.max(tonumber(ttl) or 0, 1)) end
  end
  -- Wakes the request waiting on the job, if one is.
  local function signal(job, done)
    if redis.call('HGET', job, 'notify') == '1' then
      redis.call('LPUSH', done, '1')
      local ttl = tonumber(redis.call('HGET', job, 'ttl_ms') or '0') or 0
      redis.call('PEXPIRE', done, math.max(ttl, tonumber(ARGV[#ARGV])))
    end
  end
  -- A record that expired or was deleted under a taken id: drop the id and the
  -- caller's lease, recreate nothing.
  local function forget(processing, lease, id, token)
    redis.call('LREM', processing, 0, id)
    if token and redis.call('GET', lease) == token then redis.call('DEL', lease) end
    return -1
  end
  -- Back to the front of the queue, or failed once its attempts are used. The
  -- caller has removed the id from processing.
  local function hand_back(queue, job, lease, done, id, reason, now)
    redis.call('DEL', lease)
    redis.call('HDEL', job, 'owner')
    local attempts = tonumber(redis.call('HGET', job, 'attempts') or '0')
    local most = tonumber(redis.call('HGET', job, 'max_attempts') or '1')
    if attempts >= most then
      redis.call('HSET', job, 'status', 'failed', 'finished_at', now,
        'error', reason .. ' (attempt ' .. attempts .. ' of ' .. most .. ')')
      keep_for_ttl(job)
      signal(job, done)
      return 2
    end
    redis.call('HSET', job, 'status', 'queued', 'last_error', reason)
    redis.call('RPUSH', queue, id)
    return 1
  end";

/// Finish: record the outcome, only for the owner of the running job.
///
/// ARGV: id, token, status (`done`/`failed`), field (`result`/`error`), value, now,
/// done-key minimum ttl. Returns 1 recorded, 0 refused (not the owner, or not
/// running), -1 the record is gone (nothing recreated).
const FINISH_LUA: &str = r"
  if redis.call('EXISTS', KEYS[3]) == 0 then return forget(KEYS[2], KEYS[4], ARGV[1], ARGV[2]) end
  if redis.call('HGET', KEYS[3], 'owner') ~= ARGV[2]
    or redis.call('HGET', KEYS[3], 'status') ~= 'running' then
    return 0
  end
  redis.call('HSET', KEYS[3], 'status', ARGV[3], ARGV[4], ARGV[5], 'finished_at', ARGV[6])
  redis.call('HDEL', KEYS[3], 'owner')
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('DEL', KEYS[4])
  keep_for_ttl(KEYS[3])
  signal(KEYS[3], KEYS[5])
  return 1";

/// Retry: the owner gives the job back after a failed attempt (its job timeout).
///
/// ARGV: id, token, reason, now, done-key minimum ttl. Returns 1 re-queued, 2
/// failed (attempts used), 0 refused (not the owner), -1 the record is gone.
const RETRY_LUA: &str = r"
  if redis.call('EXISTS', KEYS[3]) == 0 then return forget(KEYS[2], KEYS[4], ARGV[1], ARGV[2]) end
  if redis.call('HGET', KEYS[3], 'owner') ~= ARGV[2]
    or redis.call('HGET', KEYS[3], 'status') ~= 'running' then
    return 0
  end
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return hand_back(KEYS[1], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[3], ARGV[4])";

/// Reap: the lease check and the hand-back in one step, so no other reaper, job
/// timeout or take can come in between.
///
/// ARGV: id, reason, now, done-key minimum ttl. Returns 0 (refused: the lease is
/// live, or the job is no longer processing), 1 re-queued, 2 failed, -1 the record
/// is gone (the id is dropped).
const REAP_LUA: &str = r"
  if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
  if redis.call('LREM', KEYS[2], 0, ARGV[1]) == 0 then return 0 end
  if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
  if redis.call('HGET', KEYS[3], 'status') ~= 'running' then return 0 end
  return hand_back(KEYS[1], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3])";

/// Abandon: the waiting request gave up. A job still queued is withdrawn (failed
/// with `reason`); one already taken runs on and is kept as a background job. No
/// one is signalled either way.
///
/// ARGV: id, reason, now, done-key minimum ttl. Returns 1 withdrawn, 0 not queued,
/// -1 the record is gone.
const ABANDON_LUA: &str = r"
  redis.call('DEL', KEYS[5])
  if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
  redis.call('HSET', KEYS[3], 'notify', '0')
  if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
  redis.call('HSET', KEYS[3], 'status', 'failed', 'finished_at', ARGV[3], 'error', ARGV[2])
  keep_for_ttl(KEYS[3])
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
    waits: Arc<WaitConnections>,
    settings: QueueSettings,
    /// The caps this API server checked its jobs against, recorded in each job so
    /// a queue worker can check them again (see [`RedisQueue::with_limits`]).
    limits: Option<Limits>,
}

/// A job a queue worker has taken.
#[derive(Debug, Clone)]
pub struct Taken {
    pub id: String,
    /// What to run; `Err` when the record is unreadable (then nothing should run).
    pub spec: Result<JobSpec, String>,
    pub attempt: u32,
    /// The caps of the API server that accepted the job, if it recorded them.
    pub caps: Option<Limits>,
}

/// What a finish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The outcome is the job's.
    Recorded,
    /// Nothing changed: the token does not own the running job (its lease lapsed
    /// and a reaper re-queued it, another worker took it, or it is finished).
    Refused,
    /// Nothing changed: the job's record expired or was deleted, and is not
    /// recreated.
    Gone,
}

/// What a retry or a reap did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handback {
    /// Back in the queue for another attempt.
    Requeued,
    /// Failed for good: it had used its attempts.
    Failed,
    /// Nothing changed: a retry's token does not own the running job, or a
    /// reaper found a live lease or the job no longer processing.
    Refused,
    /// The job's record expired or was deleted; its id was dropped, nothing was
    /// recreated.
    Gone,
}

impl Handback {
    fn from_code(code: i32) -> Handback {
        match code {
            1 => Handback::Requeued,
            2 => Handback::Failed,
            -1 => Handback::Gone,
            _ => Handback::Refused,
        }
    }
}

/// What giving up on a waited-for job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// It was still queued: withdrawn and marked failed, so no worker runs it.
    Withdrawn,
    /// A worker has it (or it finished just now): it runs on to its end.
    Taken,
    /// Its record is gone.
    Gone,
}

fn job_key(id: &str) -> String {
    format!("{JOB_PREFIX}{id}")
}

fn lease_key(id: &str) -> String {
    format!("{JOB_PREFIX}{id}:lease")
}

fn done_key(id: &str) -> String {
    format!("{JOB_PREFIX}{id}:done")
}

/// A lease in whole milliseconds, never 0 (`PX 0` is an error that would leave a
/// taken job without a lease).
fn lease_ms(lease: Duration) -> u64 {
    (lease.as_millis() as u64).max(1)
}

fn now() -> String {
    timestamp(SystemTime::now())
}

fn unavailable(e: redis::RedisError) -> Refusal {
    Refusal::Unavailable(e.to_string())
}

/// `script` with the five keys of job `id`: queue, processing, job, lease, done.
fn with_job_keys<'a>(script: &'a Script, id: &str) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(QUEUE)
        .key(PROCESSING)
        .key(job_key(id))
        .key(lease_key(id))
        .key(done_key(id));
    invocation
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
            waits: Arc::new(WaitConnections {
                client,
                idle: Mutex::new(Vec::new()),
            }),
            settings,
            limits: None,
        })
    }

    /// Records `limits` (the caps this API server checks requests against) in
    /// every job it submits from now on, so that the queue worker that takes one
    /// checks its size again before running it.
    pub fn with_limits(mut self, limits: Limits) -> RedisQueue {
        self.limits = Some(limits);
        self
    }

    /// Records and enqueues a background job (`POST /jobs`); returns its id.
    pub async fn submit(&self, spec: JobSpec) -> Result<String, Refusal> {
        self.submit_job(spec, false).await
    }

    /// Records and enqueues a job that a request will wait for with
    /// [`RedisQueue::wait`]: its finish signals the waiter.
    pub async fn submit_waited(&self, spec: JobSpec) -> Result<String, Refusal> {
        self.submit_job(spec, true).await
    }

    async fn submit_job(&self, spec: JobSpec, notify: bool) -> Result<String, Refusal> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let script = &SCRIPTS.submit;
        let spec_json = serde_json::to_string(&spec).expect("a spec serialises");
        let (max_units, max_io_ms) = match self.limits {
            Some(limits) => (limits.max_units.to_string(), limits.max_io_ms.to_string()),
            None => (String::new(), String::new()),
        };
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
            .arg(if notify { "1" } else { "0" })
            .arg(max_units)
            .arg(max_io_ms)
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

    /// Waits until job `id` (submitted with [`RedisQueue::submit_waited`]) has
    /// finished, or `deadline`: `Ok(Some(view))` finished (done or failed),
    /// `Ok(None)` the deadline came first, `Err` Redis failed or lost the record. One blocking `BLPOP` on a connection of
    /// its own, then one read of the job: two Redis calls however long it waits.
    pub async fn wait(&self, id: &str, deadline: Instant) -> Result<Option<JobView>, Refusal> {
        if !self.waits.pop(&done_key(id), deadline).await? {
            return Ok(None);
        }
        match self.view(id).await? {
            Some(view) if matches!(view.status, Status::Done | Status::Failed) => Ok(Some(view)),
            _ => Err(Refusal::Unavailable(format!(
                "job {id} was signalled finished but its record is not"
            ))),
        }
    }

    /// Gives up waiting for job `id`: withdraws it if no worker has taken it yet
    /// (failed with `reason`), so a queue with no workers does not fill up with
    /// jobs no one waits for.
    pub async fn abandon(&self, id: &str, reason: &str) -> Result<Abandoned, Refusal> {
        let code: i32 = with_job_keys(&SCRIPTS.abandon, id)
            .arg(id)
            .arg(reason)
            .arg(now())
            .arg(DONE_KEY_MIN_TTL_MS)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(match code {
            1 => Abandoned::Withdrawn,
            -1 => Abandoned::Gone,
            _ => Abandoned::Taken,
        })
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

    /// Takes the oldest queued job under a lease of `lease` (at least 1 ms), owned
    /// by `token` (use a fresh one per take). A job whose record is gone is
    /// skipped: the next one is taken instead.
    pub async fn take(&self, token: &str, lease: Duration) -> redis::RedisResult<Option<Taken>> {
        type Reply = (String, Option<String>, u32, String, String);
        loop {
            let taken: Option<Reply> = SCRIPTS
                .take
                .key(QUEUE)
                .key(PROCESSING)
                .arg(token)
                .arg(lease_ms(lease))
                .arg(now())
                .arg(JOB_PREFIX)
                .invoke_async(&mut self.connection.clone())
                .await?;
            let Some((id, spec, attempt, max_units, max_io_ms)) = taken else {
                return Ok(None);
            };
            let Some(spec) = spec else {
                tracing::warn!(%id, "a queued job's record is gone; skipped");
                continue;
            };
            let spec = serde_json::from_str(&spec)
                .map_err(|e| format!("the job's spec {spec:?} is unreadable: {e}"));
            let caps = match (max_units.parse(), max_io_ms.parse()) {
                (Ok(max_units), Ok(max_io_ms)) => Some(Limits {
                    max_units,
                    max_io_ms,
                }),
                _ => None,
            };
            return Ok(Some(Taken {
                id,
                spec,
                attempt,
                caps,
            }));
        }
    }

    /// Extends the lease on job `id` if `token` still owns it: `false` means it
    /// was taken over (or finished) and the caller should give it up.
    pub async fn renew(&self, id: &str, token: &str, lease: Duration) -> redis::RedisResult<bool> {
        let renewed: i32 = SCRIPTS
            .renew
            .key(job_key(id))
            .key(lease_key(id))
            .arg(token)
            .arg(lease_ms(lease))
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Records that job `id`, taken with `token`, finished: `Ok(result)` done,
    /// `Err(reason)` failed for good. Only the job's owner can; see [`Finish`].
    pub async fn finish(
        &self,
        id: &str,
        token: &str,
        outcome: Result<serde_json::Value, String>,
    ) -> redis::RedisResult<Finish> {
        let (status, field, value) = match outcome {
            Ok(result) => ("done", "result", result.to_string()),
            Err(reason) => ("failed", "error", reason),
        };
        let code: i32 = with_job_keys(&SCRIPTS.finish, id)
            .arg(id)
            .arg(token)
            .arg(status)
            .arg(field)
            .arg(value)
            .arg(now())
            .arg(DONE_KEY_MIN_TTL_MS)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(match code {
            1 => Finish::Recorded,
            -1 => Finish::Gone,
            _ => Finish::Refused,
        })
    }

    /// The owner (`token`) of job `id` gives it back after a failed attempt
    /// (`reason`): re-queued, or failed if it has used its attempts.
    pub async fn retry(&self, id: &str, token: &str, reason: &str) -> redis::RedisResult<Handback> {
        let code: i32 = with_job_keys(&SCRIPTS.retry, id)
            .arg(id)
            .arg(token)
            .arg(reason)
            .arg(now())
            .arg(DONE_KEY_MIN_TTL_MS)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(Handback::from_code(code))
    }

    /// Returns job `id` to the queue (or fails it) if it is processing without a
    /// live lease, checking and acting in one step.
    pub async fn reap_one(&self, id: &str) -> redis::RedisResult<Handback> {
        let code: i32 = with_job_keys(&SCRIPTS.reap, id)
            .arg(id)
            .arg("the worker running it was lost (no heartbeat)")
            .arg(now())
            .arg(DONE_KEY_MIN_TTL_MS)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(Handback::from_code(code))
    }

    /// Returns every job in `processing` whose lease has expired to the queue (or
    /// fails it); returns how many it handed back. The list read first may be
    /// stale by the time each job is looked at; that is safe because
    /// [`RedisQueue::reap_one`] checks again in its own atomic step, and each step
    /// stays O(1) so a long `processing` list never holds Redis up.
    pub async fn reap(&self) -> redis::RedisResult<usize> {
        let processing: Vec<String> = self.connection.clone().lrange(PROCESSING, 0, -1).await?;
        let mut handed_back = 0;
        for id in processing {
            if matches!(
                self.reap_one(&id).await?,
                Handback::Requeued | Handback::Failed
            ) {
                handed_back += 1;
            }
        }
        Ok(handed_back)
    }
}

/// Connections for blocking waits, one per waiting request, reused.
struct WaitConnections {
    client: redis::Client,
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl WaitConnections {
    /// `BLPOP key` until `deadline`: whether something was popped. A connection
    /// that failed or did not answer in time is dropped, not reused: a late reply
    /// would be read by its next user.
    async fn pop(&self, key: &str, deadline: Instant) -> Result<bool, Refusal> {
        let idle = self.idle.lock().expect("not poisoned").pop();
        let reused = idle.is_some();
        let connection = match idle {
            Some(connection) => connection,
            None => self.open().await?,
        };
        match self.pop_on(connection, key, deadline).await {
            // An idle connection may have died with a Redis restart since its last
            // use: one more try on a fresh one before the request is failed.
            Err(e) if reused && (e.is_io_error() || e.is_connection_dropped()) => self
                .pop_on(self.open().await?, key, deadline)
                .await
                .map_err(unavailable),
            popped => popped.map_err(unavailable),
        }
    }

    async fn open(&self) -> Result<MultiplexedConnection, Refusal> {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| Refusal::Unavailable("Redis did not accept a connection".into()))?
        .map_err(unavailable)
    }

    async fn pop_on(
        &self,
        mut connection: MultiplexedConnection,
        key: &str,
        deadline: Instant,
    ) -> redis::RedisResult<bool> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // BLPOP's timeout is in seconds, to the millisecond; 0 would mean for ever.
        let ms = remaining.as_millis() as u64;
        if ms == 0 {
            self.put_back(connection);
            return Ok(false);
        }
        let mut blpop = redis::cmd("BLPOP");
        blpop
            .arg(key)
            .arg(format!("{}.{:03}", ms / 1000, ms % 1000));
        let blpop = blpop.query_async::<Option<(String, String)>>(&mut connection);
        match tokio::time::timeout(remaining + BLOCK_GRACE, blpop).await {
            Ok(Ok(popped)) => {
                self.put_back(connection);
                Ok(popped.is_some())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "Redis did not answer a blocking wait in time",
            ))),
        }
    }

    fn put_back(&self, connection: MultiplexedConnection) {
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < IDLE_WAIT_CONNECTIONS {
            idle.push(connection);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_never_zero_milliseconds() {
        assert_eq!(lease_ms(Duration::from_nanos(1)), 1);
        assert_eq!(lease_ms(Duration::from_micros(999)), 1);
        assert_eq!(lease_ms(Duration::from_millis(10)), 10);
    }

    #[test]
    fn handback_codes() {
        assert_eq!(Handback::from_code(1), Handback::Requeued);
        assert_eq!(Handback::from_code(2), Handback::Failed);
        assert_eq!(Handback::from_code(0), Handback::Refused);
        assert_eq!(Handback::from_code(-1), Handback::Gone);
    }
}
