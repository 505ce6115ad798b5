//! `loadgen bench` against servers that answer the requests whose bodies loadgen
//! keeps (the `--scrape` URL, a job stream's submissions) with something endless:
//! a header that never ends, a chunked body that never ends, a 10 GB
//! `Content-Length`, a body that runs until a close that never comes. Each stream
//! offers up to 1 GiB, fast, on loopback. loadgen must end by itself, count the
//! failure by its kind ("too large" for a body, "connection" for a head no
//! response may have), keep loading the ordinary stream, and stay far below the
//! memory an uncapped read would take.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Most bytes one hostile answer offers: far past anything loadgen keeps, so a
/// reader without a cap would hold (or copy) several hundred MiB of it.
const OFFERED_BYTES: u64 = 1 << 30;
/// The loadgen child's peak resident memory must stay under this. The cap on a
/// kept body is 64 MiB; reading 1 GiB uncapped would pass it several times over.
const RSS_CEILING_KIB: i64 = 300 * 1024;
/// Longest any loadgen run here may take before the test gives up and kills it.
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// Longest the test server lives, whatever the test does.
const SERVER_LIFETIME: Duration = Duration::from_secs(180);
/// Paths the server answers with its hostile answer; any other gets a small 200.
const HOSTILE_PREFIX: &str = "/hostile";

/// What the server sends for a request to [`HOSTILE_PREFIX`].
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A status line, then one header line that never ends (within the header
    /// count, so only the limit on a head's bytes can stop it).
    EndlessHead,
    /// A chunked body whose chunks never end.
    EndlessChunked,
    /// `Content-Length: 10000000000`, and body bytes as long as they are read.
    HugeLength,
    /// No length, `Connection: close`, and no close.
    UntilClose,
}

impl Hostile {
    /// The response head (what precedes the endless part).
    fn head(self) -> &'static [u8] {
        match self {
            Hostile::EndlessHead => b"HTTP/1.1 200 OK\r\nX-Endless: ",
            Hostile::EndlessChunked => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Hostile::HugeLength => b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n",
            Hostile::UntilClose => b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        }
    }

    /// One block of the endless part, sent over and over.
    fn block(self) -> Vec<u8> {
        const DATA: usize = 256 * 1024;
        match self {
            Hostile::EndlessChunked => {
                let mut block = format!("{DATA:x}\r\n").into_bytes();
                block.extend(std::iter::repeat_n(b'x', DATA));
                block.extend_from_slice(b"\r\n");
                block
            }
            Hostile::EndlessHead => vec![b'a'; DATA],
            Hostile::HugeLength | Hostile::UntilClose => vec![b'x'; DATA],
        }
    }
}

/// A server on 127.0.0.1 whose [`HOSTILE_PREFIX`] paths get the hostile answer,
/// one thread per connection; stopped when dropped.
struct HostileServer {
    addr: SocketAddr,
    /// Hostile answers begun.
    hostile_answers: Arc<AtomicU64>,
    /// Bytes written for them (heads and blocks), all together.
    hostile_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostileServer {
    fn start(hostile: Hostile) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hostile_answers = Arc::new(AtomicU64::new(0));
        let hostile_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (answers, bytes, stopped) = (
            Arc::clone(&hostile_answers),
            Arc::clone(&hostile_bytes),
            Arc::clone(&stop),
        );
        let thread = std::thread::spawn(move || {
            let block: Arc<[u8]> = hostile.block().into();
            let started = Instant::now();
            let mut handlers = Vec::new();
            // Bounded in time and in connections: loadgen opens a handful.
            while !stopped.load(Ordering::Relaxed)
                && started.elapsed() < SERVER_LIFETIME
                && handlers.len() < 1000
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (answers, bytes, stopped, block) = (
                            Arc::clone(&answers),
                            Arc::clone(&bytes),
                            Arc::clone(&stopped),
                            Arc::clone(&block),
                        );
                        handlers.push(std::thread::spawn(move || {
                            let _ = serve(stream, hostile, &block, &answers, &bytes, &stopped);
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            stopped.store(true, Ordering::Relaxed);
            for handler in handlers {
                let _ = handler.join();
            }
        });
        HostileServer {
            addr,
            hostile_answers,
            hostile_bytes,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one connection: small 200s on keep-alive until a request for a hostile
/// path, which gets the hostile answer until loadgen hangs up (or
/// [`OFFERED_BYTES`] are sent, or the server stops).
fn serve(
    mut stream: TcpStream,
    hostile: Hostile,
    block: &[u8],
    answers: &AtomicU64,
    bytes: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    // Short timeouts, so that a handler notices the server stopping.
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..100_000 {
        // One request: its head, then as many body bytes as it declares.
        let head_end = loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if pending.len() > 64 * 1024 || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while pending.len() < head_end + length {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        pending.drain(..head_end + length);
        let path = head.split(' ').nth(1).unwrap_or("");
        if !path.starts_with(HOSTILE_PREFIX) {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
            continue;
        }
        answers.fetch_add(1, Ordering::Relaxed);
        stream.write_all(hostile.head())?;
        let mut sent = hostile.head().len() as u64;
        while sent < OFFERED_BYTES && !stop.load(Ordering::Relaxed) {
            // Fails once loadgen has given up and closed the connection.
            stream.write_all(block)?;
            sent += block.len() as u64;
            bytes.fetch_add(block.len() as u64, Ordering::Relaxed);
        }
        return Ok(());
    }
    Ok(())
}

/// How a loadgen run ended.
struct Ran {
    /// The exit code; `None` when killed by a signal.
    code: Option<i32>,
    /// Peak resident memory of the loadgen process, in KiB (`ru_maxrss`).
    peak_rss_kib: i64,
    stdout: String,
    stderr: String,
    /// The `--json` report.
    report: Value,
}

/// Runs `loadgen ARGS --json DIR/out.json`, output to files in `dir`, and reads its
/// peak memory from its own resource usage when it is reaped (so only this child
/// is measured, whatever other tests run beside it). Killed after [`RUN_LIMIT`].
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also reports its peak memory"
)]
fn run_loadgen(dir: &Path, args: &[&str]) -> Ran {
    let json = dir.join("out.json");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut killed = false;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet reaped (only this loop reaps it);
        // both pointers are to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
        if reaped == pid {
            break (status, usage);
        }
        if !killed && started.elapsed() > RUN_LIMIT {
            // Not yet reaped, so the pid is still ours.
            let _ = child.kill();
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        !killed,
        "loadgen did not end within {RUN_LIMIT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let report = std::fs::read(&json)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    Ran {
        code,
        peak_rss_kib: usage.ru_maxrss,
        stdout,
        stderr,
        report,
    }
}

/// A fresh folder for one test's files.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The checks every run must pass: it ended normally, within the memory ceiling.
fn assert_ended_within_memory(name: &str, ran: &Ran) {
    eprintln!(
        "{name}: loadgen peak RSS {} MiB (ceiling {} MiB)",
        ran.peak_rss_kib / 1024,
        RSS_CEILING_KIB / 1024
    );
    assert_eq!(
        ran.code,
        Some(0),
        "{name}: loadgen failed or panicked\nstdout:\n{}\nstderr:\n{}",
        ran.stdout,
        ran.stderr
    );
    assert!(
        ran.peak_rss_kib < RSS_CEILING_KIB,
        "{name}: peak RSS {} KiB, ceiling {RSS_CEILING_KIB} KiB",
        ran.peak_rss_kib
    );
}

/// `loadgen bench` loading the server's `/health` while scraping its hostile path;
/// every scrape must fail as `kind`, and the load go on regardless.
fn scrape_fails_as(hostile: Hostile, name: &str, kind: &str) {
    let server = HostileServer::start(hostile);
    let dir = test_dir(name);
    let (url, scrape) = (server.url("/health"), server.url("/hostile/metrics.json"));
    // A 5 s interval gives each scrape 4.5 s: ample time for an uncapped read to
    // take in most of the 1 GiB offered.
    let ran = run_loadgen(
        &dir,
        &[
            "bench",
            "--url",
            &url,
            "--rate",
            "20",
            "--connections",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--interval",
            "5s",
            "--scrape",
            &scrape,
        ],
    );
    assert_ended_within_memory(name, &ran);
    let telemetry = &ran.report["server_telemetry"];
    let scrapes = telemetry["scrapes"].as_u64().unwrap_or(0);
    assert!(scrapes >= 1, "{name}: {telemetry}");
    assert_eq!(
        telemetry["scrape_failures"][kind].as_u64(),
        Some(scrapes),
        "{name}: every scrape should fail as {kind:?}: {telemetry}"
    );
    assert!(
        server.hostile_answers.load(Ordering::Relaxed) >= scrapes,
        "{name}: the scrapes reached the server"
    );
    // The load itself was answered throughout.
    let counts = &ran.report["streams"][0]["counts"];
    assert!(
        counts["status_2xx"].as_u64().unwrap_or(0) >= 10,
        "{name}: {counts}"
    );
    assert_eq!(counts["too_large"], 0, "{name}: {counts}");
    let offered = server.hostile_bytes.load(Ordering::Relaxed);
    eprintln!("{name}: {} MiB offered to the scrapes", offered >> 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_endless_header_fails_the_scrape_with_a_bounded_buffer() {
    // No response head may pass 64 KiB: a malformed answer (counted with the
    // broken connections), not a body.
    scrape_fails_as(Hostile::EndlessHead, "endless-head", "connection");
}

#[test]
fn an_endless_chunked_body_fails_the_scrape_as_too_large() {
    scrape_fails_as(Hostile::EndlessChunked, "endless-chunked", "too large");
}

#[test]
fn a_ten_gigabyte_content_length_fails_the_scrape_as_too_large() {
    scrape_fails_as(Hostile::HugeLength, "huge-length", "too large");
}

#[test]
fn an_endless_body_until_close_fails_the_scrape_as_too_large() {
    scrape_fails_as(Hostile::UntilClose, "until-close", "too large");
}

#[test]
fn job_submissions_answered_without_end_count_as_too_large() {
    // A job stream keeps each submission's answer (to read the job's id): an
    // endless one fails that submission as "too large", in the submit stream's
    // counts, and the run goes on to its end.
    let server = HostileServer::start(Hostile::EndlessChunked);
    let dir = test_dir("job-submissions");
    let scenario = dir.join("jobs.toml");
    std::fs::write(
        &scenario,
        format!(
            "duration = \"1s\"\nwarmup = \"0s\"\n\n\
             [[stream]]\nname = \"probe\"\npath = \"/health\"\nrate = 20\n\n\
             [[stream]]\nname = \"work\"\nkind = \"job\"\npath = \"{HOSTILE_PREFIX}/jobs\"\n\
             rate = 5\nconnections = 1\nbody = '{{}}'\n"
        ),
    )
    .unwrap();
    let url = server.url("");
    let scenario_arg = scenario.to_string_lossy().into_owned();
    let ran = run_loadgen(&dir, &["bench", "--scenario", &scenario_arg, "--url", &url]);
    assert_ended_within_memory("job-submissions", &ran);
    let streams = ran.report["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let submit = streams
        .iter()
        .find(|s| s["name"] == "work.submit")
        .unwrap_or_else(|| panic!("no submit stream: {}", ran.report));
    let counts = &submit["counts"];
    let sent = counts["sent"].as_u64().unwrap_or(0);
    assert!(sent >= 1, "{counts}");
    assert_eq!(counts["too_large"].as_u64(), Some(sent), "{counts}");
    let figures = &ran.report["jobs"][0]["figures"];
    assert_eq!(figures["submit_errors"].as_u64(), Some(sent), "{figures}");
    assert_eq!(figures["accepted"], 0, "{figures}");
    // The summary names the kind.
    assert!(ran.stdout.contains("too large"), "{}", ran.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}
