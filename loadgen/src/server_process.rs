//! One reference server run as a child process of loadgen (by `run` and
//! `selftest`): `loadgen serve
//! --variant NAME --port 0` (loadgen links the servers library, so no separate
//! build or install step is needed). Its address is read from the `listening on`
//! line; it is stopped with SIGTERM, then SIGKILL.
//!
//! No server may outlive loadgen: the child is started with `PR_SET_PDEATHSIG`
//! (the kernel kills it when loadgen dies, even by SIGKILL or abort), is killed on
//! drop (a panic unwinding through the runner), and is stopped explicitly on every
//! normal and interrupted path.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::matrix::configuration::{Configuration, Server};
use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client;
use crate::cpu;

/// How long a server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped server may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How often readiness is asked again.
const READY_POLL: Duration = Duration::from_millis(50);
/// Timeout of one control-plane request (`/health`, `/info`).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// CPUs to pin the server to.
    pub cpus: Option<Vec<usize>>,
    /// `--workers` for the server.
    pub workers: Option<usize>,
    /// Whether the server runs its telemetry (`--no-telemetry` otherwise).
    pub telemetry: bool,
    /// Whether it times every poll (`--no-poll-timing` otherwise; only with
    /// telemetry).
    pub poll_timing: bool,
    /// `--inject-delay` for the server: a known regression of every `/health`.
    pub inject_delay: Option<Duration>,
    /// Start a slow upstream HTTP service (`serve upstream`) beside each server,
    /// with this default wait, and point the server at it (`--upstream`).
    pub upstream: Option<Duration>,
    /// CPUs for the upstream: the client's, when the run pins it, so the
    /// upstream stays off the server's cores as another machine would.
    pub upstream_cpus: Option<Vec<usize>>,
}

/// A running server child process.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    /// Processes the server needs (for redis-queue: a Redis and a queue worker),
    /// counted in its CPU and stopped with it.
    companions: Vec<Companion>,
    /// How long the server may take to stop after SIGTERM before it is killed.
    stop_grace: Duration,
    /// Whether it serves the reference servers' `/info` and `/metrics.json`.
    builtin: bool,
}

/// A helper process started beside a server.
struct Companion {
    child: Child,
    pid: u32,
    /// Whether its CPU counts as the server's: a Redis and queue workers are part
    /// of the redis-queue server; the upstream stands for an external service.
    counted: bool,
}

/// Starts `args` of loadgen itself (or `program`), tied to loadgen's life with
/// `PR_SET_PDEATHSIG` and pinned to `cpus`, stdout piped, stderr to `log`.
fn spawn_tied(
    program: &Path,
    args: &[String],
    cpus: Option<Vec<usize>>,
    log: &Path,
) -> anyhow::Result<Child> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    tie(&mut command, cpus, libc::SIGKILL);
    command
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

/// Ties `command`'s process to loadgen's life: the kernel sends it
/// `death_signal` when loadgen's thread that started it dies (even by SIGKILL),
/// it is killed when its handle is dropped, and it runs pinned to `cpus`.
pub(crate) fn tie(command: &mut Command, cpus: Option<Vec<usize>>, death_signal: i32) {
    command.kill_on_drop(true);
    let parent = std::process::id();
    // SAFETY: runs between fork and exec and only makes async-signal-safe system
    // calls (prctl, getppid, sched_setaffinity).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("loadgen exited"));
            }
            if let Some(cpus) = &cpus {
                cpu::pin_current_thread(cpus)?;
            }
            Ok(())
        });
    }
}

/// Reads the child's first stdout line within the start-up timeout.
async fn first_line(child: &mut Child, log: &Path) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("stdout not captured")?;
    let mut lines = BufReader::new(stdout).lines();
    match tokio::time::timeout(STARTUP_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        Ok(_) => bail!("exited before it was ready (see {})", log.display()),
        Err(_) => bail!(
            "was not ready within {STARTUP_TIMEOUT:?} (see {})",
            log.display()
        ),
    }
}

/// SIGTERM, then SIGKILL after `grace`; waits for the exit.
async fn stop_child(child: &mut Child, pid: u32, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: the pid is our child and not yet reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

impl ServerProcess {
    /// Starts `variant`, logging its stderr to `log`, and waits until it answers
    /// `/health`. Must be called on a thread that lives as long as the server
    /// (PDEATHSIG follows the thread that forked).
    pub async fn start(
        configuration: &Configuration,
        launch: &Launch,
        log: &Path,
    ) -> anyhow::Result<ServerProcess> {
        let variant = match &configuration.server {
            Server::Builtin(variant) => *variant,
            Server::External(external) => {
                return crate::external::start(external, launch, log).await
            }
        };
        let exe = std::env::current_exe().context("cannot find the loadgen executable")?;
        let mut args: Vec<String> = ["serve", "--variant", variant.name(), "--port", "0"]
            .map(String::from)
            .to_vec();
        args.extend(configuration.args.iter().cloned());
        if let Some(workers) = launch.workers {
            args.extend(["--workers".into(), workers.to_string()]);
        }
        if !launch.telemetry {
            args.push("--no-telemetry".into());
        } else if !launch.poll_timing {
            args.push("--no-poll-timing".into());
        }
        if let Some(delay) = launch.inject_delay {
            args.extend([
                "--inject-delay".into(),
                humantime::format_duration(delay).to_string(),
            ]);
        }
        let mut companions = Vec::new();
        let upstream = match launch.upstream {
            Some(delay) => Some(
                start_upstream(
                    &exe,
                    delay,
                    launch.upstream_cpus.clone(),
                    log,
                    &mut companions,
                )
                .await?,
            ),
            None => None,
        };
        if let Some(url) = &upstream {
            args.extend(["--upstream".into(), url.clone()]);
        }
        if variant.needs_redis() {
            let url = start_redis(launch, log, &mut companions).await?;
            start_worker(
                &exe,
                &url,
                upstream.as_deref(),
                launch,
                log,
                &mut companions,
            )
            .await?;
            args.extend(["--redis".into(), url]);
        }
        let mut child = spawn_tied(&exe, &args, launch.cpus.clone(), log)?;
        let pid = child.id().context("server exited at once")?;
        let line = first_line(&mut child, log).await?;
        let addr: SocketAddr = line
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("printed {line:?} instead of its address"))?;
        let mut server = ServerProcess {
            child,
            addr,
            pid,
            companions,
            stop_grace: STOP_GRACE,
            builtin: true,
        };
        server
            .wait_ready("/health", Instant::now() + CONTROL_TIMEOUT, log)
            .await?;
        Ok(server)
    }

    /// Asks `GET path` until it answers 2xx, by `deadline`; fails at once when
    /// the process exits (its log, `log`, named in the error).
    pub(crate) async fn wait_ready(
        &mut self,
        path: &str,
        deadline: Instant,
        log: &Path,
    ) -> anyhow::Result<()> {
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "exited before it was ready ({status}; see {})",
                    log.display()
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = left.clamp(Duration::from_millis(10), CONTROL_TIMEOUT);
            match client::get(self.addr, path, timeout).await {
                Ok((status, _)) if status.is_success() => return Ok(()),
                result if Instant::now() >= deadline => bail!(
                    "never answered {path} with a 2xx ({:?}; see {})",
                    result.map(|(s, _)| s),
                    log.display()
                ),
                _ => tokio::time::sleep(READY_POLL).await,
            }
        }
    }

    /// `GET /info` as JSON.
    pub async fn info(&self) -> anyhow::Result<serde_json::Value> {
        let (status, body) = client::get(self.addr, "/info", CONTROL_TIMEOUT).await?;
        anyhow::ensure!(status.is_success(), "/info answered {status}");
        Ok(serde_json::from_slice(&body)?)
    }

    /// An external server's process: `child` is its guard (`loadgen guard`),
    /// whose process tree is the server's.
    pub(crate) fn external(
        child: Child,
        addr: SocketAddr,
        stop_grace: Duration,
    ) -> anyhow::Result<ServerProcess> {
        let pid = child.id().context("the server exited at once")?;
        Ok(ServerProcess {
            child,
            addr,
            pid,
            companions: Vec::new(),
            // The guard's own grace, and a little for it to clean up.
            stop_grace: stop_grace + Duration::from_secs(2),
            builtin: false,
        })
    }

    /// Whether it is a reference server, with `/info` and `/metrics.json`.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    /// Heavy jobs the server has running or queued now, by its own counters
    /// (`/metrics.json`, every process of a group summed); `None` when it has no
    /// telemetry or does not answer in time.
    pub async fn jobs_busy(&self) -> Option<u64> {
        // Short: a server too busy to answer is not settled either way.
        let (status, body) = client::get(self.addr, "/metrics.json", Duration::from_millis(500))
            .await
            .ok()?;
        if !status.is_success() {
            return None;
        }
        let metrics: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let busy = metrics["processes"]
            .as_array()?
            .iter()
            .map(|p| {
                let jobs = &p["jobs"];
                jobs["running"].as_u64().unwrap_or(0) + jobs["queued"].as_u64().unwrap_or(0)
            })
            .sum();
        Some(busy)
    }

    /// Whether the process has exited (crashed) on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// CPU time the server (its worker processes and companions included) has used
    /// so far.
    pub fn cpu_time(&self) -> Duration {
        cpu::process_tree_cpu_time(self.pid)
            + self
                .companions
                .iter()
                .filter(|c| c.counted)
                .map(|c| cpu::process_tree_cpu_time(c.pid))
                .sum::<Duration>()
    }

    /// Stops the server, then its companions: SIGTERM, then SIGKILL after a grace
    /// period; waits for every exit.
    pub async fn stop(mut self) {
        stop_child(&mut self.child, self.pid, self.stop_grace).await;
        for mut companion in self.companions.drain(..).rev() {
            stop_child(&mut companion.child, companion.pid, STOP_GRACE).await;
        }
    }
}

/// An external server's guard dropped without a stop (a panic unwinding through
/// the runner) is asked to stop its tree; killing it outright would orphan the
/// server's own children.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !self.builtin && self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: our child, not yet reaped.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
}

/// A loopback port the kernel just handed out and that is free again.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether a Redis can be started here for the redis-queue variant.
pub fn redis_available() -> bool {
    std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts a throw-away Redis (loopback, a free port, no persistence) as a
/// companion and returns its URL once it answers PING.
async fn start_redis(
    launch: &Launch,
    log: &Path,
    companions: &mut Vec<Companion>,
) -> anyhow::Result<String> {
    let port = free_port()?;
    let dir = std::env::temp_dir();
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.to_string_lossy(),
        "--loglevel",
        "warning",
    ]
    .map(String::from)
    .to_vec();
    let log = log.with_extension("redis.log");
    let child = spawn_tied(Path::new("redis-server"), &args, launch.cpus.clone(), &log)?;
    let pid = child.id().context("redis-server exited at once")?;
    companions.push(Companion {
        child,
        pid,
        counted: true,
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while !redis_answers(addr).await {
        if Instant::now() >= deadline {
            bail!(
                "redis-server did not answer on {addr} (see {})",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(format!("redis://{addr}"))
}

/// Whether a Redis at `addr` answers PING.
async fn redis_answers(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let mut reply = [0u8; 5];
    stream.write_all(b"PING\r\n").await.is_ok()
        && stream.read_exact(&mut reply).await.is_ok()
        && &reply == b"+PONG"
}

/// Starts one queue worker (`loadgen serve worker`) with a slot per core the
/// server may use, as a companion, and waits until it is ready.
async fn start_worker(
    exe: &Path,
    url: &str,
    upstream: Option<&str>,
    launch: &Launch,
    log: &Path,
    companions: &mut Vec<Companion>,
) -> anyhow::Result<()> {
    let slots = launch
        .cpus
        .as_ref()
        .map_or_else(servers::config::cores, Vec::len);
    let mut args: Vec<String> = ["serve", "worker", "--redis", url, "--concurrency"]
        .map(String::from)
        .into_iter()
        .chain([slots.to_string()])
        .collect();
    if let Some(upstream) = upstream {
        args.extend(["--upstream".into(), upstream.into()]);
    }
    let log = log.with_extension("worker.log");
    let mut child = spawn_tied(exe, &args, launch.cpus.clone(), &log)?;
    let pid = child.id().context("the worker exited at once")?;
    let line = first_line(&mut child, &log).await;
    companions.push(Companion {
        child,
        pid,
        counted: true,
    });
    let line = line?;
    anyhow::ensure!(
        line.starts_with("worker ready"),
        "the worker printed {line:?} instead of being ready"
    );
    Ok(())
}

/// Starts the slow upstream HTTP service (`loadgen serve upstream`) as a companion
/// whose CPU is not the server's, and returns its URL. Never pinned with the
/// server: it stands for another machine (its waits are timers, not threads).
async fn start_upstream(
    exe: &Path,
    delay: Duration,
    cpus: Option<Vec<usize>>,
    log: &Path,
    companions: &mut Vec<Companion>,
) -> anyhow::Result<String> {
    let args: Vec<String> = vec![
        "serve".into(),
        "upstream".into(),
        "--port".into(),
        "0".into(),
        "--delay".into(),
        humantime::format_duration(delay).to_string(),
    ];
    let log = log.with_extension("upstream.log");
    let mut child = spawn_tied(exe, &args, cpus, &log)?;
    let pid = child.id().context("the upstream exited at once")?;
    let line = first_line(&mut child, &log).await;
    companions.push(Companion {
        child,
        pid,
        counted: false,
    });
    let line = line?;
    line.strip_prefix("listening on ")
        .filter(|url| url.starts_with("http://"))
        .map(str::to_owned)
        .with_context(|| format!("the upstream printed {line:?} instead of its address"))
}
