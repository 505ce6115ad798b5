//! Bad arguments are refused before anything is sent (exit 2, a message that says
//! what to change); an unreachable server is a clear error (exit 1), not a hang.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::processes::loadgen;
use support::processes::ReferenceServer;
use support::{Behaviour, TestServer};

#[test]
fn invalid_combinations_are_refused_before_sending() {
    let server = TestServer::start(Behaviour::Fast);
    let url = server.url("/");
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "--url", &url, "--rate", "0"], "rate"),
        (
            &["bench", "--url", &url, "--name", "../../escaped"],
            "names files",
        ),
        (&["bench", "--url", &url, "--rate", "-5"], "rate"),
        (
            &["bench", "--url", &url, "--connections", "0"],
            "connections",
        ),
        (
            &["bench", "--url", &url, "--rate", "0.01", "-d", "10s"],
            "at least 0.100/s",
        ),
        (&["bench", "--url", &url, "-d", "0s"], "duration"),
        (&["bench", "--url", &url, "-d", "ten"], "duration"),
        (
            &[
                "bench",
                "--url",
                "https://127.0.0.1/",
                "--unix",
                "/tmp/x.sock",
            ],
            "Unix socket",
        ),
        (&["bench", "--url", "ftp://127.0.0.1/"], "http://"),
        (&["bench", "--url", "127.0.0.1:80/"], "scheme"),
        (&["bench", "--url", &url, "-H", "no colon"], "Name: value"),
        (
            &["bench", "--url", &url, "-H", "Content-Length: 9"],
            "set by loadgen from the body",
        ),
        (
            &["bench", "--scenario", "/no/such/file.toml"],
            "cannot read",
        ),
        (
            &["bench", "--scenario", "x.toml", "--rate", "5"],
            "cannot be used with",
        ),
        (&["bench"], "--url"),
        (
            &["run", "--scenario", "nope"],
            "responsiveness, jobs or upstream",
        ),
        (
            &["run", "--ablation", "--variant", "rayon"],
            "cannot be used with",
        ),
        (
            &["run", "--scenario", "upstream", "--loads", "2000"],
            "each from 0.01 to 1000",
        ),
        (
            &["run", "--scenario", "jobs", "--job-load", "0"],
            "--job-load",
        ),
        (&["run", "--variant", "no-such-variant"], "unknown variant"),
        (&["run", "--loads", "0.5,0"], "--loads"),
        (&["run", "--loads", "0.5,x"], "--loads"),
        (&["run", "--loads", "nan"], "--loads"),
        (&["run", "--loads", "inf"], "--loads"),
        (&["run", "--loads", "0.25,0.251"], "the same step"),
        (&["run", "--overload", "1.5"], "--loads 1.5"),
        (&["run", "--loaded", "0s"], "--loaded"),
        (
            &["bench", "--url", &url, "--stages", "30s"],
            "DURATION:RATE",
        ),
        (
            &["bench", "--url", &url, "--stages", "1s:-5"],
            "stage target",
        ),
        (
            &["bench", "--url", &url, "--stages", "0s:5"],
            "longer than zero",
        ),
        (&["bench", "--url", &url, "--stages", "1s:0"], "no request"),
        (
            &[
                "bench",
                "--url",
                &url,
                "--stages",
                "1s:5",
                "--connections",
                "0",
            ],
            "connections",
        ),
        (
            &["bench", "--url", &url, "--auth", "nocolon"],
            "USER:PASSWORD",
        ),
        (
            &[
                "bench",
                "--url",
                &url,
                "--auth",
                "u:p",
                "-H",
                "Authorization: x",
            ],
            "give one",
        ),
        (
            &["bench", "--url", &url, "--body-file", "/no/such/body"],
            "/no/such/body",
        ),
        (
            &["bench", "--url", &url, "--body", "x", "--body-file", "f"],
            "cannot be used with",
        ),
    ];
    for (args, hint) in cases {
        let out = loadgen(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(hint),
            "{args:?}: expected {hint:?} in {stderr}"
        );
    }
    assert_eq!(
        server.requests.load(Ordering::Relaxed),
        0,
        "a refused run sent requests"
    );
}

#[test]
fn an_unreachable_server_exits_1_quickly() {
    let port = support::free_port();
    let started = Instant::now();
    let out = loadgen(&[
        "bench",
        "--url",
        &format!("http://127.0.0.1:{port}/"),
        "--rate",
        "10",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn help_shows_examples() {
    let out = loadgen(&["bench", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Examples:")
            && text.contains("--rate")
            && text.contains("coordinated-omission")
    );
}

#[test]
fn bench_over_a_unix_socket_reaches_a_server_listening_on_one() {
    let dir = std::env::temp_dir().join(format!("loadgen-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("server.sock");
    let (socket_text, json) = (socket.to_str().unwrap(), dir.join("r.json"));

    // Nothing listens there yet: a clear error, not a hang.
    let absent = loadgen(&[
        "bench",
        "--unix",
        socket_text,
        "--url",
        "http://localhost/health",
        "--rate",
        "10",
        "-d",
        "1s",
    ]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&absent.stderr).contains("cannot connect"));

    let mut server =
        ReferenceServer::start(&["--variant", "spawn-blocking", "--unix", socket_text]);
    assert_eq!(server.line, format!("listening on unix:{socket_text}"));
    let out = loadgen(&[
        "bench",
        "--unix",
        socket_text,
        "--url",
        "http://localhost/health",
        "--rate",
        "100",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let counts = &report["streams"][0]["counts"];
    assert_eq!(counts["status_2xx"], counts["sent"], "{counts}");
    assert!(counts["sent"].as_u64().unwrap() >= 90, "{counts}");
    assert_eq!(report["config"]["addr"], format!("unix:{socket_text}"));

    // A second server is not let in on a socket a server listens on.
    let second = loadgen(&[
        "serve",
        "--variant",
        "spawn-blocking",
        "--unix",
        socket_text,
    ]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("listening on"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // The server stops on SIGTERM and takes its socket file with it.
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(server.child.wait().unwrap().success());
    assert!(!socket.exists(), "the socket file is removed on exit");
    // A file that is not a socket is never replaced.
    std::fs::write(&socket, "not a socket").unwrap();
    let refused = loadgen(&[
        "serve",
        "--variant",
        "spawn-blocking",
        "--unix",
        socket_text,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bench` of CPU jobs (~100 ms here) at 4/s against `variant`, scraping its
/// `metrics` (`/metrics.json`, or `/metrics`: the Prometheus text) and sampling
/// its CPU: the report, also written to `dir/NAME.json`.
fn bench_scraped(
    variant: &str,
    metrics: &str,
    name: &str,
    dir: &std::path::Path,
) -> serde_json::Value {
    let server = ReferenceServer::start(&["--variant", variant, "--port", "0"]);
    let json = dir.join(format!("{name}.json"));
    let out = loadgen(&[
        "bench",
        "--url",
        &format!("http://{}/work/cpu?units=110000", server.addr()),
        "--rate",
        "4",
        "-c",
        "4",
        "-d",
        "3s",
        "-w",
        "0s",
        "--timeout",
        "10s",
        "--scrape",
        &format!("http://{}{metrics}", server.addr()),
        "--server-pid",
        &server.child.id().to_string(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("event-loop lag"), "{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn bench_scrapes_a_server_and_its_lag_shows_a_blocked_event_loop() {
    let dir = std::env::temp_dir().join(format!("loadgen-scrape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lag_max_and_job = |report: &serde_json::Value| {
        let t = &report["server_telemetry"];
        let intervals = t["intervals"].as_array().unwrap();
        assert!(
            intervals.len() >= 3,
            "one sample per interval: {}",
            intervals.len()
        );
        assert!(intervals
            .iter()
            .any(|i| i["server_cpu"].as_f64().unwrap_or(0.0) > 0.0));
        assert!(
            intervals.iter().any(|i| i["server"].is_object()),
            "scraped figures"
        );
        let job_us = report["streams"][0]["latency"]["uncorrected"]["p50_us"]
            .as_f64()
            .unwrap();
        (
            t["lag_max_us"].as_f64().unwrap(),
            job_us,
            t["lag"]["p99_us"].as_f64().unwrap(),
        )
    };
    let (blocked, job, blocked_p99) = lag_max_and_job(&bench_scraped(
        "blocking-in-async",
        "/metrics.json",
        "blocking-in-async",
        &dir,
    ));
    let (_, _, free_p99) = lag_max_and_job(&bench_scraped(
        "spawn-blocking",
        "/metrics.json",
        "spawn-blocking",
        &dir,
    ));
    // The Prometheus text of the same server says the same, at its buckets'
    // resolution.
    let (text, _, _) = lag_max_and_job(&bench_scraped(
        "blocking-in-async",
        "/metrics",
        "prometheus",
        &dir,
    ));
    assert!(
        blocked >= job / 2.0,
        "CPU work on the event loop stalls it for about a job: lag max {blocked} µs, job {job} µs"
    );
    // By the p99 of the lag samples: a single late wake-up of spawn-blocking's
    // loop, its threads competing with the runtime for two cores, is no stall
    // of the loop by the work itself.
    assert!(
        free_p99 * 5.0 < blocked_p99,
        "spawn_blocking keeps the loop free: lag p99 {free_p99} µs against {blocked_p99} µs"
    );
    assert!(
        text >= job / 2.0,
        "from the Prometheus text: lag max {text} µs, job {job} µs"
    );
    // And it is checkable.
    let check = loadgen(&[
        "check",
        dir.join("blocking-in-async.json").to_str().unwrap(),
        "--threshold",
        "server.max > 10ms",
    ]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
