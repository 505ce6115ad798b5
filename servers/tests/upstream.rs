//! Blocking network I/O: the slow upstream service and `GET /work/upstream` on the
//! variants, with ratios instead of absolute times.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{get, Server};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Starts `servers upstream` with `delay` as its default wait.
fn upstream(delay: &str) -> Server {
    Server::spawn(&["upstream", "--delay", delay])
}

/// Sends `calls` requests for `path` at once, each from its own thread on its own
/// connection; returns their statuses and how long until the last answered.
fn all_at_once(server: std::net::SocketAddr, path: &str, calls: usize) -> (Vec<u16>, Duration) {
    let started = Instant::now();
    let threads: Vec<_> = (0..calls)
        .map(|_| {
            let path = path.to_owned();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || get(server, &path).status)
                .expect("cannot start a client thread")
        })
        .collect();
    let statuses = threads.into_iter().map(|t| t.join().unwrap()).collect();
    (statuses, started.elapsed())
}

#[test]
fn the_upstream_holds_a_thousand_concurrent_waits() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let service = upstream("1s");
    let (statuses, took) = all_at_once(service.addr, "/delay", 1_000);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let stats = service.get("/stats").json();
    assert_eq!(stats["served"], 1_000);
    assert_eq!(stats["in_flight"], 0);
    assert!(
        stats["peak_in_flight"].as_u64().unwrap() >= 900,
        "the calls did not wait together: {stats}"
    );
    // Waited together: far less than a thousand one-second waits in a row.
    assert!(took < Duration::from_secs(100), "{took:?}");
    // Bad sizes get a JSON 400, and the service goes on.
    let bad = service.get("/delay?ms=abc");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].is_string());
    assert_eq!(service.get("/health").status, 200);
}

#[test]
fn async_io_completes_five_times_more_upstream_calls_per_second_than_rayon() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let service = upstream("100ms");
    let url = format!("http://{}", service.addr);
    let mut rates = Vec::new();
    for variant in ["rayon", "async-io"] {
        let server = Server::start(variant, &["--workers", "2", "--upstream", &url]);
        // Sixty 100 ms calls at once: rayon's one thread per core makes them
        // one or two at a time; async-io waits for all of them together.
        let (statuses, took) = all_at_once(server.addr, "/work/upstream?ms=100", 60);
        assert!(
            statuses.iter().all(|s| *s == 200),
            "{variant}: {statuses:?}"
        );
        let rate = 60.0 / took.as_secs_f64();
        eprintln!("{variant}: {rate:.1} calls/s");
        rates.push(rate);
    }
    assert!(
        rates[1] >= 5.0 * rates[0],
        "async-io {:.1} calls/s, rayon {:.1}",
        rates[1],
        rates[0]
    );
}

#[test]
fn an_upstream_call_without_or_past_a_dead_upstream_is_a_json_error() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // No --upstream: 501, and the server goes on.
    let server = Server::start("spawn-blocking", &[]);
    let none = server.get("/work/upstream?ms=10");
    assert_eq!(none.status, 501);
    assert!(none.json()["error"]
        .as_str()
        .unwrap()
        .contains("--upstream"));
    assert_eq!(server.get("/health").status, 200);
    // An upstream that is gone: 502 from both clients.
    let gone = {
        let service = upstream("10ms");
        format!("http://{}", service.addr)
    };
    for variant in ["spawn-blocking", "async-io"] {
        let server = Server::start(variant, &["--upstream", &gone]);
        let failed = server.get("/work/upstream?ms=10");
        assert_eq!(failed.status, 502, "{variant}: {failed:?}");
        assert!(failed.json()["error"]
            .as_str()
            .unwrap()
            .contains("upstream call failed"));
        assert_eq!(server.get("/health").status, 200);
    }
}
