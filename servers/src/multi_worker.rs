//! The supervisor of the two multi-worker variants: N copies of this program as its
//! processes, each a `current_thread` runtime with work inline.
//!
//! - `multi-worker` is what `uvicorn --workers N` and gunicorn do: the supervisor
//!   binds and listens once and hands that one socket to every process as an
//!   inherited file descriptor (its number in the hidden `--listen-fd` flag). There
//!   is one accept queue; a process stuck in a job does not call `accept`, so a new
//!   connection goes to a free process. Connections a stuck process already holds
//!   (keep-alive) still wait for it.
//! - `multi-worker-reuseport` is nginx's `listen … reuseport`: the supervisor only
//!   reserves the port, and every process binds its own socket with `SO_REUSEPORT`.
//!   Each has its own accept queue and the kernel hashes a new connection to one of
//!   them, stuck or not: probe latency splits into two populations.
//!
//! The listening socket is close-on-exec in the supervisor, so no other program it
//! might start inherits it; only the processes' `pre_exec` clears the flag, in the
//! child between fork and exec. The supervisor prints the `listening on` line once
//! every process has, forwards SIGINT/SIGTERM and reaps its processes. Each is
//! started with `PR_SET_PDEATHSIG`, so if the parent dies however it dies, the
//! kernel kills its processes and no orphan keeps the port.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::listener;
use crate::serve::announce;
use crate::shutdown::Shutdown;
use crate::variant::Variant;
use crate::workload::Calibration;

/// How long a process may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the supervisor until a shutdown signal or a process's unexpected exit.
pub fn supervise(config: &ServerConfig, calibration: Calibration) -> anyhow::Result<()> {
    // The shared socket is held until every process has its copy, then dropped: the
    // processes alone keep it open, so once they have all exited a new client is
    // refused instead of waiting in a queue nobody serves. The reservation is held
    // to the end, so the port stays the group's between the processes' sockets.
    let mut socket = GroupSocket::open(config.variant, config.addr)
        .with_context(|| format!("cannot bind {}", config.addr))?;
    let addr = socket.addr;
    let listen_fd = socket.listen_fd();
    let telemetry_dir = if config.telemetry {
        Some(TelemetryDir::create().context("cannot create the workers' telemetry folder")?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // `block_on` keeps everything on the main thread. That matters: PDEATHSIG fires
    // when the *thread* that forked a child exits, and the main thread lives as long
    // as the process.
    runtime.block_on(async {
        let shutdown = Shutdown::install()?;
        let mut pids = Vec::with_capacity(config.workers);
        let mut waits = JoinSet::new();
        for index in 0..config.workers {
            let shared = telemetry_dir.as_ref().map(|d| d.path.as_path());
            let mut child = spawn_process(config, addr, listen_fd, index, calibration, shared)?;
            wait_until_listening(&mut child, index).await?;
            pids.push(child.id().context("worker exited during start-up")?);
            waits.spawn(async move { (index, child.wait().await) });
        }
        socket.release_shared();
        announce(addr)?;
        tracing::info!(workers = config.workers, ?pids, "all workers listening on {addr}");

        let mut alive = vec![true; pids.len()];
        let mut failure = None;
        tokio::select! {
            () = shutdown.requested() => {}
            Some(joined) = waits.join_next() => {
                let (index, status) = joined?;
                alive[index] = false;
                failure = Some(format!("worker {index} exited unexpectedly ({})", describe(status)));
            }
        }
        signal_alive(&pids, &alive, libc::SIGTERM);
        let unclean = reap(&mut waits, &pids, &mut alive, config.shutdown_grace + Duration::from_secs(1)).await;
        match (failure, unclean.is_empty()) {
            (Some(message), true) => bail!(message),
            (Some(message), false) => bail!("{message}; then {}", unclean.join("; ")),
            (None, false) => bail!("shutdown was not clean: {}", unclean.join("; ")),
            (None, true) => Ok(()),
        }
    })
}

/// What the supervisor holds on the group's port.
struct GroupSocket {
    addr: SocketAddr,
    kind: GroupSocketKind,
}

enum GroupSocketKind {
    /// `multi-worker`: the listening socket every process accepts from, until
    /// every process has inherited it.
    Shared(std::net::TcpListener),
    /// `multi-worker` once every process has its copy of the shared socket.
    Released,
    /// `multi-worker-reuseport`: a bound socket that never listens, keeping the port.
    Reserved { _held: socket2::Socket },
}

impl GroupSocket {
    fn open(variant: Variant, addr: SocketAddr) -> std::io::Result<GroupSocket> {
        Ok(match variant {
            Variant::MultiWorkerReuseport => {
                let (socket, addr) = listener::reserve(addr)?;
                GroupSocket {
                    addr,
                    kind: GroupSocketKind::Reserved { _held: socket },
                }
            }
            Variant::MultiWorker => {
                let (socket, addr) = listener::shared(addr)?;
                GroupSocket {
                    addr,
                    kind: GroupSocketKind::Shared(socket),
                }
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "{other} runs in one process and has no supervisor"
                )))
            }
        })
    }

    /// Closes the supervisor's copy of the shared socket (the processes keep
    /// theirs); a reservation is kept.
    fn release_shared(&mut self) {
        if let GroupSocketKind::Shared(_) = self.kind {
            self.kind = GroupSocketKind::Released;
        }
    }

    /// The descriptor the processes inherit: the shared socket's, or none.
    fn listen_fd(&self) -> Option<RawFd> {
        match &self.kind {
            GroupSocketKind::Shared(socket) => Some(socket.as_raw_fd()),
            GroupSocketKind::Reserved { .. } | GroupSocketKind::Released => None,
        }
    }
}

/// The folder where the processes share their telemetry, removed when the supervisor
/// ends (a supervisor killed outright leaves a few small files in the temp folder).
struct TelemetryDir {
    path: PathBuf,
}

impl TelemetryDir {
    fn create() -> std::io::Result<TelemetryDir> {
        let path = std::env::temp_dir().join(format!("servers-telemetry-{}", std::process::id()));
        // A leftover of an earlier process with the same pid holds nothing of ours.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)?;
        Ok(TelemetryDir { path })
    }
}

impl Drop for TelemetryDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Starts process `index` of the group listening on `addr`: on the inherited socket
/// `listen_fd` if given (shared socket), else on a socket of its own (`SO_REUSEPORT`).
fn spawn_process(
    config: &ServerConfig,
    addr: SocketAddr,
    listen_fd: Option<RawFd>,
    index: usize,
    calibration: Calibration,
    telemetry_dir: Option<&Path>,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find this program to start workers")?;
    let mut command = Command::new(exe);
    command
        .args(&config.process_args_prefix)
        .args(["--variant", config.variant.name()])
        .args(["--bind", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--workers", &config.workers.to_string()])
        .args(["--process-index", &index.to_string()])
        .args(["--ns-per-unit", &calibration.ns_per_unit.to_string()])
        .args(["--max-io-ms", &config.max_io_ms.to_string()])
        .args(["--jobs-capacity", &config.jobs_capacity.to_string()])
        .args([
            "--job-ttl",
            &humantime::format_duration(config.job_ttl).to_string(),
        ])
        .args([
            "--shutdown-grace",
            &humantime::format_duration(config.shutdown_grace).to_string(),
        ])
        .args([
            "--max-connections",
            &config.connections.max_connections.to_string(),
        ])
        .args([
            "--finished-jobs-kept",
            &config.finished_jobs_kept.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    match telemetry_dir {
        Some(dir) => command.arg("--telemetry-dir").arg(dir),
        None => command.arg("--no-telemetry"),
    };
    if !config.poll_timing {
        command.arg("--no-poll-timing");
    }
    if let Some(timeout) = config.connections.header_timeout {
        command.args([
            "--header-timeout",
            &humantime::format_duration(timeout).to_string(),
        ]);
    }
    if config.skip_abandoned {
        command.arg("--skip-abandoned");
    }
    if let Some(max_units) = config.max_units {
        command.args(["--max-units", &max_units.to_string()]);
    }
    if let Some(delay) = config.inject_delay {
        command.args([
            "--inject-delay",
            &humantime::format_duration(delay).to_string(),
        ]);
    }
    if let Some(upstream) = &config.upstream {
        command.args(["--upstream", upstream]);
    }
    if !addr.ip().is_loopback() || config.allow_remote {
        command.arg("--allow-remote");
    }
    if let Some(fd) = listen_fd {
        // Fork copies the descriptor table, so the child has the socket at the
        // same number.
        command.args(["--listen-fd", &fd.to_string()]);
    }
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid, fcntl).
    unsafe {
        command.pre_exec(move || {
            die_with_parent(parent)?;
            match listen_fd {
                Some(fd) => listener::inheritable_in_child(fd),
                None => Ok(()),
            }
        });
    }
    command
        .spawn()
        .with_context(|| format!("cannot start worker {index}"))
}

/// Asks the kernel to SIGKILL this (child) process when its parent dies, and covers
/// the race where the parent died before the request was made.
fn die_with_parent(parent: u32) -> std::io::Result<()> {
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            return Err(std::io::Error::other(
                "parent exited before the worker started",
            ));
        }
    }
    Ok(())
}

/// Waits for process `index`'s `listening on` line.
async fn wait_until_listening(child: &mut Child, index: usize) -> anyhow::Result<()> {
    let stdout = child
        .stdout
        .take()
        .context("worker stdout was not captured")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(STARTUP_TIMEOUT, lines.next_line())
        .await
        .with_context(|| format!("worker {index} did not start within {STARTUP_TIMEOUT:?}"))??;
    match line {
        Some(line) if line.starts_with("listening on ") => Ok(()),
        Some(line) => bail!("worker {index} printed {line:?} instead of its address"),
        None => bail!("worker {index} exited before it was listening"),
    }
}

/// Sends `signal` to every process not yet reaped.
fn signal_alive(pids: &[u32], alive: &[bool], signal: libc::c_int) {
    for (&pid, _) in pids.iter().zip(alive).filter(|(_, &a)| a) {
        // SAFETY: kill with a pid we started and have not reaped, so it is still ours.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// Reaps every process, killing those still running after `deadline`. Returns
/// what was not clean: a process that had to be killed or exited with a failure
/// (empty when every process stopped by itself with success).
async fn reap(
    waits: &mut JoinSet<(usize, std::io::Result<ExitStatus>)>,
    pids: &[u32],
    alive: &mut [bool],
    deadline: Duration,
) -> Vec<String> {
    let timer = tokio::time::sleep(deadline);
    tokio::pin!(timer);
    let mut killed = false;
    let mut unclean = Vec::new();
    loop {
        tokio::select! {
            joined = waits.join_next() => match joined {
                Some(Ok((index, status))) => {
                    alive[index] = false;
                    // One killed here is already counted below.
                    if !killed && !matches!(&status, Ok(s) if s.success()) {
                        unclean.push(format!("worker {index} exited with {}", describe(status)));
                    }
                }
                Some(Err(e)) => unclean.push(format!("a worker's wait failed: {e}")),
                None => return unclean,
            },
            () = &mut timer, if !killed => {
                tracing::warn!("workers still running after {deadline:?}; killing them");
                unclean.push(format!("{} worker(s) killed after {deadline:?}", alive.iter().filter(|&&a| a).count()));
                signal_alive(pids, alive, libc::SIGKILL);
                killed = true;
            }
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("cannot wait for it: {e}"),
    }
}
