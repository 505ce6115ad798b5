//! Background jobs on every variant: 202 with an id and a Location, status moving
//! from queued to done, 404 for unknown ids, 400 for bad bodies, 503 when the table
//! is full, expiry of finished jobs; and the original complaint reproduced with
//! ratios: a background job still blocks the probe on `blocking-in-async`, not on
//! `rayon`.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{post_json, timed_get, Server};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Every wait in these tests ends by this, whatever happens.
const LIMIT: Duration = Duration::from_secs(30);

/// Submits a job; returns its id after checking the 202 answer.
fn submit(server: &Server, body: &str) -> String {
    let response = post_json(server.addr, "/jobs", body);
    assert_eq!(response.status, 202, "{}", response.body);
    let id = response.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        response.header("location"),
        Some(format!("/jobs/{id}").as_str())
    );
    id
}

/// Polls the job until `done` holds for its status.
fn wait_for(server: &Server, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let response = server.get(&format!("/jobs/{id}"));
        assert_eq!(response.status, 200, "{}", response.body);
        let job = response.json();
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job never got there: {job}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_job_is_accepted_at_once_and_reports_its_way_to_done() {
    let server = Server::start("spawn-blocking", &[]);
    let (response, took) = {
        let start = Instant::now();
        let r = post_json(server.addr, "/jobs", r#"{"kind": "io", "ms": 400}"#);
        (r, start.elapsed())
    };
    assert_eq!(response.status, 202, "{}", response.body);
    assert!(
        took < Duration::from_millis(400),
        "answered before the job ran: {took:?}"
    );
    let id = response.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "128-bit random id in hex");

    let running = wait_for(&server, &id, |j| j["status"] == "running");
    assert!(running["started_at"].is_string() && running["finished_at"].is_null());
    let backlog = server.get("/backlog").json();
    assert_eq!(backlog["running"], 1, "{backlog}");

    let done = wait_for(&server, &id, |j| j["status"] == "done");
    assert_eq!(done["job"]["kind"], "io");
    assert!(
        done["result"]["compute_us"].as_u64().unwrap() >= 400_000,
        "{done}"
    );
    for field in ["queued_at", "started_at", "finished_at"] {
        assert!(
            done[field].as_str().unwrap().ends_with('Z'),
            "{field}: {done}"
        );
    }
    assert!(done["queued_at"].as_str() <= done["started_at"].as_str());
    assert!(done["started_at"].as_str() <= done["finished_at"].as_str());

    let cpu = submit(&server, r#"{"kind": "cpu", "units": 1000}"#);
    let cpu = wait_for(&server, &cpu, |j| j["status"] == "done");
    assert!(cpu["result"]["checksum"].is_string(), "{cpu}");
    let backlog = server.get("/backlog").json();
    assert_eq!(
        (backlog["queued"].as_u64(), backlog["running"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(backlog["finished"], 2);
}

#[test]
fn unknown_ids_and_bad_bodies_get_clear_errors() {
    let server = Server::start("rayon", &[]);
    let missing = server.get("/jobs/0123456789abcdef0123456789abcdef");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().unwrap().contains("no job"));
    for body in [
        "not json",
        r#"{"kind": "gpu", "units": 5}"#,
        r#"{"kind": "cpu"}"#,
        r#"{"kind": "cpu", "units": 0}"#,
        r#"{"kind": "io", "ms": 999999}"#,
        r#"{"kind": "cpu", "units": 5, "extra": 1}"#,
    ] {
        let response = post_json(server.addr, "/jobs", body);
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert!(response.json()["error"].is_string(), "{body}");
    }
    assert_eq!(server.get("/jobs").status, 405, "GET /jobs is not a thing");
    assert_eq!(server.get("/health").status, 200, "still serving");
}

#[test]
fn a_full_table_refuses_and_finished_jobs_expire() {
    let server = Server::start(
        "spawn-blocking",
        &["--jobs-capacity", "1", "--job-ttl", "300ms"],
    );
    let first = submit(&server, r#"{"kind": "io", "ms": 300}"#);
    let refused = post_json(server.addr, "/jobs", r#"{"kind": "io", "ms": 1}"#);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    wait_for(&server, &first, |j| j["status"] == "done");
    // Room again once the first one is done.
    let second = submit(&server, r#"{"kind": "io", "ms": 1}"#);
    wait_for(&server, &second, |j| j["status"] == "done");
    // Forgotten a while after they finished.
    let deadline = Instant::now() + LIMIT;
    while server.get(&format!("/jobs/{first}")).status != 404 {
        assert!(Instant::now() < deadline, "never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Slowest of the probes sent while `jobs` background jobs of ~300 ms run, and
/// the shortest job's compute time.
fn probe_during_background_jobs(server: &Server, jobs: usize) -> (Duration, Duration) {
    let units = server.units_for(Duration::from_millis(300));
    let ids: Vec<String> = (0..jobs)
        .map(|_| submit(server, &format!(r#"{{"kind": "cpu", "units": {units}}}"#)))
        .collect();
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(600) {
        let (response, took) = timed_get(server.addr, "/health");
        assert_eq!(response.status, 200);
        slowest = slowest.max(took);
    }
    let shortest = ids
        .iter()
        .map(|id| {
            let done = wait_for(server, id, |j| j["status"] == "done");
            Duration::from_micros(done["result"]["compute_us"].as_u64().unwrap())
        })
        .min()
        .unwrap();
    (slowest, shortest)
}

#[test]
fn a_background_job_still_blocks_the_probe_on_blocking_in_async() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start("blocking-in-async", &["--workers", "1"]);
    let (slowest, job) = probe_during_background_jobs(&server, 2);
    assert!(
        slowest >= job / 2,
        "the probe waited {slowest:?} behind {job:?} background jobs"
    );
}

#[test]
fn a_background_job_leaves_the_probe_alone_on_rayon() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start("rayon", &["--workers", "1"]);
    let (slowest, job) = probe_during_background_jobs(&server, 2);
    assert!(
        slowest < job / 10,
        "the probe waited {slowest:?} beside {job:?} background jobs"
    );
}
