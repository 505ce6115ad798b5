//! One reference server run as a child process of loadgen: `loadgen serve
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

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client;
use crate::cpu;

/// How long a server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped server may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
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
}

/// A running server child process.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl ServerProcess {
    /// Starts `variant`, logging its stderr to `log`, and waits until it answers
    /// `/health`. Must be called on a thread that lives as long as the server
    /// (PDEATHSIG follows the thread that forked).
    pub async fn start(
        variant: &str,
        launch: &Launch,
        log: &Path,
    ) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("cannot find the loadgen executable")?;
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(exe);
        command
            .args(["serve", "--variant", variant, "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        if let Some(workers) = launch.workers {
            command.args(["--workers", &workers.to_string()]);
        }
        if !launch.telemetry {
            command.arg("--no-telemetry");
        }
        let parent = std::process::id();
        let cpus = launch.cpus.clone();
        // SAFETY: runs between fork and exec and only makes async-signal-safe system
        // calls (prctl, getppid, sched_setaffinity).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
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
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {variant}"))?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("server stdout not captured")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(STARTUP_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => bail!("exited before it was listening (see {})", log.display()),
            Err(_) => bail!(
                "printed no address within {STARTUP_TIMEOUT:?} (see {})",
                log.display()
            ),
        };
        let addr: SocketAddr = line
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("printed {line:?} instead of its address"))?;
        let server = ServerProcess { child, addr, pid };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        loop {
            match client::get(self.addr, "/health", CONTROL_TIMEOUT).await {
                Ok((status, _)) if status.is_success() => return Ok(()),
                result if Instant::now() >= deadline => {
                    bail!("never answered /health: {:?}", result.map(|(s, _)| s))
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// `GET /info` as JSON.
    pub async fn info(&self) -> anyhow::Result<serde_json::Value> {
        let (status, body) = client::get(self.addr, "/info", CONTROL_TIMEOUT).await?;
        anyhow::ensure!(status.is_success(), "/info answered {status}");
        Ok(serde_json::from_slice(&body)?)
    }

    /// Whether the process has exited (crashed) on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// CPU time the server (and its worker processes) has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu::process_tree_cpu_time(self.pid)
    }

    /// SIGTERM, then SIGKILL after a grace period; waits for the exit.
    pub async fn stop(mut self) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: the pid is our child and not yet reaped.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
