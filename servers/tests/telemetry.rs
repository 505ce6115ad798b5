//! The telemetry endpoints: the lag probe sees a stall, `/metrics` is valid
//! Prometheus text, job counters follow a job, every multi-worker process is
//! reported with the connections and requests it took, and `--no-telemetry` turns
//! it all off.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::Server;

/// The one process of a single-process server's `/metrics.json`.
fn only_process(server: &Server) -> Value {
    let response = server.get("/metrics.json");
    assert_eq!(response.status, 200, "{}", response.body);
    let report = response.json();
    let processes = report["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 1, "{report}");
    processes[0].clone()
}

fn lag_max(process: &Value) -> f64 {
    process["lag"]["max_s"].as_f64().unwrap()
}

/// Polls `/metrics.json` until `done` holds for its one process (up to 10 s).
fn wait_for(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let process = only_process(server);
        if done(&process) {
            return process;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {process}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lag_probe_sees_a_stall_of_the_event_loop() {
    let server = Server::start("current-thread", &[]);
    // Let the probe take a few hundred idle samples.
    std::thread::sleep(Duration::from_millis(500));
    let idle = only_process(&server);
    assert!(idle["lag"]["count"].as_u64().unwrap() >= 20, "{idle}");

    // /work/io sleeps on the only runtime thread for 300 ms.
    let blocked = server.get("/work/io?ms=300");
    assert_eq!(blocked.status, 200);
    let after = wait_for(&server, "the stall recorded", |p| {
        lag_max(p) > lag_max(&idle)
    });

    assert!(lag_max(&after) >= 0.2, "a 300 ms block must show: {after}");
    assert!(
        lag_max(&idle) < lag_max(&after) / 4.0,
        "idle lag {} should be far below the stall's {}",
        lag_max(&idle),
        lag_max(&after)
    );
    // Most samples are still short: the stall is one sample, not a shift.
    assert!(after["lag"]["p50_s"].as_f64().unwrap() < 0.05, "{after}");
}

#[test]
fn metrics_is_valid_prometheus_text() {
    let server = Server::start("rayon", &["--workers", "2"]);
    assert_eq!(server.get("/work/cpu?units=10").status, 200);
    std::thread::sleep(Duration::from_millis(50));
    let response = server.get("/metrics");
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let body = &response.body;

    // Every family has HELP then TYPE, and every sample belongs to the family
    // declared last.
    let mut family: Option<(String, String)> = None;
    let mut families = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(rest.split_once(' ').is_some(), "HELP without text: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.push(name.to_owned());
            family = Some((name.to_owned(), kind.to_owned()));
        } else {
            let (name, kind) = family.as_ref().expect("sample before any TYPE");
            let sample_name = line.split(['{', ' ']).next().unwrap();
            let allowed = match kind.as_str() {
                "histogram" => vec![
                    format!("{name}_bucket"),
                    format!("{name}_sum"),
                    format!("{name}_count"),
                ],
                _ => vec![name.clone()],
            };
            assert!(allowed.contains(&sample_name.to_owned()), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
        }
    }
    let unique: std::collections::HashSet<&String> = families.iter().collect();
    assert_eq!(unique.len(), families.len(), "a family declared twice");

    // An independent parser reads it back with the right types and values.
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse rejects it");
    let find = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    match &find("server_event_loop_lag_seconds").value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.len() >= 10);
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
            assert!(buckets.last().unwrap().count > 0.0);
        }
        other => panic!("lag is not a histogram: {other:?}"),
    }
    match find("server_jobs_completed_total").value {
        prometheus_parse::Value::Counter(n) => assert_eq!(n, 1.0),
        ref other => panic!("not a counter: {other:?}"),
    }
    match find("tokio_runtime_workers").value {
        prometheus_parse::Value::Gauge(n) => assert_eq!(n, 2.0),
        ref other => panic!("not a gauge: {other:?}"),
    }
    let busy: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "tokio_worker_busy_seconds_total")
        .collect();
    assert_eq!(busy.len(), 2, "one busy counter per worker");
    assert_eq!(
        find("tokio_runtime_workers").labels.get("variant"),
        Some("rayon")
    );
}

#[test]
fn job_counters_follow_a_job_through_the_queue() {
    let server = Server::start("sequential-queue", &[]);
    let addr = server.addr;
    let job = std::thread::spawn(move || support::get(addr, "/work/io?ms=600"));
    let running = wait_for(&server, "the job running", |p| {
        p["jobs"]["running"] == 1 && p["jobs"]["in_flight"] == 1
    });
    assert_eq!(running["jobs"]["queued"], 0, "{running}");
    assert_eq!(job.join().unwrap().status, 200);
    let done = wait_for(&server, "the job finished", |p| p["jobs"]["completed"] == 1);
    assert_eq!(done["jobs"]["in_flight"], 0, "{done}");
    assert_eq!(done["jobs"]["running"], 0, "{done}");
}

#[test]
fn multi_worker_reports_every_process() {
    for variant in ["multi-worker", "multi-worker-reuseport"] {
        let server = Server::start(variant, &["--workers", "2"]);
        let report = server.metrics_of_every_process(2);
        let processes = report["processes"].as_array().unwrap();
        assert_eq!(processes.len(), 2, "{report}");
        let indexes: Vec<u64> = processes
            .iter()
            .map(|p| p["process"].as_u64().unwrap())
            .collect();
        assert_eq!(indexes, [0, 1]);
        assert_ne!(processes[0]["pid"], processes[1]["pid"]);
        for p in processes {
            assert_eq!(p["runtime"]["workers"], 1, "{p}");
            assert!(p["age_s"].as_f64().unwrap() < 5.0, "stale: {p}");
        }
        let text = server.get("/metrics").body;
        assert!(
            text.contains(&format!(
                "tokio_runtime_workers{{variant=\"{variant}\",process=\"1\"}} 1"
            )),
            "{text}"
        );
    }
}

/// The sum over the processes of `/metrics.json` of `field`.
fn total(report: &Value, field: &str) -> u64 {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_u64().unwrap())
        .sum()
}

#[test]
fn every_process_counts_the_connections_it_accepted_and_the_requests_it_served() {
    const CONNECTIONS: u64 = 30;
    for (variant, processes) in [
        ("current-thread", 1),
        ("multi-worker", 2),
        ("multi-worker-reuseport", 2),
    ] {
        let server = Server::start(variant, &["--workers", "2"]);
        for _ in 0..CONNECTIONS {
            assert_eq!(server.get("/health").status, 200);
        }
        // Siblings publish every 100 ms; each look is one more connection.
        let deadline = Instant::now() + Duration::from_secs(10);
        let report = loop {
            let report = server.metrics_of_every_process(processes);
            let done = total(&report, "connections_accepted") >= CONNECTIONS
                && total(&report, "requests") >= CONNECTIONS;
            if done || Instant::now() > deadline {
                break report;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let accepted = total(&report, "connections_accepted");
        let requests = total(&report, "requests");
        eprintln!("{variant}: {accepted} connections accepted, {requests} requests");
        assert!(accepted >= CONNECTIONS, "{variant}: {report}");
        assert!(requests >= CONNECTIONS, "{variant}: {report}");
        // One request per connection here, so never more connections than requests
        // beyond the looks still in flight.
        assert!(accepted <= requests + 1, "{variant}: {report}");

        let text = server.get("/metrics").body;
        let families = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("valid Prometheus text");
        for name in ["server_connections_accepted_total", "server_requests_total"] {
            let samples: Vec<_> = families
                .samples
                .iter()
                .filter(|s| s.metric == name)
                .collect();
            assert_eq!(samples.len(), processes, "{variant}: {name}\n{text}");
            for sample in samples {
                assert_eq!(sample.labels.get("variant"), Some(variant), "{name}");
                assert_eq!(
                    sample.labels.get("process").is_some(),
                    processes > 1,
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn no_telemetry_turns_the_endpoints_off() {
    let server = Server::start("spawn-blocking", &["--no-telemetry"]);
    for path in ["/metrics", "/metrics.json"] {
        let response = server.get(path);
        assert_eq!(response.status, 404, "{path}");
        assert!(response.json()["error"]
            .as_str()
            .unwrap()
            .contains("--no-telemetry"));
    }
    assert_eq!(server.get("/health").status, 200);
}
