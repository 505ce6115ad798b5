//! What the redis-queue tests start: a throw-away Redis started by the test itself
//! (rather than by scripts/redis-throwaway.sh) when the test needs to control its
//! persistence or to kill and restart it on the same port and folder (flags as the
//! script's, plus append-only persistence when asked), the script's own Redis, and
//! `servers worker` processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Process(pub Child);

impl Process {
    /// SIGKILL, at once.
    pub fn kill_hard(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: kill with the pid of this test's own child.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_hard();
    }
}

/// Starts `command`, waits for a first stdout line starting with `ready`, and
/// returns the process and that line.
pub fn start(mut command: Command, ready: &str) -> (Process, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let process = Process(child);
    assert!(line.starts_with(ready), "unexpected first line {line:?}");
    (process, line.trim().to_owned())
}

/// The Redis of scripts/redis-throwaway.sh and its URL, or `None` (SKIPPED) where
/// redis-server is not installed.
pub fn script_redis() -> Option<(Process, String)> {
    if !redis_installed() {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-throwaway.sh");
    Some(start(Command::new(script), "redis://"))
}

/// `servers worker` on `url`, once it says it is ready.
pub fn worker(url: &str, args: &[&str]) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_servers"));
    command.args(["worker", "--redis", url]).args(args);
    start(command, "worker ready").0
}

/// How a throw-away Redis keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// None, as scripts/redis-throwaway.sh runs it: a restart loses everything.
    None,
    /// `appendonly yes`, `appendfsync everysec`: what a durable queue needs. Redis
    /// writes each command to the file before it replies, and the kernel flushes
    /// it to disk within about a second: a killed redis-server loses nothing it
    /// acknowledged, a machine crash at most the last second.
    AppendOnly,
}

/// A redis-server child on a loopback port, with its folder; killed and removed
/// when dropped.
pub struct ThrowawayRedis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    persistence: Persistence,
}

/// Whether redis-server can run here; says SKIPPED (or fails under REQUIRE_REDIS,
/// as CI sets) when it cannot.
pub fn redis_installed() -> bool {
    let installed = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .output()
        .is_ok();
    if !installed {
        assert!(
            std::env::var_os("REQUIRE_REDIS").is_none(),
            "REQUIRE_REDIS is set but redis-server is not installed"
        );
        eprintln!("SKIPPED: redis-server is not installed (Debian package redis-server)");
    }
    installed
}

impl ThrowawayRedis {
    /// Starts one, or returns `None` (SKIPPED) where redis-server is not installed.
    pub fn start(persistence: Persistence) -> Option<ThrowawayRedis> {
        if !redis_installed() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "bb-redis-test-{}-{}",
            std::process::id(),
            uuid_ish()
        ));
        std::fs::create_dir_all(&dir).expect("cannot create the Redis folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free port")
            .port();
        let mut redis = ThrowawayRedis {
            child: None,
            port,
            dir,
            persistence,
        };
        redis.spawn();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir);
        match self.persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::AppendOnly => {
                command.args(["--appendonly", "yes", "--appendfsync", "everysec"])
            }
        };
        let log = std::fs::File::create(self.dir.join("redis.log")).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {}: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers PING (and has loaded its data: Redis answers LOADING
    /// until then).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 5];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG"
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and folder (after [`Self::kill_hard`]).
    pub fn restart(&mut self) {
        self.kill_hard();
        self.spawn();
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.kill_hard();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A name unlikely to repeat within one test process.
fn uuid_ish() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
