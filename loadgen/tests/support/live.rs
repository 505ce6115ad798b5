//! `loadgen bench --live` as the dashboard's tests start it, the
//! dashboard's address as loadgen prints it, and a guard that stops the run
//! should the test fail.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use super::TestServer;

/// `loadgen bench --live` at 200/s for `duration` in 500 ms intervals, writing
/// `json`; returns it running, with the dashboard's address.
pub fn live_bench(
    server: &TestServer,
    json: &std::path::Path,
    duration: &str,
) -> (std::process::Child, SocketAddr) {
    let url = server.url("/");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "bench", "--url", &url, "--rate", "200", "-c", "4", "-d", duration,
        ])
        .args(["-w", "0s", "--interval", "500ms", "--live", "--json"])
        .arg(json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = dashboard_address(&mut child);
    (child, addr)
}

/// The dashboard's address, from the first lines `child` writes to stderr; the
/// rest of its stderr is read (and dropped) on a thread.
pub fn dashboard_address(child: &mut std::process::Child) -> SocketAddr {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no dashboard address"
        );
        if let Some(url) = line.trim().strip_prefix("live dashboard: http://") {
            break url.trim_end_matches('/').parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    addr
}

/// A child process killed (with its process group's servers left to their
/// PDEATHSIG) if the test panics before it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
