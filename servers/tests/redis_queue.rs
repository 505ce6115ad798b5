//! The redis-queue variant against a real, throw-away Redis (scripts/redis-throwaway.sh):
//! jobs complete across two workers, a worker killed with SIGKILL mid-job loses
//! nothing, an API server restart keeps every status, a job that keeps timing out
//! fails with its reason, and nothing is lost over a burst.
//!
//! Needs `redis-server` (Debian's package; `.ci/run` installs it and sets
//! REQUIRE_REDIS=1 so a missing one fails there). Elsewhere these tests say SKIPPED.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::redis::{script_redis, worker};
use support::{post_json, Server};

const LIMIT: Duration = Duration::from_secs(60);

fn submit(server: &Server, body: &str) -> String {
    let response = post_json(server.addr, "/jobs", body);
    assert_eq!(response.status, 202, "{}", response.body);
    response.json()["id"].as_str().unwrap().to_owned()
}

fn job(server: &Server, id: &str) -> Value {
    let response = server.get(&format!("/jobs/{id}"));
    assert_eq!(response.status, 200, "{id}: {}", response.body);
    response.json()
}

fn wait_for(server: &Server, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let j = job(server, id);
        if j["status"] == status {
            return j;
        }
        assert!(Instant::now() < deadline, "never {status}: {j}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn jobs_complete_across_two_workers() {
    let Some((_redis, url)) = script_redis() else {
        return;
    };
    let server = Server::start("redis-queue", &["--redis", &url]);
    let _a = worker(&url, &["--concurrency", "1"]);
    let _b = worker(&url, &["--concurrency", "1"]);
    let ids: Vec<String> = (0..6)
        .map(|_| submit(&server, r#"{"kind": "io", "ms": 150}"#))
        .collect();
    let mut pids = std::collections::HashSet::new();
    for id in &ids {
        let done = wait_for(&server, id, "done");
        assert_eq!(done["attempts"], 1, "{done}");
        pids.insert(done["result"]["worker_pid"].as_u64().unwrap());
    }
    assert_eq!(pids.len(), 2, "both workers ran jobs");

    // The synchronous endpoints go through the queue too.
    let response = server.get("/work/cpu?units=1000");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.json()["checksum"].is_string());
    let backlog = server.get("/backlog").json();
    assert_eq!(
        (backlog["queued"].as_u64(), backlog["running"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_job_of_a_killed_worker_is_taken_over() {
    let Some((_redis, url)) = script_redis() else {
        return;
    };
    let server = Server::start("redis-queue", &["--redis", &url]);
    let mut doomed = worker(&url, &["--concurrency", "1", "--visibility-timeout", "1s"]);
    let id = submit(&server, r#"{"kind": "io", "ms": 1000}"#);
    wait_for(&server, &id, "running");
    let doomed_pid = doomed.0.id();
    doomed.kill_hard(); // SIGKILL mid-job: no chance to hand it back
    let _rescuer = worker(&url, &["--concurrency", "1", "--visibility-timeout", "1s"]);
    let done = wait_for(&server, &id, "done");
    assert_eq!(done["attempts"], 2, "{done}");
    assert_ne!(
        done["result"]["worker_pid"].as_u64(),
        Some(u64::from(doomed_pid))
    );
}

#[test]
fn an_api_server_restart_keeps_every_status() {
    let Some((_redis, url)) = script_redis() else {
        return;
    };
    let first = Server::start("redis-queue", &["--redis", &url]);
    let _worker = worker(&url, &["--concurrency", "1"]);
    let done_id = submit(&first, r#"{"kind": "cpu", "units": 100}"#);
    wait_for(&first, &done_id, "done");
    let slow_id = submit(&first, r#"{"kind": "io", "ms": 800}"#);
    drop(first);

    let second = Server::start("redis-queue", &["--redis", &url]);
    assert_eq!(job(&second, &done_id)["status"], "done");
    let slow = wait_for(&second, &slow_id, "done");
    assert_eq!(slow["attempts"], 1, "{slow}");
}

#[test]
fn a_job_that_keeps_timing_out_fails_with_its_reason() {
    let Some((_redis, url)) = script_redis() else {
        return;
    };
    let server = Server::start("redis-queue", &["--redis", &url, "--max-attempts", "2"]);
    let _worker = worker(&url, &["--concurrency", "1", "--job-timeout", "200ms"]);
    let id = submit(&server, r#"{"kind": "io", "ms": 1000}"#);
    let failed = wait_for(&server, &id, "failed");
    assert_eq!(failed["attempts"], 2, "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("timed out") && error.contains("2 of 2"),
        "{error}"
    );
}

#[test]
fn nothing_is_lost_over_a_burst() {
    let Some((_redis, url)) = script_redis() else {
        return;
    };
    let server = Server::start("redis-queue", &["--redis", &url]);
    let _a = worker(&url, &["--concurrency", "2"]);
    let _b = worker(&url, &["--concurrency", "2"]);
    let ids: Vec<String> = (0..300)
        .map(|i| {
            submit(
                &server,
                &format!(r#"{{"kind": "cpu", "units": {}}}"#, 50 + i),
            )
        })
        .collect();
    for id in &ids {
        let done = wait_for(&server, id, "done");
        assert!(done["result"]["checksum"].is_string(), "{done}");
    }
    let backlog = server.get("/backlog").json();
    assert_eq!(backlog["queued"], 0, "{backlog}");
}
