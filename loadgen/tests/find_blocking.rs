//! The README's "find what blocks your own server", end to end: the
//! find-blocking example (an axum app with one blocking handler and one blocking
//! background task, instrumented with pollwatch) under `loadgen bench --scrape`
//! of its Prometheus `/metrics`; the report names both planted culprits, longest
//! first, with nearly every poll of theirs long, and at most a tenth of the
//! others'. Ratios of the planted work and of poll counts only.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use find_blocking::{PROFILE_WORK, REPORT_WORK};
use serde_json::Value;

/// Serves the example's app on a loopback port from a runtime of its own (two
/// workers, as on this machine) until the returned sender is dropped.
fn serve_example() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let app = find_blocking::app(pollwatch::PollWatch::new());
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    (addr_rx.recv().unwrap(), stop_tx)
}

#[test]
fn bench_scrape_names_the_planted_blocking_handler_and_task() {
    let (addr, _stop) = serve_example();
    let dir = support::processes::temp_dir("find-blocking");
    let json = dir.join("bench.json");
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/find-blocking/scenario.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["bench", "--scenario"])
        .arg(&scenario)
        .args(["--url", &format!("http://{addr}")])
        .args(["--scrape", &format!("http://{addr}/metrics")])
        .args(["--duration", "3s", "--warmup", "1s", "--interval", "500ms"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let sources = report["server_telemetry"]["polls"]["sources"]
        .as_array()
        .unwrap_or_else(|| panic!("no poll figures: {report}"))
        .clone();
    let source = |kind: &str, name: &str| -> (f64, u64, u64) {
        let s = sources
            .iter()
            .find(|s| s["kind"] == kind && s["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {sources:?}"));
        let n = |k: &str| s[k].as_u64().unwrap();
        (
            s["longest_us"].as_f64().unwrap(),
            n("polls"),
            n("long_polls"),
        )
    };
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    // The planted ones: each at least its work, nearly every poll long, the
    // background task first.
    for (kind, name, work) in [
        ("task", "rebuild-profile", PROFILE_WORK),
        ("route", "/report", REPORT_WORK),
    ] {
        let (longest, polls, long) = source(kind, name);
        assert!(longest >= us(work) * 0.9, "{name}: {sources:?}");
        assert!(long * 10 >= polls * 9, "{name}: {sources:?}");
    }
    let top: Vec<&str> = sources
        .iter()
        .take(2)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(top, ["rebuild-profile", "/report"], "{sources:?}");
    // The route that spawned the task, the one that awaits, and the probe's:
    // at most a few polls long (the kernel may preempt one on a busy machine),
    // never most of them. What blocked is named, not what was merely nearby.
    for route in ["/profile", "/search", "/health"] {
        let (_, polls, long) = source("route", route);
        assert!(polls > 0 && long * 10 <= polls, "{route}: {sources:?}");
    }
    // And the text says so.
    let line = text
        .lines()
        .find(|l| l.starts_with("longest polls"))
        .unwrap_or_else(|| panic!("no longest-polls line in:\n{text}"));
    assert!(
        line.contains("task rebuild-profile") && line.contains("/report"),
        "{line}"
    );
}
