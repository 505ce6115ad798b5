//! What one server process needs to know to start, after the command line is parsed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::variant::Variant;

/// The settings of one server (or, for multi-worker, of its supervisor).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub variant: Variant,
    pub addr: SocketAddr,
    /// A Unix domain socket to listen on instead of `addr`.
    pub unix: Option<std::path::PathBuf>,
    /// Runtime worker threads; processes for multi-worker.
    pub workers: usize,
    /// Cap on `units`; `None` means about one second of work by the calibration.
    pub max_units: Option<u64>,
    pub max_io_ms: u64,
    pub slice: Duration,
    pub queue_capacity: usize,
    /// bounded-pool: longest an admitted job may wait to start; `None` admits
    /// everything (`--unbounded-queue`, for the ablation).
    pub queue_budget: Option<Duration>,
    /// bounded-pool: the scheduling priority of the pool's threads.
    pub pool_priority: crate::strategy::PoolPriority,
    /// The slow upstream `/work/upstream` calls (`--upstream`).
    pub upstream: Option<String>,
    /// Whether `--upstream` may name a non-loopback address.
    pub allow_remote: bool,
    pub shutdown_grace: Duration,
    /// The connection cap and header timeout (`--max-connections`,
    /// `--header-timeout`).
    pub connections: crate::connections::ConnectionLimits,
    /// Whether a queued heavy job whose client has gone is skipped instead of run
    /// (`--skip-abandoned`).
    pub skip_abandoned: bool,
    /// Most finished background jobs kept for their ttl (`--finished-jobs-kept`);
    /// with that many, `POST /jobs` is refused until the oldest expire.
    pub finished_jobs_kept: usize,
    /// Which process of a multi-worker group this is; `None` everywhere else
    /// (including a multi-worker supervisor).
    pub process_index: Option<usize>,
    /// The listening socket a `multi-worker` (shared-socket) supervisor passed down to
    /// this process as an inherited file descriptor; `None` everywhere else.
    pub listen_fd: Option<std::os::fd::RawFd>,
    /// A calibration handed down by a multi-worker parent.
    pub ns_per_unit: Option<f64>,
    /// Arguments that go before the server flags when a multi-worker parent starts
    /// this same program as one of its processes (empty for the `servers` binary; a
    /// subcommand name for a program that embeds the servers).
    pub process_args_prefix: Vec<String>,
    /// The Redis of the `redis-queue` variant.
    pub redis: Option<String>,
    /// How often a Redis job may be started before it is failed.
    pub max_attempts: u32,
    /// Most background jobs queued or running at once.
    pub jobs_capacity: usize,
    /// How long a finished background job's status is kept.
    pub job_ttl: Duration,
    /// redis-queue: how long `/work/cpu` and `/work/io` wait for their job, from
    /// the request's arrival, before answering 504 (`--wait-timeout`).
    pub wait_timeout: Duration,
    /// Whether the lag probe and the `/metrics` endpoints run (`--no-telemetry`).
    pub telemetry: bool,
    /// Whether every poll of each route and background job task is timed
    /// (`--no-poll-timing` turns it off, to measure what it costs); only with
    /// telemetry, which reports it.
    pub poll_timing: bool,
    /// The folder where the processes of a multi-worker group share their figures.
    pub telemetry_dir: Option<PathBuf>,
    /// A known regression: how long every `/health` waits before answering
    /// (`--inject-delay`, loopback only).
    pub inject_delay: Option<Duration>,
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The cargo profile and optimisation level this binary was built with, so reports
/// can tell an optimised build from a debug one.
pub fn build_profile() -> BuildProfile {
    BuildProfile {
        profile: env!("SERVERS_BUILD_PROFILE"),
        opt_level: env!("SERVERS_OPT_LEVEL"),
        debug_assertions: cfg!(debug_assertions),
    }
}

/// See [`build_profile`].
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BuildProfile {
    /// Cargo's `PROFILE`: `debug` for dev and test builds, `release` otherwise.
    pub profile: &'static str,
    pub opt_level: &'static str,
    pub debug_assertions: bool,
}
