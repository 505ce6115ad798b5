//! The measuring core against test servers whose behaviour is known: pacing,
//! coordinated-omission correction, closed loop, and every kind of failure.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loadgen::plan::Load;
use support::{ms, plan, run, Behaviour, TestServer};

fn open(rate: f64, connections: usize) -> Load {
    Load::Open { rate, connections }
}

#[test]
fn open_loop_sends_exactly_the_schedule() {
    let server = TestServer::start(Behaviour::Fast);
    let outcome = run(&plan(&server.url("/"), open(200.0, 4), ms(2000), ms(500))).unwrap();
    let s = &outcome.streams[0];
    // 200/s for 2 s measured: exactly 400 requests fell due and all were sent.
    assert_eq!(s.total.counts.sent, 400);
    assert_eq!(s.total.counts.status_2xx, 400);
    assert_eq!(s.unsent, 0);
    // The warm-up's 100 requests were sent too, but not recorded.
    assert_eq!(server.requests.load(Ordering::Relaxed), 500);
    // Nearly all on time against an idle server (generous: the machine is noisy).
    assert!(s.total.counts.late < 100, "{} late", s.total.counts.late);
    assert_eq!(s.total.corrected.len(), 400);
    assert!(s.intervals.len() >= 2, "{} intervals", s.intervals.len());
    let in_intervals: u64 = s.intervals.iter().map(|i| i.counts.sent).sum();
    assert_eq!(in_intervals, 400, "intervals add up to the total");
}

#[test]
fn late_requests_are_counted_and_their_wait_is_paid_for() {
    // One connection, 50 ms per response: at most 20/s get through, 100/s are due.
    let server = TestServer::start(Behaviour::Delay(ms(50)));
    let outcome = run(&plan(
        &server.url("/"),
        open(100.0, 1),
        ms(1500),
        Duration::ZERO,
    ))
    .unwrap();
    let s = &outcome.streams[0];
    let c = s.total.counts;
    assert!(c.sent >= 10, "{c:?}");
    assert!(c.late as f64 >= 0.8 * c.sent as f64, "{c:?}");
    assert!(s.unsent >= 50, "backlog at the end: {}", s.unsent);
    assert_eq!(
        c.sent + s.unsent,
        150,
        "every due request is either sent or unsent"
    );
    let corrected = s.total.corrected.value_at_quantile(0.5);
    let uncorrected = s.total.uncorrected.value_at_quantile(0.5);
    assert!(
        corrected > 4 * uncorrected,
        "corrected p50 {corrected} ns should dwarf uncorrected p50 {uncorrected} ns"
    );
}

#[test]
fn a_pause_shows_in_the_corrected_histogram_only() {
    // 100/s for 4 s; the server answers nothing for 1 s from 1.5 s in.
    let server = TestServer::start(Behaviour::Fast);
    let p = plan(&server.url("/"), open(100.0, 4), ms(4000), Duration::ZERO);
    server.pause_later(ms(1500), ms(1000));
    let outcome = run(&p).unwrap();
    let s = &outcome.streams[0];
    let over = |h: &hdrhistogram::Histogram<u64>, threshold: Duration| {
        h.count_between(threshold.as_nanos() as u64, u64::MAX)
    };
    let corrected_slow = over(&s.total.corrected, ms(200));
    let uncorrected_slow = over(&s.total.uncorrected, ms(200));
    eprintln!(
        "pause: {corrected_slow} corrected and {uncorrected_slow} uncorrected above 200 ms, corrected max {} ms",
        s.total.corrected.max() / 1_000_000
    );
    // About 100 requests fell due during the pause; roughly 80 of them waited more
    // than 200 ms from their due time. Only the 4 in flight when it began waited that
    // long from their actual send.
    assert!(
        corrected_slow >= 50,
        "corrected above 200ms: {corrected_slow}"
    );
    assert!(
        uncorrected_slow <= 8,
        "uncorrected above 200ms: {uncorrected_slow}"
    );
    assert!(
        s.total.corrected.max() >= ms(800).as_nanos() as u64,
        "corrected max {} ns should approach the pause",
        s.total.corrected.max()
    );
    assert_eq!(s.total.counts.sent, 400);
}

#[test]
fn closed_loop_sends_back_to_back() {
    // Two connections and 20 ms per response: at most 100 responses per second.
    let server = TestServer::start(Behaviour::Delay(ms(20)));
    let outcome = run(&plan(
        &server.url("/"),
        Load::Closed { connections: 2 },
        ms(2000),
        ms(200),
    ))
    .unwrap();
    let s = &outcome.streams[0];
    let ceiling = 2.0 * 2000.0 / 20.0;
    let got = s.total.counts.responses as f64;
    assert!(
        got <= ceiling * 1.05 && got >= ceiling * 0.5,
        "{got} responses, ceiling {ceiling}"
    );
    assert_eq!(s.unsent, 0);
    assert_eq!(s.total.counts.late, 0);
    // Closed loop has no due time apart from the send: both views agree.
    let (c, u) = (&s.total.corrected, &s.total.uncorrected);
    assert!(
        c.len() == u.len()
            && c.max() == u.max()
            && c.value_at_quantile(0.5) == u.value_at_quantile(0.5)
    );
}

#[test]
fn server_errors_are_counted_by_status_class() {
    let server = TestServer::start(Behaviour::Fail);
    let outcome = run(&plan(
        &server.url("/"),
        open(100.0, 2),
        ms(1000),
        Duration::ZERO,
    ))
    .unwrap();
    let c = outcome.streams[0].total.counts;
    assert_eq!(c.sent, 100);
    assert_eq!(c.status_5xx, 100);
    assert_eq!(c.errors(), 100);
    assert_eq!(c.connect_errors + c.timeouts + c.io_errors, 0);
}

#[test]
fn closed_connections_count_as_io_errors() {
    let server = TestServer::start(Behaviour::Close);
    let outcome = run(&plan(
        &server.url("/"),
        open(50.0, 2),
        ms(1000),
        Duration::ZERO,
    ))
    .unwrap();
    let c = outcome.streams[0].total.counts;
    assert_eq!(c.sent, 50);
    assert_eq!(c.responses, 0);
    assert_eq!(c.io_errors, 50, "{c:?}");
}

#[test]
fn unanswered_requests_time_out_and_the_run_still_ends() {
    let server = TestServer::start(Behaviour::Silent);
    let mut p = plan(&server.url("/"), open(20.0, 4), ms(1000), Duration::ZERO);
    p.timing.timeout = ms(200);
    let started = Instant::now();
    let outcome = run(&p).unwrap();
    let c = outcome.streams[0].total.counts;
    assert!(c.timeouts >= 10, "{c:?}");
    assert_eq!(c.responses, 0);
    assert_eq!(c.sent + outcome.streams[0].unsent, 20);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run did not stop by itself"
    );
}

#[test]
fn a_server_stopped_mid_run_gives_connect_errors_not_a_crash() {
    let mut server = TestServer::start(Behaviour::Fast);
    let p = plan(&server.url("/"), open(100.0, 2), ms(2000), Duration::ZERO);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(ms(1000));
        server.stop();
        server
    });
    let outcome = run(&p).unwrap();
    drop(stopper.join().unwrap());
    let c = outcome.streams[0].total.counts;
    assert_eq!(c.sent, 200, "{c:?}");
    assert!(c.status_2xx >= 50 && c.status_2xx <= 150, "{c:?}");
    assert!(c.connect_errors + c.io_errors >= 40, "{c:?}");
    assert_eq!(
        c.status_2xx + c.connect_errors + c.io_errors + c.timeouts,
        200
    );
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = support::free_port();
    let started = Instant::now();
    let error = run(&plan(
        &format!("http://127.0.0.1:{port}/"),
        open(10.0, 1),
        ms(1000),
        Duration::ZERO,
    ))
    .unwrap_err()
    .to_string();
    assert!(error.contains("cannot connect"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn fresh_connections_open_one_per_request_and_time_each_connect() {
    // A new client per request: the server accepts a connection for every one,
    // and each connect is timed; a kept-alive stream uses its few connections and
    // records no connect times.
    let server = TestServer::start(Behaviour::Fast);
    let load = Load::Open {
        rate: 200.0,
        connections: 4,
    };
    let mut fresh = plan(&server.url("/health"), load, ms(1_000), ms(0));
    fresh.streams[0].fresh_connections = true;
    let outcome = run(&fresh).unwrap();
    let s = &outcome.streams[0];
    let sent = s.total.counts.sent;
    assert!(
        sent >= 190 && s.total.counts.status_2xx == sent,
        "{:?}",
        s.total.counts
    );
    let accepted = server.connections.load(Ordering::Relaxed);
    assert!(
        accepted >= sent,
        "{accepted} connections for {sent} requests"
    );
    let connect = s.total.connect.as_ref().expect("connect times");
    assert_eq!(connect.len(), sent);

    let before = server.connections.load(Ordering::Relaxed);
    let kept = plan(&server.url("/health"), load, ms(1_000), ms(0));
    let outcome = run(&kept).unwrap();
    let s = &outcome.streams[0];
    let accepted = server.connections.load(Ordering::Relaxed) - before;
    assert!(
        accepted <= 4 + 1,
        "{accepted} connections for a kept-alive stream"
    );
    assert!(s.total.connect.is_none());
}

#[test]
fn first_byte_times_hold_the_server_wait_and_connect_times_do_not() {
    // A server that waits 40 ms before it answers: every answered request's first
    // byte comes at least that late, and never after the response's end.
    let server = TestServer::start(Behaviour::Delay(ms(40)));
    let load = Load::Open {
        rate: 20.0,
        connections: 2,
    };
    let outcome = run(&plan(&server.url("/"), load, ms(1_000), ms(0))).unwrap();
    let s = &outcome.streams[0];
    let first_byte = s.total.first_byte.as_ref().expect("first-byte times");
    assert_eq!(first_byte.len(), s.total.counts.status_2xx);
    assert!(first_byte.min() >= 40_000_000, "{} ns", first_byte.min());
    assert!(s.total.connect.is_none(), "kept-alive connections");

    // A listener that accepts nothing for its first 300 ms: the kernel still
    // completes each handshake, so new clients' connects stay fast, and the
    // wait shows in their first byte instead.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = stalled.local_addr().unwrap();
    let stall = ms(300);
    std::thread::spawn(move || {
        std::thread::sleep(stall);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            stalled.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(stalled).unwrap();
            let app = axum::Router::new().fallback(|| async { "ok" });
            let _ = tokio::time::timeout(ms(5_000), axum::serve(listener, app)).await;
        });
    });
    let mut fresh = plan(&format!("http://{addr}/"), load, ms(1_000), ms(0));
    fresh.streams[0].fresh_connections = true;
    let outcome = run(&fresh).unwrap();
    let s = &outcome.streams[0];
    let connect = s.total.connect.as_ref().expect("connect times");
    let first_byte = s.total.first_byte.as_ref().expect("first-byte times");
    assert!(
        first_byte.max() >= 150_000_000,
        "the first clients waited for the stalled accept: {} ns",
        first_byte.max()
    );
    assert!(
        connect.max() * 10 < first_byte.max(),
        "connect max {} ns, first byte max {} ns",
        connect.max(),
        first_byte.max()
    );
}
