//! Command-line interface of the `servers` binary.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::ServerConfig;
use crate::variant::Variant;

const EXAMPLES: &str = "\
Examples:
  servers --list
  servers --variant spawn-blocking
  servers --variant multi-worker --workers 4 --port 8080
  servers --variant multi-worker-reuseport --workers 4 --port 8080
  servers --variant bounded-pool --queue-budget 250ms
  servers upstream --port 9000 --delay 200ms &
  servers --variant async-io --upstream http://127.0.0.1:9000
  curl 'http://127.0.0.1:8080/work/upstream?ms=200'
  servers --variant redis-queue --redis redis://127.0.0.1:6379 &
  servers worker --redis redis://127.0.0.1:6379 --concurrency 2
  curl 'http://127.0.0.1:8080/work/cpu?units=20000'
  curl http://127.0.0.1:8080/metrics        # Prometheus text; /metrics.json for JSON
  curl -d '{\"kind\": \"cpu\", \"units\": 20000}' -H 'content-type: application/json' \
       http://127.0.0.1:8080/jobs              # 202 {\"id\": ...}, then GET /jobs/ID

The first line on stdout is `listening on http://ADDR:PORT`; logs go to stderr
(set RUST_LOG=debug for more).";

/// Reference HTTP servers, one per strategy for running heavy work beside an async
/// event loop.
#[derive(Debug, Parser)]
#[command(
    name = "servers",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print every variant with a one-line explanation, then exit.
    #[arg(long, conflicts_with = "variant")]
    pub list: bool,

    /// The strategy to serve.
    #[arg(long, value_enum, required_unless_present = "list")]
    pub variant: Option<Variant>,

    /// Address to listen on. Anything but loopback also needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Port to listen on; 0 lets the kernel pick a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// Allow --bind to name a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,

    /// Listen on this Unix domain socket instead of --bind/--port (as `uvicorn
    /// --uds` does behind a proxy); the file is replaced if it is a stale socket,
    /// and removed on exit. Not for the multi-worker variants.
    #[arg(long, conflicts_with_all = ["port", "bind"])]
    pub unix: Option<std::path::PathBuf>,

    /// Runtime worker threads, or processes for the multi-worker variants
    /// [default: cores].
    #[arg(long)]
    pub workers: Option<NonZeroUsize>,

    /// Largest `units` one request may ask for [default: about one second of work].
    #[arg(long)]
    pub max_units: Option<NonZeroU64>,

    /// Largest `ms` one /work/io request may ask for.
    #[arg(long, default_value = "1000")]
    pub max_io_ms: NonZeroU64,

    /// Length of one slice of work in the cooperative variant.
    #[arg(long, default_value = "50us", value_parser = parse_positive_duration)]
    pub slice: Duration,

    /// Jobs that may wait in the sequential-queue variant besides the running one.
    #[arg(long, default_value = "64")]
    pub queue_capacity: NonZeroUsize,

    /// bounded-pool: admit a job only if the work ahead of it lets it start within
    /// this long; refuse the rest with 503 and Retry-After.
    #[arg(long, default_value = "500ms", value_parser = parse_positive_duration)]
    pub queue_budget: Duration,

    /// bounded-pool: admit every job, however long the queue (the ablation's
    /// "bound off"; the queue then grows until clients time out).
    #[arg(long)]
    pub unbounded_queue: bool,

    /// bounded-pool: the scheduling priority of the pool's threads: idle
    /// (SCHED_IDLE), nice (19), or normal (the ablation's "priority off"; see the
    /// README's ablation for what each measured).
    #[arg(long, value_enum, default_value = "idle")]
    pub pool_priority: crate::strategy::PoolPriority,

    /// The slow HTTP service GET /work/upstream calls (http://IP:PORT; `servers
    /// upstream` is one). Loopback only unless --allow-remote.
    #[arg(long)]
    pub upstream: Option<String>,

    /// The Redis of the redis-queue variant (redis://HOST:PORT).
    #[arg(long)]
    pub redis: Option<String>,

    /// redis-queue: how often a job may be started (after lost queue workers or
    /// timeouts) before it is failed.
    #[arg(long, default_value = "3")]
    pub max_attempts: NonZeroU32,

    /// Most background jobs (POST /jobs) queued or running at once; more get 503.
    #[arg(long, default_value = "1024")]
    pub jobs_capacity: NonZeroUsize,

    /// How long a finished background job's status stays readable.
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub job_ttl: Duration,

    /// redis-queue: how long GET /work/cpu and /work/io wait for a queue worker to
    /// finish their job, from the request's arrival; then 504 (a job no worker has
    /// taken yet is withdrawn).
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub wait_timeout: Duration,

    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    pub shutdown_grace: Duration,

    /// Most connections served at once; more wait in the kernel's accept queue.
    /// Lowered to fit the open-file limit (raised to its hard limit at start).
    #[arg(long, default_value = "10000")]
    pub max_connections: NonZeroUsize,

    /// How long a client has to send a complete request head, counted from its
    /// connection opening or its previous response ending (so it is also the
    /// keep-alive idle timeout); a slower client is disconnected. A request
    /// being answered is never cut by it.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub header_timeout: Duration,

    /// Skip a queued heavy job whose client has gone before a thread takes it
    /// (counted in /metrics as server_jobs_skipped_abandoned_total). Off by
    /// default, so each strategy queues as its library does.
    #[arg(long)]
    pub skip_abandoned: bool,

    /// Most finished background jobs kept for --job-ttl; with that many kept,
    /// POST /jobs answers 503 until the oldest expire.
    #[arg(long, default_value = "100000")]
    pub finished_jobs_kept: NonZeroUsize,

    /// Turn off the event-loop lag probe and the /metrics and /metrics.json
    /// endpoints (to measure what the telemetry itself costs).
    #[arg(long)]
    pub no_telemetry: bool,

    /// Turn off the timing of every poll of each route and background job task
    /// (which code blocked the event loop), to measure what it costs.
    #[arg(long)]
    pub no_poll_timing: bool,

    /// A known regression, for measuring a regression check: every /health waits
    /// this long (without blocking anything) before it answers. Off by default;
    /// loopback only.
    #[arg(long, value_parser = parse_positive_duration)]
    pub inject_delay: Option<Duration>,

    /// Set by a multi-worker (or multi-worker-reuseport) parent: where its processes
    /// share their figures.
    #[arg(long, hide = true)]
    pub telemetry_dir: Option<std::path::PathBuf>,

    /// Set by a multi-worker (or multi-worker-reuseport) parent on the processes it
    /// starts: which one this is.
    #[arg(long, hide = true)]
    pub process_index: Option<usize>,

    /// Set by a multi-worker (shared-socket) parent on the processes it starts: the
    /// inherited file descriptor of the listening socket they all accept from.
    #[arg(long, hide = true)]
    pub listen_fd: Option<i32>,

    /// Set by a multi-worker parent so its processes share one calibration.
    #[arg(long, hide = true)]
    pub ns_per_unit: Option<f64>,
}

/// Commands other than serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run jobs from the redis-queue variant's Redis queue (start as many as you like,
    /// on any machines that reach the Redis).
    #[command(name = "worker")]
    QueueWorker(QueueWorkerArgs),
    /// A slow HTTP service for GET /work/upstream to call: GET /delay?ms=N answers
    /// after N ms, thousands at once (GET /stats counts them).
    Upstream(UpstreamArgs),
}

/// Options of `servers upstream`.
#[derive(Debug, Args)]
pub struct UpstreamArgs {
    /// Address to listen on. Anything but loopback also needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Port to listen on; 0 lets the kernel pick a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// Allow --bind to name a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,

    /// How long a call without `ms` waits.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub delay: Duration,

    /// How long waiting calls may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value = "1s", value_parser = parse_positive_duration)]
    pub shutdown_grace: Duration,
}

/// Options of `servers worker`, a queue worker.
#[derive(Debug, Args)]
pub struct QueueWorkerArgs {
    /// The Redis holding the queue (redis://HOST:PORT).
    #[arg(long)]
    pub redis: String,

    /// Jobs run at once [default: cores].
    #[arg(long)]
    pub concurrency: Option<NonZeroUsize>,

    /// How long a taken job stays leased without a heartbeat; after that another
    /// queue worker takes it over. At least 10ms.
    #[arg(long, default_value = "5s", value_parser = crate::queue_worker::parse_visibility_timeout)]
    pub visibility_timeout: Duration,

    /// How long one attempt of a job may run before it is given up.
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub job_timeout: Duration,

    /// How long running jobs may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    pub shutdown_grace: Duration,

    /// The slow HTTP service `upstream` jobs call (loopback only).
    #[arg(long)]
    pub upstream: Option<String>,
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write durations like 50us, 500ms, 5s)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

impl Cli {
    /// Checks what clap cannot express, returning a message that says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !self.bind.is_loopback() && !self.allow_remote {
            return Err(format!(
                "--bind {} is not a loopback address; add --allow-remote to serve other machines",
                self.bind
            ));
        }
        if self.inject_delay.is_some() && !self.bind.is_loopback() {
            return Err(
                "--inject-delay slows every /health on purpose; it is refused outside loopback"
                    .into(),
            );
        }
        if self.process_index.is_some() && !self.variant.is_some_and(Variant::is_multi_process) {
            return Err(
                "--process-index is only for multi-worker and multi-worker-reuseport processes"
                    .into(),
            );
        }
        if self.variant == Some(Variant::MultiWorker)
            && self.process_index.is_some()
            && self.listen_fd.is_none()
        {
            return Err(
                "a multi-worker process takes its supervisor's socket: --process-index needs --listen-fd"
                    .into(),
            );
        }
        if self.unix.is_some() && self.variant.is_some_and(Variant::is_multi_process) {
            return Err(
                "--unix is for the single-process variants; the multi-worker ones share a TCP port"
                    .into(),
            );
        }
        if let Some(fd) = self.listen_fd {
            if self.variant != Some(Variant::MultiWorker) || self.process_index.is_none() {
                return Err("--listen-fd is only for multi-worker processes".into());
            }
            if fd < 0 {
                return Err("--listen-fd must be a file descriptor number".into());
            }
        }
        match (self.variant, &self.redis) {
            (Some(Variant::RedisQueue), None) => {
                return Err("redis-queue needs --redis redis://HOST:PORT (scripts/redis-throwaway.sh starts one)".into())
            }
            (Some(v), Some(_)) if v != Variant::RedisQueue => {
                return Err("--redis is only for the redis-queue variant".into())
            }
            _ => {}
        }
        if self.wait_timeout != crate::strategy::RedisQueueStrategy::DEFAULT_WAIT_TIMEOUT
            && self.variant != Some(Variant::RedisQueue)
        {
            return Err("--wait-timeout is only for the redis-queue variant".into());
        }
        let bounded_pool = self.variant == Some(Variant::BoundedPool);
        let bounded_pool_flags = self.unbounded_queue
            || self.queue_budget != Duration::from_millis(500)
            || self.pool_priority != crate::strategy::PoolPriority::Idle;
        if bounded_pool_flags && !bounded_pool {
            return Err(
                "--queue-budget, --unbounded-queue and --pool-priority are only for the bounded-pool variant"
                    .into(),
            );
        }
        if self.telemetry_dir.is_some() && self.process_index.is_none() {
            return Err("--telemetry-dir is only for multi-worker processes".into());
        }
        if let Some(ns) = self.ns_per_unit {
            if !(ns.is_finite() && ns > 0.0) {
                return Err("--ns-per-unit must be a positive number".into());
            }
        }
        Ok(())
    }

    /// The server configuration, once [`Cli::validate`] has passed and `--list` was not
    /// given.
    pub fn into_config(self) -> ServerConfig {
        let cores = crate::config::cores();
        ServerConfig {
            variant: self
                .variant
                .expect("clap requires --variant without --list"),
            addr: SocketAddr::new(self.bind, self.port),
            unix: self.unix,
            workers: self.workers.map_or(cores, NonZeroUsize::get),
            max_units: self.max_units.map(NonZeroU64::get),
            max_io_ms: self.max_io_ms.get(),
            slice: self.slice,
            queue_capacity: self.queue_capacity.get(),
            queue_budget: (!self.unbounded_queue).then_some(self.queue_budget),
            pool_priority: self.pool_priority,
            upstream: self.upstream,
            allow_remote: self.allow_remote,
            shutdown_grace: self.shutdown_grace,
            connections: crate::connections::ConnectionLimits {
                max_connections: self.max_connections.get(),
                header_timeout: Some(self.header_timeout),
            },
            skip_abandoned: self.skip_abandoned,
            finished_jobs_kept: self.finished_jobs_kept.get(),
            process_index: self.process_index,
            listen_fd: self.listen_fd,
            ns_per_unit: self.ns_per_unit,
            process_args_prefix: Vec::new(),
            redis: self.redis,
            max_attempts: self.max_attempts.get(),
            jobs_capacity: self.jobs_capacity.get(),
            job_ttl: self.job_ttl,
            wait_timeout: self.wait_timeout,
            telemetry: !self.no_telemetry,
            poll_timing: !self.no_telemetry && !self.no_poll_timing,
            telemetry_dir: self.telemetry_dir,
            inject_delay: self.inject_delay,
        }
    }
}

/// Runs the parsed command line: `--list`, or a server until it is stopped. Shared
/// by the `servers` binary and `loadgen serve`; `process_args_prefix` is what must
/// precede the server flags when this same program is started as a multi-worker
/// process (empty for `servers`).
pub fn run(cli: Cli, process_args_prefix: Vec<String>) -> ExitCode {
    if let Some(Command::Upstream(args)) = cli.command {
        if !args.bind.is_loopback() && !args.allow_remote {
            Cli::command()
                .error(
                    ErrorKind::ValueValidation,
                    format!(
                        "--bind {} is not a loopback address; add --allow-remote to serve other machines",
                        args.bind
                    ),
                )
                .exit();
        }
        if args.delay > Duration::from_millis(crate::upstream::service::MAX_DELAY_MS) {
            Cli::command()
                .error(ErrorKind::ValueValidation, "--delay may be at most 60s")
                .exit();
        }
        crate::init_tracing();
        let config = crate::upstream::service::UpstreamConfig {
            addr: SocketAddr::new(args.bind, args.port),
            delay: args.delay,
            shutdown_grace: args.shutdown_grace,
        };
        return match crate::upstream::service::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::QueueWorker(args)) = cli.command {
        crate::init_tracing();
        if let Some(url) = &args.upstream {
            if let Err(error) = crate::upstream::client::configure(url, false) {
                Cli::command()
                    .error(ErrorKind::ValueValidation, format!("{error:#}"))
                    .exit();
            }
        }
        let config = crate::queue_worker::QueueWorkerConfig {
            redis: args.redis,
            concurrency: args
                .concurrency
                .map_or_else(crate::config::cores, NonZeroUsize::get),
            visibility_timeout: args.visibility_timeout,
            job_timeout: args.job_timeout,
            shutdown_grace: args.shutdown_grace,
        };
        return match crate::queue_worker::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.list {
        let width = Variant::ALL
            .iter()
            .map(|v| v.name().len())
            .max()
            .unwrap_or(0);
        for variant in Variant::ALL {
            println!("{:<width$} {}", variant.name(), variant.summary());
        }
        return ExitCode::SUCCESS;
    }
    if let Err(message) = cli.validate() {
        // Exits with status 2, like every other command-line error.
        Cli::command()
            .error(ErrorKind::ValueValidation, message)
            .exit();
    }
    if let Some(url) = &cli.upstream {
        if let Err(error) = crate::upstream::client::configure(url, cli.allow_remote) {
            Cli::command()
                .error(ErrorKind::ValueValidation, format!("{error:#}"))
                .exit();
        }
    }
    crate::init_tracing();
    let mut config = cli.into_config();
    config.process_args_prefix = process_args_prefix;
    match crate::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
