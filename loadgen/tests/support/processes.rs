//! Child processes of the end-to-end tests: `loadgen run` started, watched,
//! signalled and waited for, and the server processes below it found and checked
//! gone.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use loadgen::report::{BenchReport, RunReport};

/// Runs `loadgen ARGS` to the end and returns what it printed and its status.
pub fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("cannot run loadgen")
}

/// As [`loadgen`], failing the test unless it exited 0.
pub fn loadgen_ok(args: &[&str]) -> Output {
    let out = loadgen(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `bench --json` report read back.
pub fn bench_report(path: &Path) -> BenchReport {
    let text = std::fs::read_to_string(path).expect("no bench report");
    serde_json::from_str(&text).expect("the bench report does not parse")
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn spawn(args: &[&str], out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--quick", "--out", out.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start loadgen")
}

pub fn finish(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + limit;
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            signal(pid, libc::SIGKILL);
            panic!("loadgen did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

pub fn signal(pid: u32, signal: libc::c_int) {
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

pub fn report(out: &Path) -> RunReport {
    let text =
        std::fs::read_to_string(out.join("latest/report.json")).expect("no report.json in latest/");
    serde_json::from_str(&text).expect("report.json does not parse")
}

/// Every process whose ancestry leads to `root` (not including it).
pub fn descendants(root: u32) -> Vec<u32> {
    loadgen::cpu::descendants(root)
        .into_iter()
        .filter(|&pid| alive(pid))
        .collect()
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next())
        })
        .is_some_and(|state| !matches!(state, Some('Z') | Some('X')))
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Waits until a descendant of `root` whose command line contains `needle` exists.
pub fn wait_for_server(root: u32, needle: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = descendants(root)
            .into_iter()
            .find(|&p| cmdline(p).contains(needle))
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no server matching {needle:?} appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        left.is_empty(),
        "server processes outlived loadgen: {left:?}"
    );
}

/// A reference server started by hand (`loadgen serve ARGS`), killed when
/// dropped.
pub struct ReferenceServer {
    pub child: Child,
    /// Its first line on stdout: `listening on …`.
    pub line: String,
}

impl ReferenceServer {
    pub fn start(args: &[&str]) -> ReferenceServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start loadgen serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        ReferenceServer {
            child,
            line: line.trim().to_owned(),
        }
    }

    /// Its TCP address, from `listening on http://ADDR`.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.line
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("not a TCP address: {:?}", self.line))
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
