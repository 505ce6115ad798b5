//! External servers: any HTTP server started from a command line described in a
//! servers file (`loadgen run --servers FILE.toml`), run through the same phases
//! as the built-in variants.
//!
//! - [`spec`]: the servers file;
//! - [`sizing`]: the heavy job's size, measured when the server does not say;
//! - [`start`] (here): the server started under `loadgen guard` (see
//!   [`crate::guard`]), so that its whole process tree is stopped on every path,
//!   its output (stdout and stderr) copied to `NAME.server.log`, its port given
//!   or read from that output, and ready once its readiness path answers 2xx.

pub mod sizing;
pub mod spec;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use tokio::process::Command;
use tokio::sync::mpsc;

pub use spec::{ExternalServer, PortSource};

use crate::cpu;
use crate::server_process::{free_port, tie, Launch, ServerProcess};

/// Longest the guard takes beyond the server's grace: killing what is left of
/// the tree (see [`crate::guard`]), and some slack.
const GUARD_CLEANUP: Duration = Duration::from_secs(7);

/// Cores the server may use under `launch`.
pub fn cores(launch: &Launch) -> usize {
    launch
        .cpus
        .as_ref()
        .map_or_else(|| cpu::online_cpus().len(), Vec::len)
}

/// Starts `server` under the guard, its output copied to `log`, and waits until
/// it is ready. On any failure the guard is stopped (and with it everything the
/// server started) before the error is returned.
pub async fn start(
    server: &ExternalServer,
    launch: &Launch,
    log: &Path,
) -> anyhow::Result<ServerProcess> {
    let cores = cores(launch);
    let port = match server.port {
        PortSource::Placeholder => Some(free_port().context("no free port")?),
        PortSource::After(_) => None,
    };
    let exe = std::env::current_exe().context("cannot find the loadgen executable")?;
    let mut command = Command::new(exe);
    command
        .args([
            "guard".to_string(),
            "--signal".into(),
            server.stop_signal.to_string(),
            "--grace".into(),
            humantime::format_duration(server.stop_grace).to_string(),
            "--".into(),
        ])
        .args(
            server
                .command
                .iter()
                .map(|a| ExternalServer::fill(a, port, cores)),
        )
        .envs(
            server
                .env
                .iter()
                .map(|(k, v)| (k, ExternalServer::fill(v, port, cores))),
        )
        .current_dir(&server.cwd)
        // Its own process group: the terminal's signals (Ctrl-C, Ctrl-\\, Ctrl-Z)
        // go to loadgen, which stops its servers itself.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The guard hears of loadgen's death by a signal it can catch, and then stops
    // the server's whole tree; so it is never killed outright on drop either
    // (ServerProcess asks it to stop instead).
    tie(&mut command, launch.cpus.clone(), libc::SIGTERM);
    command.kill_on_drop(false);
    let log_file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", server.command[0]))?;
    let (lines_tx, lines_rx) = mpsc::unbounded_channel();
    let log_file = Arc::new(Mutex::new(log_file));
    for output in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        tokio::spawn(copy_lines(output, log_file.clone(), lines_tx.clone()));
    }
    drop(lines_tx);
    // The placeholder port is known now; a stand-in address until it is.
    let addr = SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(0)));
    let mut process = ServerProcess::external(child, addr, server.stop_grace + GUARD_CLEANUP)?;
    match ready(server, &mut process, lines_rx, log).await {
        Ok(()) => Ok(process),
        Err(e) => {
            process.stop().await;
            Err(e)
        }
    }
}

/// Waits until the server's port is known and its readiness path answers 2xx,
/// within its readiness timeout.
async fn ready(
    server: &ExternalServer,
    process: &mut ServerProcess,
    mut lines: mpsc::UnboundedReceiver<String>,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + server.ready_timeout;
    let not_ready = |process: &mut ServerProcess| match process.exited() {
        Some(status) => anyhow::anyhow!(
            "exited before it was ready ({status}; see {})",
            log.display()
        ),
        None => anyhow::anyhow!(
            "was not ready within {:?} (see {})",
            server.ready_timeout,
            log.display()
        ),
    };
    if let PortSource::After(marker) = &server.port {
        let port = loop {
            let line = tokio::time::timeout_at(deadline.into(), lines.recv()).await;
            match line {
                Ok(Some(line)) => {
                    if let Some(port) = port_after(&line, marker) {
                        break port;
                    }
                }
                // Its output closed: it exited, or is about to.
                Ok(None) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Err(not_ready(process));
                }
                Err(_) => return Err(not_ready(process)),
            }
        };
        process.addr = SocketAddr::from(([127, 0, 0, 1], port));
    }
    drop(lines);
    process.wait_ready(&server.ready_path, deadline, log).await
}

/// Copies `output` into the log line by line, handing each line to `lines` while
/// someone listens. Reads to the end whatever the bytes are (a line that is not
/// UTF-8 is logged lossily): a pipe left unread would block or break the server.
async fn copy_lines(
    output: Box<dyn AsyncRead + Send + Unpin>,
    log: Arc<Mutex<std::fs::File>>,
    lines: mpsc::UnboundedSender<String>,
) {
    use std::io::Write;
    let mut reader = BufReader::new(output);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) => return,
            Ok(_) => {}
            // A read error on a pipe: nothing more will come.
            Err(_) => return,
        }
        let line = String::from_utf8_lossy(&buffer);
        let line = line.trim_end_matches(['\n', '\r']);
        {
            let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(file, "{line}");
        }
        if !lines.is_closed() {
            let _ = lines.send(line.to_owned());
        }
    }
}

/// The port in `line`: the digits right after `marker`.
fn port_after(line: &str, marker: &str) -> Option<u16> {
    let (_, rest) = line.split_once(marker)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_the_digits_after_the_marker() {
        let line = "INFO:     Uvicorn running on http://127.0.0.1:43817 (Press CTRL+C to quit)";
        assert_eq!(
            port_after(line, "running on http://127.0.0.1:"),
            Some(43817)
        );
        assert_eq!(port_after(line, "listening on "), None);
        assert_eq!(port_after("on http://127.0.0.1:0", "127.0.0.1:"), None);
    }
}
