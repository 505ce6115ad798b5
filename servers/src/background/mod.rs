//! Background jobs: `POST /jobs` answers 202 at once and the job runs later, its
//! status read with `GET /jobs/{id}`. The pattern the original question is about
//! ("my background task blocks every other request"), so it is measured too.
//!
//! - [`table`]: in-process, on every variant: the job runs through the variant's own
//!   strategy, so on `blocking-in-async` a background job still blocks the event
//!   loop, and on `rayon` it does not. Bounded, finished jobs expire.
//!
//! - [`redis_queue`]: the `redis-queue` variant: jobs in Redis, run by separate
//!   queue workers (`servers worker`); they survive API-server restarts and lost
//!   queue workers, and Redis restarts only where Redis persists them
//!   (`appendonly yes`).
//!
//! The types here are the HTTP shape shared by both backends.

pub mod redis_queue;
pub mod table;

use serde::{Deserialize, Serialize};

use crate::limits::{Limits, Size};
use crate::workload::Work;

/// Where a server keeps its background jobs.
pub enum JobStore {
    /// In this process, run through the variant's strategy.
    Memory(table::JobTable),
    /// In Redis, run by queue workers (`servers worker` processes).
    Redis(redis_queue::RedisQueue),
}

/// What `POST /jobs` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum JobSpec {
    /// `units` units of the CPU kernel.
    Cpu { units: u64 },
    /// A blocking call of `ms` milliseconds.
    Io { ms: u64 },
    /// One call to the upstream (`--upstream`) that waits `ms` milliseconds there.
    Upstream { ms: u64 },
}

impl JobSpec {
    /// Checks the size against the server's caps, as `/work/*` does; the message
    /// says what to send instead.
    pub fn validate(&self, limits: &Limits) -> Result<(), String> {
        let (size, value) = match *self {
            JobSpec::Cpu { units } => (Size::Units, units),
            JobSpec::Io { ms } | JobSpec::Upstream { ms } => (Size::Ms, ms),
        };
        limits.check(size, value)?;
        Ok(())
    }

    /// Its kind as `POST /jobs` names it: `cpu`, `io` or `upstream` (also the
    /// name its task's polls are timed under).
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Cpu { .. } => "cpu",
            JobSpec::Io { .. } => "io",
            JobSpec::Upstream { .. } => "upstream",
        }
    }

    /// The work it stands for.
    pub fn work(&self) -> Work {
        match *self {
            JobSpec::Cpu { units } => Work::Cpu { units },
            JobSpec::Io { ms } => Work::Io {
                duration: std::time::Duration::from_millis(ms),
            },
            JobSpec::Upstream { ms } => Work::Upstream {
                delay: std::time::Duration::from_millis(ms),
            },
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed,
}

/// `GET /jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    pub status: Status,
    pub job: JobSpec,
    /// RFC 3339 with microseconds, UTC.
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What the job computed (`compute_us`, `checksum` for CPU work), once done.
    pub result: Option<serde_json::Value>,
    /// Why it failed, once failed.
    pub error: Option<String>,
    /// Times the job was started (more than one after a queue worker was lost).
    pub attempts: u32,
}

/// `GET /backlog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    /// Accepted and not started.
    pub queued: u64,
    pub running: u64,
    /// Finished and still kept for status reads.
    pub finished: u64,
    /// Most jobs that may be queued or running at once; more are refused with 503.
    pub capacity: u64,
}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// As many jobs as the capacity are already queued or running.
    Full { capacity: usize },
    /// As many finished jobs as may be kept are kept (each for the ttl): room comes
    /// back when the oldest expires, in about `retry_after`.
    Kept {
        kept: usize,
        retry_after: std::time::Duration,
    },
    /// The backend (e.g. Redis) could not be reached.
    Unavailable(String),
}

/// A time as the API writes it.
pub fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}
