//! Helpers for the servers' integration tests: start a variant as a child process on
//! port 0, talk plain HTTP/1.1 to it over loopback, and make sure it is gone after.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod redis;

/// Upper bound on any one request in these tests, so nothing can hang.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A server process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `servers --variant VARIANT ARGS...` and waits for its address.
    pub fn start(variant: &str, args: &[&str]) -> Server {
        let mut all = vec!["--variant", variant];
        all.extend_from_slice(args);
        Server::spawn(&all)
    }

    /// Starts `servers ARGS...` (a variant, or `upstream`) and waits for its address.
    pub fn spawn(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_servers"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start the servers binary");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .expect("cannot read the listening line");
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .expect("bad address in the listening line");
        Server { child, addr }
    }

    /// `/metrics.json` of a multi-process group once all `n` of its processes are
    /// in it (a process joins at its first telemetry write); panics after 10 s.
    pub fn metrics_of_every_process(&self, n: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let report = self.get("/metrics.json").json();
            if report["processes"].as_array().map(Vec::len) == Some(n) {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {n} processes: {report}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pids of a multi-process group's `n` processes, from its telemetry.
    pub fn group_pids(&self, n: usize) -> Vec<u32> {
        self.metrics_of_every_process(n)["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap() as u32)
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: libc::c_int) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path)
    }

    pub fn info(&self) -> Value {
        let response = self.get("/info");
        assert_eq!(response.status, 200);
        response.json()
    }

    /// Units of work that take about `duration` on this server.
    pub fn units_for(&self, duration: Duration) -> u64 {
        let ns = self.info()["ns_per_unit"].as_f64().unwrap();
        (duration.as_nanos() as f64 / ns) as u64
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// `POST path` with a JSON body on a fresh connection.
pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Sends a raw request on a fresh connection and reads the whole response.
pub fn request(addr: SocketAddr, raw: &str) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read response");
    let text = String::from_utf8(bytes).expect("response is not UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of headers");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Reads one HTTP/1.1 response whose body has a `Content-Length` (every response
/// of these servers has), leaving the connection ready for the next one.
fn read_response(reader: &mut impl BufRead) -> Response {
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("read status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let response = Response {
        status,
        headers,
        body: String::new(),
    };
    let length: usize = response
        .header("content-length")
        .expect("no content-length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("read body");
    Response {
        body: String::from_utf8(body).expect("body is not UTF-8"),
        ..response
    }
}

/// How long a response took: to its first byte, and to its last.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub first_byte: Duration,
    pub whole: Duration,
}

/// Waits for the first byte of a response on `reader`, then reads it all; times
/// both from `start`.
fn timed_response(reader: &mut impl BufRead, start: Instant) -> (Response, Timing) {
    reader.fill_buf().expect("read first byte");
    let first_byte = start.elapsed();
    let response = read_response(reader);
    let whole = start.elapsed();
    (response, Timing { first_byte, whole })
}

/// One kept-alive connection: several requests, one after another, on it.
pub struct KeepAlive {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    /// Connects to `addr` (the server accepts it whenever it likes).
    pub fn open(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        KeepAlive {
            addr,
            reader: BufReader::new(stream),
        }
    }

    /// The connection itself, to read or write past the helpers.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    /// `GET path` on this connection, keeping it open.
    pub fn get(&mut self, path: &str) -> Response {
        self.timed_get(path).0
    }

    /// `GET path` on this connection, timed from sending the request.
    pub fn timed_get(&mut self, path: &str) -> (Response, Timing) {
        let start = Instant::now();
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.reader.get_mut().write_all(raw.as_bytes()).unwrap();
        timed_response(&mut self.reader, start)
    }
}

/// `GET path` on a fresh connection, timed from before the connect: what a new
/// client of the server sees.
pub fn timed_fresh_get(addr: SocketAddr, path: &str) -> (Response, Timing) {
    let start = Instant::now();
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream);
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    reader.get_mut().write_all(raw.as_bytes()).unwrap();
    timed_response(&mut reader, start)
}

/// `GET path` on a fresh connection, with how long it took.
pub fn timed_get(addr: SocketAddr, path: &str) -> (Response, Duration) {
    let start = Instant::now();
    let response = get(addr, path);
    (response, start.elapsed())
}

/// Whether any thread of process `pid` still runs (exists and is not a zombie).
///
/// The leader's own state is not enough: when a multi-threaded process is killed,
/// its main thread can be a zombie while the runtime's threads are still exiting,
/// and the descriptors they share (a listening socket) close only with the last.
pub fn process_alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let (_, rest) = stat.rsplit_once(')')?;
                rest.trim_start().chars().next()
            })
            .is_some_and(|state| !matches!(state, 'Z' | 'X'))
    })
}

/// The parent pid of process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The first Prometheus sample `name` of `text` (with `label` = `key=value` among
/// its labels, when given), read by prometheus-parse as any scraper would.
pub fn prometheus_sample(text: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("prometheus-parse rejects /metrics");
    let wanted = label.map(|l| l.split_once('=').expect("label as key=value"));
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name && wanted.is_none_or(|(key, value)| s.labels.get(key) == Some(value))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: unexpected {other:?}"),
        })
}
