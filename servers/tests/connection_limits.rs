//! What a server does with clients that hold connections without using them, and
//! with work nobody waits for any more:
//!
//! - a slowloris (connections that send half a request head) is cut at the header
//!   timeout, not before, while `/health` keeps answering; a kept-alive connection
//!   left idle after a response is cut the same way;
//! - at `--max-connections` the server stops accepting: a further client waits in
//!   the accept queue until a connection closes, and `/metrics` shows the cap;
//! - with `--skip-abandoned`, queued jobs whose clients hung up are not run.
//!
//! Times are judged against the configured timeout and job lengths (ratios), never
//! as absolute budgets.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{KeepAlive, Server};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The header timeout the slowloris test gives the server.
const HEADER_TIMEOUT: Duration = Duration::from_millis(2500);
/// Connections in the slowloris.
const SLOW_CLIENTS: usize = 300;

/// Reads from `stream` until the server closes it (end of file or reset) or
/// `limit` passes; returns when it closed, or `None` if it stayed open.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return Some(Instant::now()),
            // hyper may answer 408 before closing; keep reading to the close.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(Instant::now()),
        }
    }
}

/// A number from the Prometheus text of `/metrics` (the first sample of `name`).
fn metric(text: &str, name: &str) -> f64 {
    support::prometheus_sample(text, name, None)
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn a_slowloris_is_cut_at_the_header_timeout_while_health_keeps_answering() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let timeout = humantime::format_duration(HEADER_TIMEOUT).to_string();
    let server = Server::start("rayon", &["--header-timeout", &timeout]);
    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW_CLIENTS)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).expect("connect");
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow:")
                .unwrap();
            stream
        })
        .collect();
    // A kept-alive connection that got its answer and then says nothing.
    let mut idle = KeepAlive::open(server.addr);
    assert_eq!(idle.get("/health").status, 200);
    let idle_since = Instant::now();

    // While the slow clients hold their connections, new clients are answered.
    for _ in 0..20 {
        assert_eq!(server.get("/health").status, 200);
    }
    let answered_by = opened.elapsed();
    assert!(
        answered_by < HEADER_TIMEOUT,
        "the probes took {answered_by:?}, past the header timeout: cannot tell them from the cut"
    );

    let limit = HEADER_TIMEOUT * 10;
    let mut cut_after = Vec::new();
    for stream in &mut slow {
        let at = closed_within(stream, limit).expect("a slow client was never cut");
        cut_after.push(at.duration_since(opened));
    }
    let idle_cut = closed_within(idle.stream(), limit).expect("an idle connection was never cut");
    let idle_after = idle_cut.duration_since(idle_since);
    let first = *cut_after.iter().min().unwrap();
    let last = *cut_after.iter().max().unwrap();
    // Not before the timeout (a little slack for the clock's granularity)...
    assert!(
        first >= HEADER_TIMEOUT.mul_f64(0.9),
        "first cut after {first:?}"
    );
    assert!(
        idle_after >= HEADER_TIMEOUT.mul_f64(0.9),
        "idle cut after {idle_after:?}"
    );
    // ...and all of them soon after it.
    assert!(last < HEADER_TIMEOUT * 4, "last cut after {last:?}");
    assert!(
        idle_after < HEADER_TIMEOUT * 4,
        "idle cut after {idle_after:?}"
    );

    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    let timeouts = metric(&metrics.body, "server_header_timeouts_total");
    assert!(
        timeouts >= (SLOW_CLIENTS + 1) as f64,
        "{timeouts} header timeouts counted"
    );
    assert_eq!(
        server.get("/health").status,
        200,
        "still serving afterwards"
    );
}

#[test]
fn at_the_connection_cap_a_new_client_waits_until_a_connection_closes() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const CAP: usize = 4;
    let server = Server::start("rayon", &["--max-connections", &CAP.to_string()]);
    let mut held: Vec<KeepAlive> = (0..CAP)
        .map(|_| {
            let mut connection = KeepAlive::open(server.addr);
            assert_eq!(connection.get("/health").status, 200);
            connection
        })
        .collect();

    // The kernel completes the handshake (the accept queue), but the server does
    // not take the connection: the request goes unanswered.
    let mut waiting = TcpStream::connect(server.addr).expect("the accept queue takes it");
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut answer = Vec::new();
    let early = waiting.read_to_end(&mut answer);
    assert!(
        early.is_err() && answer.is_empty(),
        "answered past the cap: {early:?} {:?}",
        String::from_utf8_lossy(&answer)
    );

    let metrics = held[0].get("/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(metric(&metrics.body, "server_connections_max"), CAP as f64);
    assert_eq!(metric(&metrics.body, "server_connections_open"), CAP as f64);
    assert!(metric(&metrics.body, "server_connection_limit_waits_total") >= 1.0);

    // One connection closes: the waiting client is taken and answered.
    drop(held.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    waiting
        .read_to_end(&mut answer)
        .expect("answered once a slot freed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// Sends `GET path` on a new connection and hangs up after `after` without
/// reading the answer.
fn ask_and_hang_up(addr: std::net::SocketAddr, path: &str, after: Duration) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(after);
}

/// Seconds `/work/io?ms=job_ms` waits in sequential-queue's one-thread queue behind
/// a first job of `first` and `abandoned` jobs whose clients hung up.
fn queue_wait_behind_abandoned(skip: bool, first: Duration, abandoned: usize) -> (Duration, f64) {
    let mut args = vec![];
    if skip {
        args.push("--skip-abandoned");
    }
    let server = Server::start("sequential-queue", &args);
    let addr = server.addr;
    let job_ms = first.as_millis() as u64 / 2;
    let blocker = std::thread::spawn(move || {
        support::get(addr, &format!("/work/io?ms={}", first.as_millis()))
    });
    std::thread::sleep(first / 10);
    for _ in 0..abandoned {
        ask_and_hang_up(
            addr,
            &format!("/work/io?ms={job_ms}"),
            Duration::from_millis(20),
        );
    }
    let (response, took) = support::timed_get(addr, &format!("/work/io?ms={job_ms}"));
    assert_eq!(response.status, 200);
    assert_eq!(blocker.join().unwrap().status, 200);
    let queued = Duration::from_micros(response.json()["queue_us"].as_u64().unwrap());
    let metrics = server.get("/metrics");
    let skipped = metric(&metrics.body, "server_jobs_skipped_abandoned_total");
    assert!(took >= queued);
    (queued, skipped)
}

#[test]
fn queued_jobs_whose_clients_hung_up_are_skipped_only_when_asked() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let first = Duration::from_millis(600);
    let abandoned = 4;
    // Without the flag the queue runs every abandoned job (each half of `first`)
    // before the last request's; with it, those are skipped and the last waits
    // only for what is left of the first.
    let (kept_waiting, none_skipped) = queue_wait_behind_abandoned(false, first, abandoned);
    let (skipping_wait, skipped) = queue_wait_behind_abandoned(true, first, abandoned);
    assert_eq!(none_skipped, 0.0);
    assert_eq!(skipped, abandoned as f64);
    let abandoned_work = first / 2 * abandoned as u32;
    assert!(
        kept_waiting >= abandoned_work,
        "without --skip-abandoned the last job waited {kept_waiting:?}, less than the abandoned work {abandoned_work:?}"
    );
    assert!(
        skipping_wait < first,
        "with --skip-abandoned the last job waited {skipping_wait:?}, more than the first job {first:?}"
    );
}
