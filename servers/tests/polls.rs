//! Which code blocked, as each server reports it: a `/work/cpu` job that runs on
//! the event loop shows as a poll of the route as long as the job; handed to a
//! blocking thread, its polls stay short. A background job that runs inline is
//! named by its task, not by `POST /jobs`. Ratios against the job's length only,
//! with room for a poll the kernel preempts on a busy machine.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{post_json, Server};

const JOB: Duration = Duration::from_millis(100);

/// The Prometheus sample `name{…,label="value"}` of `text`, if any.
fn sample(text: &str, name: &str, label: &str) -> Option<f64> {
    support::prometheus_sample(text, name, Some(label))
}

fn longest_poll_of_work_cpu(variant: &str) -> f64 {
    let server = Server::start(variant, &[]);
    let units = server.units_for(JOB);
    assert_eq!(server.get(&format!("/work/cpu?units={units}")).status, 200);
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    sample(
        &metrics.body,
        "server_poll_duration_max_seconds",
        "route=/work/cpu",
    )
    .unwrap_or_else(|| panic!("no /work/cpu poll series on {variant}:\n{}", metrics.body))
}

#[test]
fn a_job_on_the_event_loop_is_one_long_poll_of_its_route_and_a_handed_off_one_is_not() {
    let inline = longest_poll_of_work_cpu("blocking-in-async");
    let handed_off = longest_poll_of_work_cpu("spawn-blocking");
    let job = JOB.as_secs_f64();
    assert!(inline >= job / 2.0, "blocking-in-async: {inline} s");
    // Wide margin: a poll the kernel preempts on a busy machine reads long too.
    assert!(
        handed_off * 5.0 < inline,
        "spawn-blocking: {handed_off} s, inline {inline} s"
    );
}

/// The one process of the server's `/metrics.json`, its poll figures.
fn polls(server: &Server) -> Value {
    let report = server.get("/metrics.json").json();
    report["processes"][0]["polls"].clone()
}

fn source<'a>(polls: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    polls["sources"]
        .as_array()?
        .iter()
        .find(|s| s["kind"] == kind && s["name"] == name)
}

#[test]
fn a_background_job_that_blocks_is_named_by_its_task_not_by_the_route() {
    // The seeds' case: the request answers at once (202), the work it left
    // behind blocks the event loop afterwards.
    let server = Server::start("blocking-in-async", &[]);
    let units = server.units_for(JOB);
    let submitted = post_json(
        server.addr,
        "/jobs",
        &format!("{{\"kind\": \"cpu\", \"units\": {units}}}"),
    );
    assert_eq!(submitted.status, 202, "{}", submitted.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let figures = loop {
        let figures = polls(&server);
        if source(&figures, "task", "cpu").is_some_and(|t| t["long_polls"].as_u64() >= Some(1)) {
            break figures;
        }
        assert!(
            Instant::now() < deadline,
            "the job's task never showed: {figures}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let task = source(&figures, "task", "cpu").unwrap();
    let route = source(&figures, "route", "/jobs").expect("POST /jobs was timed");
    let job = JOB.as_secs_f64();
    assert!(task["max_s"].as_f64().unwrap() >= job / 2.0, "{figures}");
    assert!(route["max_s"].as_f64().unwrap() < job / 4.0, "{figures}");
    let culprits: Vec<(&str, &str)> = figures["long_polls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["duration_s"].as_f64().unwrap() >= job / 2.0)
        .map(|p| (p["kind"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert_eq!(culprits, [("task", "cpu")], "{figures}");
}

#[test]
fn no_poll_timing_leaves_the_figures_out() {
    let server = Server::start("rayon", &["--no-poll-timing"]);
    assert_eq!(server.get("/health").status, 200);
    assert!(polls(&server).is_null());
    let metrics = server.get("/metrics");
    assert!(
        !metrics.body.contains("server_poll_duration"),
        "{}",
        metrics.body
    );
}
