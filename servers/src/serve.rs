//! Running one server process: build the variant's runtime and strategy, bind (or
//! take over the socket a `multi-worker` supervisor passed down), print the
//! `listening on` line, serve until SIGINT/SIGTERM.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::background::redis_queue::{QueueSettings, RedisQueue};
use crate::background::table::JobTable;
use crate::background::JobStore;
use crate::config::{build_profile, cores, ServerConfig};
use crate::connections;
use crate::limits::Limits;
use crate::listener;
use crate::shutdown::Shutdown;
use crate::strategy::{
    AsyncIo, BlockInPlace, BoundedPool, Cooperative, Inline, RayonPool, RedisQueueStrategy,
    SequentialQueue, SpawnBlocking, Strategy,
};
use crate::telemetry::{traffic, Group, Telemetry};
use crate::variant::{RuntimeFlavor, Variant};
use crate::workload::Calibration;

/// How long blocking-pool jobs may hold up the exit once serving has stopped.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// The strategy object for `variant`.
fn build_strategy(
    config: &ServerConfig,
    calibration: Calibration,
    redis: Option<&RedisQueue>,
) -> anyhow::Result<Box<dyn Strategy>> {
    Ok(match config.variant {
        Variant::RedisQueue => Box::new(
            RedisQueueStrategy::new(redis.context("redis-queue needs --redis")?.clone())
                .with_wait_timeout(config.wait_timeout),
        ),
        Variant::BlockingInAsync
        | Variant::CurrentThread
        | Variant::MultiWorker
        | Variant::MultiWorkerReuseport => Box::new(Inline),
        Variant::SpawnBlocking => Box::new(SpawnBlocking),
        Variant::BlockInPlace => Box::new(BlockInPlace),
        Variant::Rayon => Box::new(RayonPool::new(cores())?),
        Variant::Cooperative => Box::new(Cooperative::new(
            config.slice,
            calibration.units_for(config.slice),
        )),
        Variant::SequentialQueue => Box::new(SequentialQueue::new(config.queue_capacity)?),
        Variant::BoundedPool => Box::new(BoundedPool::new(
            cores(),
            config.pool_priority,
            config.queue_budget,
            calibration,
        )?),
        Variant::AsyncIo => Box::new(AsyncIo),
    })
}

/// The tokio runtime a process of `config.variant` runs on.
fn build_runtime(config: &ServerConfig) -> std::io::Result<tokio::runtime::Runtime> {
    match config.variant.runtime_flavor() {
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers)
            .enable_all()
            .build(),
        RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

/// Serves one process of `config.variant` until a shutdown signal; blocks the caller.
pub fn serve(config: &ServerConfig, calibration: Calibration) -> anyhow::Result<()> {
    if let Some(path) = &config.unix {
        let (listener, file) = bind_unix(path)?;
        return serve_on(config, calibration, Bound::Unix(listener, file));
    }
    let std_listener = match config.listen_fd {
        // A process of `multi-worker`: the supervisor's socket, shared by the group.
        Some(fd) => listener::inherited(fd).context("cannot take over the shared socket")?,
        // A process of `multi-worker-reuseport` binds its own socket on the group's
        // port; every other variant just listens.
        None => listener::listen(config.addr, config.variant == Variant::MultiWorkerReuseport)
            .with_context(|| format!("cannot listen on {}", config.addr))?,
    };
    serve_on(config, calibration, Bound::Tcp(std_listener))
}

/// A listening socket, bound.
enum Bound {
    Tcp(std::net::TcpListener),
    /// With its file, removed when the server is done (on every path).
    Unix(std::os::unix::net::UnixListener, SocketFile),
}

/// The file of a Unix socket this server bound; removed when dropped, if it is
/// still the same file (another server may have replaced it since).
struct SocketFile {
    path: std::path::PathBuf,
    /// Device and inode when bound.
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a Unix domain socket at `path`. A socket file left by a server that is
/// gone (connecting is refused) is replaced; one a server still listens on, or
/// a file of any other kind, is an error.
fn bind_unix(
    path: &std::path::Path,
) -> anyhow::Result<(std::os::unix::net::UnixListener, SocketFile)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            meta.file_type().is_socket(),
            "{} exists and is not a socket; choose another --unix path",
            path.display()
        );
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => anyhow::bail!(
                "a server is listening on {} already; choose another --unix path",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot replace the socket {}", path.display()))?
            }
            Err(e) => anyhow::bail!("cannot tell whether {} is in use: {e}", path.display()),
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_owned(),
        id: (meta.dev(), meta.ino()),
    };
    Ok((listener, file))
}

/// Serves on `bound` until shut down.
fn serve_on(config: &ServerConfig, calibration: Calibration, bound: Bound) -> anyhow::Result<()> {
    let runtime = build_runtime(config)?;
    let redis = match &config.redis {
        Some(url) => Some(
            runtime
                .block_on(RedisQueue::connect(
                    url,
                    QueueSettings {
                        capacity: config.jobs_capacity,
                        ttl: config.job_ttl,
                        max_attempts: config.max_attempts,
                    },
                ))
                .with_context(|| format!("cannot use Redis at {url}"))?
                // Recorded in every job, for the queue worker to check again.
                .with_limits(Limits::new(config, calibration)),
        ),
        None => None,
    };
    let telemetry = if config.telemetry {
        let group = match (&config.telemetry_dir, config.process_index) {
            (Some(dir), Some(index)) => Some(Group {
                dir: dir.clone(),
                index,
            }),
            _ => None,
        };
        let polls = config.poll_timing.then(pollwatch::PollWatch::new);
        Some(Telemetry::start(runtime.handle(), group, polls).context("cannot start telemetry")?)
    } else {
        None
    };
    let state = Arc::new(AppState {
        variant: config.variant,
        strategy: build_strategy(config, calibration, redis.as_ref())?,
        calibration,
        limits: Limits::new(config, calibration),
        workers: match config.variant.runtime_flavor() {
            RuntimeFlavor::CurrentThread if config.process_index.is_none() => 1,
            _ => config.workers,
        },
        cores: cores(),
        inject_delay: config.inject_delay,
        process_index: config.process_index,
        build: build_profile(),
        strategy_settings: match config.variant {
            Variant::BoundedPool => serde_json::json!({
                "queue_budget_ms": config.queue_budget.map(|b| b.as_secs_f64() * 1e3),
                "pool_priority": format!("{:?}", config.pool_priority).to_lowercase(),
                "pool_threads": cores(),
            }),
            _ => serde_json::Value::Null,
        },
        jobs: match redis {
            Some(queue) => JobStore::Redis(queue),
            None => JobStore::Memory(JobTable::new(
                config.jobs_capacity,
                config.finished_jobs_kept,
                config.job_ttl,
            )),
        },
        telemetry,
        skip_abandoned: config.skip_abandoned,
    });

    let grace = config.shutdown_grace;
    let limits = config.connections;
    let result = runtime.block_on(async move {
        let shutdown = Shutdown::install()?;
        match &bound {
            Bound::Tcp(listener) => announce(listener.local_addr()?)?,
            Bound::Unix(_, file) => announce_unix(&file.path)?,
        }
        tracing::info!(
            variant = %state.variant,
            workers = state.workers,
            // Logged under its older name, as `/info` reports it.
            worker_index = ?state.process_index,
            ns_per_unit = format!("{:.1}", calibration.ns_per_unit),
            max_units = state.limits.max_units,
            "serving"
        );
        let router = api::router(state);
        match bound {
            Bound::Tcp(listener) => {
                let listener = traffic::counted(tokio::net::TcpListener::from_std(listener)?);
                connections::serve(listener, router, limits, &shutdown, grace).await;
            }
            Bound::Unix(listener, _file) => {
                listener.set_nonblocking(true)?;
                let listener = traffic::counted(tokio::net::UnixListener::from_std(listener)?);
                connections::serve(listener, router, limits, &shutdown, grace).await;
            }
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// Prints the line the load generator waits for. It must be the first line on stdout
/// and reach the reader at once, hence the explicit flush.
pub fn announce(addr: std::net::SocketAddr) -> std::io::Result<()> {
    first_line(&format!("listening on http://{addr}"))
}

/// [`announce`] for a Unix domain socket: `listening on unix:PATH`.
pub fn announce_unix(path: &std::path::Path) -> std::io::Result<()> {
    first_line(&format!("listening on unix:{}", path.display()))
}

fn first_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
