//! Every variant starts on port 0, answers every endpoint, and turns bad input into a
//! 400 with a JSON error while staying up.

mod support;

use std::time::Duration;

use servers::variant::Variant;
use support::{request, timed_get, Server};

fn check_variant(variant: Variant) -> String {
    let server = Server::start(variant.name(), &["--workers", "2"]);

    let health = server.get("/health");
    assert_eq!(health.status, 200, "{variant}");

    let info = server.info();
    assert_eq!(info["variant"], variant.name());
    assert!(info["ns_per_unit"].as_f64().unwrap() > 0.0);
    assert!(info["cores"].as_u64().unwrap() >= 1);
    assert!(info["build"]["profile"].is_string());
    let max_units = info["max_units"].as_u64().unwrap();

    let cpu = server.get("/work/cpu?units=100");
    assert_eq!(cpu.status, 200, "{variant}: {}", cpu.body);
    let cpu = cpu.json();
    assert_eq!(cpu["units"], 100);
    assert!(cpu["queue_us"].is_u64() && cpu["compute_us"].is_u64());

    let io = server.get("/work/io?ms=5");
    assert_eq!(io.status, 200, "{variant}: {}", io.body);
    assert!(
        io.json()["compute_us"].as_u64().unwrap() >= 5_000,
        "{variant}"
    );

    let bad = [
        "/work/cpu".to_owned(),
        "/work/cpu?units=".to_owned(),
        "/work/cpu?units=abc".to_owned(),
        "/work/cpu?units=0".to_owned(),
        "/work/cpu?units=-5".to_owned(),
        format!("/work/cpu?units={}", max_units + 1),
        "/work/io".to_owned(),
        "/work/io?ms=0".to_owned(),
        "/work/io?ms=-1".to_owned(),
        "/work/io?ms=1000001".to_owned(),
    ];
    for path in &bad {
        let response = server.get(path);
        assert_eq!(response.status, 400, "{variant} {path}: {}", response.body);
        assert!(
            response.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{variant} {path}"
        );
    }
    let missing = server.get("/no/such/path");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());

    let too_big = request(
        server.addr,
        "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(too_big.status, 413, "{variant}");

    // Still serving after all of that.
    assert_eq!(server.get("/health").status, 200, "{variant}");
    cpu["checksum"].as_str().unwrap().to_owned()
}

#[test]
fn every_variant_serves_every_endpoint_and_rejects_bad_input() {
    let checksums: Vec<(Variant, String)> = std::thread::scope(|s| {
        // redis-queue needs a Redis and workers: tests/redis_queue.rs covers it.
        let handles: Vec<_> = Variant::ALL
            .iter()
            .filter(|v| !v.needs_redis())
            .map(|&v| s.spawn(move || (v, check_variant(v))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The same work gives the same answer whichever strategy ran it (the cooperative
    // variant runs it in slices).
    let first = &checksums[0].1;
    for (variant, checksum) in &checksums {
        assert_eq!(checksum, first, "{variant} computed something else");
    }
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let mut server = Server::start("spawn-blocking", &[]);
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || support::get(addr, "/work/io?ms=600"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    let response = in_flight.join().unwrap();
    assert_eq!(response.status, 200, "in-flight request was cut off");
    let status = server
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("server did not exit after SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn an_injected_delay_slows_health_without_blocking_the_server() {
    // A known regression for measuring `loadgen compare`: every /health waits the
    // delay, on any variant, multi-worker processes included; other requests and
    // concurrent probes do not queue behind it.
    let delay = Duration::from_millis(300);
    for variant in ["current-thread", "multi-worker", "multi-worker-reuseport"] {
        let server = Server::start(variant, &["--inject-delay", "300ms", "--workers", "2"]);
        let (response, took) = timed_get(server.addr, "/health");
        assert_eq!(response.status, 200);
        assert!(took >= delay, "{variant}: /health took {took:?}");
        let (info, took) = timed_get(server.addr, "/info");
        assert_eq!(info.status, 200);
        assert!(took < delay / 10, "{variant}: /info took {took:?}");
        // Ten probes at once finish in about one delay: the wait blocks nothing.
        let started = std::time::Instant::now();
        let probes: Vec<_> = (0..10)
            .map(|_| {
                let addr = server.addr;
                std::thread::spawn(move || timed_get(addr, "/health"))
            })
            .collect();
        for probe in probes {
            assert_eq!(probe.join().unwrap().0.status, 200);
        }
        assert!(
            started.elapsed() < delay * 3,
            "{variant}: ten probes took {:?}",
            started.elapsed()
        );
    }
    let plain = Server::start("current-thread", &[]);
    let (_, took) = timed_get(plain.addr, "/health");
    assert!(took < delay / 10, "without the flag /health took {took:?}");
}
