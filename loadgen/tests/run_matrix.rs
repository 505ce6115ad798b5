//! `loadgen run` end to end: it starts the servers itself, measures them, writes the
//! run folder, reports a crashed variant by name while the others still run, and
//! never leaves a server process behind (SIGINT, SIGKILL).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use loadgen::report::{RunReport, Scenario, VariantStatus};
use support::processes::{
    descendants, finish, report, signal, spawn, temp_dir, wait_for_server, wait_gone,
};

/// Short phases so each test takes seconds.
const SHORT: &[&str] = &[
    "--idle",
    "500ms",
    "--loaded",
    "1500ms",
    "--recovery",
    "500ms",
];

#[test]
fn a_run_measures_each_variant_and_sees_blocking() {
    let out = temp_dir("ok");
    // Phases of 1.5–2 s: a step on a machine busy with the other tests still sees
    // work done, and every phase spans at least two telemetry scrapes.
    let output = finish(
        spawn(
            &[
                "--variant",
                "current-thread,sequential-queue",
                "--idle",
                "1500ms",
                "--loaded",
                "2s",
                "--recovery",
                "1500ms",
            ],
            &out,
        ),
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("| variant |"),
        "the table is printed: {stdout}"
    );

    let report = report(&out);
    assert_eq!(report.schema_version, 1);
    assert!(!report.interrupted);
    assert!(!report.environment.build.profile.is_empty());
    let names: Vec<&str> = report.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["current-thread", "sequential-queue"]);
    for v in &report.variants {
        assert_eq!(v.status, VariantStatus::Ok, "{}: {:?}", v.name, v.error);
        // Idle, the sweep's steps in increasing order (a frozen variant's heavier
        // ones skipped), recovery.
        let phases: Vec<&str> = v.phases.iter().map(|p| p.name.as_str()).collect();
        let steps = ["load-50", "load-100", "load-150"];
        let ran = phases.len() - 2;
        assert!(ran >= 1, "{phases:?}");
        assert_eq!(phases[0], "idle");
        assert_eq!(phases[1..=ran], steps[..ran]);
        assert_eq!(phases[ran + 1], "recovery");
        assert_eq!(v.skipped_steps, steps[ran..], "{}", v.name);
        if v.name == "sequential-queue" {
            assert_eq!(ran, 3, "a free event loop answers the probe in every step");
        }
        let sweep = v.sweep.as_ref().expect("sweep");
        assert_eq!(sweep.steps.len(), 3);
        let f = v.figures.as_ref().expect("figures");
        // A variant that keeps its event loop free gets heavy work done; a frozen
        // one may finish none inside a short quick step.
        if v.name == "sequential-queue" {
            assert!(f.heavy_completions_per_s > 0.0 && f.heavy_efficiency > 0.0);
        }
        for file in [
            format!("{}.hlog", v.name),
            format!("{}.{}.probe.hgrm", v.name, steps[ran - 1]),
            format!("{}.{}.heavy.hgrm", v.name, steps[ran - 1]),
        ] {
            assert!(out.join("latest").join(&file).exists(), "{file} missing");
        }
    }
    let figures = |name: &str| {
        report
            .variants
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .figures
            .clone()
            .unwrap()
    };
    // The harness still sees blocking: one thread doing all the work makes the probe
    // wait behind heavy jobs; a dedicated queue thread does not.
    let (blocked, free) = (figures("current-thread"), figures("sequential-queue"));
    assert!(
        blocked.probe_loaded.p99_us > 10.0 * free.probe_loaded.p99_us,
        "current-thread p99 {} µs vs sequential-queue p99 {} µs",
        blocked.probe_loaded.p99_us,
        free.probe_loaded.p99_us
    );
    assert!(
        free.heavy_rejected > 0,
        "an overloaded bounded queue refuses some jobs"
    );

    // The server side agrees: the event loop that runs the jobs lags by whole
    // jobs, the one that hands them to a queue thread does not.
    let (blocked_lag, free_lag) = (
        blocked.server_lag_max_us.expect("server lag"),
        free.server_lag_max_us.expect("server lag"),
    );
    assert!(
        blocked_lag > 10.0 * free_lag,
        "current-thread lag max {blocked_lag} µs vs sequential-queue {free_lag} µs"
    );
    for v in &report.variants {
        for p in &v.phases {
            let t = p.server_telemetry.as_ref().expect("server telemetry");
            assert!(t.scrapes >= 2, "{} {}: {t:?}", v.name, p.name);
            assert!(t.intervals.len() >= 2, "{} {}: {t:?}", v.name, p.name);
            assert!(t.intervals.iter().all(|i| i.server_cpu.is_some()));
            assert!(t.intervals.iter().any(|i| i.server.is_some()));
        }
    }
    let queue_loaded = report.variants[1].phases[1]
        .server_telemetry
        .as_ref()
        .unwrap();
    assert!(
        queue_loaded
            .intervals
            .iter()
            .filter_map(|i| i.server.as_ref())
            .any(|s| s.jobs_queued > 0 && s.jobs_running == 1),
        "the sequential queue is seen holding jobs, one running: {queue_loaded:?}"
    );
    let timeline =
        std::fs::read_to_string(out.join("latest/charts/timeline-current-thread.svg")).unwrap();
    assert!(timeline.contains("server event-loop lag"));
    for chart in [
        "charts/spectrum-probe.svg",
        "charts/comparison.png",
        "charts/timeline-current-thread.svg",
        "report.html",
    ] {
        assert!(
            out.join("latest").join(chart).exists(),
            "{chart} missing: every run draws its charts"
        );
    }
    let summary = std::fs::read_to_string(out.join("latest/summary.md")).unwrap();
    assert!(summary.contains("current-thread") && summary.contains("Environment:"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_jobs_scenario_loses_nothing_and_sees_blocking() {
    let out = temp_dir("jobs");
    let output = finish(
        spawn(
            &["--scenario", "jobs", "--variant", "current-thread,rayon"],
            &out,
        ),
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("end-to-end p99"), "{stdout}");
    let report = report(&out);
    assert_eq!(report.scenario, Scenario::Jobs);
    let loaded = |name: &str| {
        report
            .variants
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .phase("loaded")
            .unwrap()
            .clone()
    };
    for name in ["current-thread", "rayon"] {
        let phase = loaded(name);
        assert!(
            phase.stream("heavy").is_none(),
            "jobs replace the heavy stream"
        );
        let jobs = phase.jobs.as_ref().expect("job figures");
        assert!(jobs.accepted > 0, "{name}: {jobs:?}");
        assert_eq!(jobs.lost, 0, "{name}: an accepted job was lost: {jobs:?}");
        assert_eq!(jobs.done + jobs.failed, jobs.accepted, "{name}: {jobs:?}");
        let end_to_end = phase.stream("jobs").expect("end-to-end stream");
        assert_eq!(end_to_end.latency.corrected.count, jobs.accepted);
        assert!(jobs.run.p50_us > 0.0 && phase.stream("submit").is_some());
    }
    // The original complaint: background jobs on the only thread hold up the probe;
    // on rayon they do not.
    let p99 = |name: &str| {
        loaded(name)
            .stream("probe")
            .unwrap()
            .latency
            .corrected
            .p99_us
    };
    assert!(
        p99("current-thread") > 10.0 * p99("rayon"),
        "current-thread {} µs vs rayon {} µs",
        p99("current-thread"),
        p99("rayon")
    );
    assert!(out.join("latest/charts/spectrum-jobs.svg").exists());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_crashed_variant_is_reported_and_the_others_still_run() {
    let out = temp_dir("crash");
    let mut args = vec!["--variant", "spawn-blocking,rayon"];
    args.extend_from_slice(SHORT);
    let child = spawn(&args, &out);
    let server = wait_for_server(child.id(), "--variant spawn-blocking");
    std::thread::sleep(Duration::from_millis(300));
    signal(server, libc::SIGKILL);
    let output = finish(child, Duration::from_secs(90));
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&out);
    let crashed = &report.variants[0];
    assert_eq!(
        (crashed.name.as_str(), crashed.status),
        ("spawn-blocking", VariantStatus::Failed)
    );
    assert!(
        crashed.error.as_deref().unwrap_or("").contains("exited"),
        "{:?}",
        crashed.error
    );
    assert_eq!(report.variants[1].status, VariantStatus::Ok);
    assert!(String::from_utf8_lossy(&output.stdout).contains("spawn-blocking"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn sigint_stops_the_run_and_every_server() {
    let out = temp_dir("sigint");
    let child = spawn(&["--variant", "multi-worker,rayon"], &out);
    let root = child.id();
    wait_for_server(root, "--variant multi-worker");
    // Wait for the multi-worker processes too, so there are grandchildren to check.
    let deadline = Instant::now() + Duration::from_secs(30);
    while descendants(root).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let servers = descendants(root);
    assert!(
        servers.len() >= 3,
        "expected a supervisor and its workers: {servers:?}"
    );
    signal(root, libc::SIGINT);
    let output = finish(child, Duration::from_secs(30));
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_gone(&servers);
    let report = report(&out);
    assert!(report.interrupted);
    assert_eq!(report.variants.len(), 1, "rayon never started");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn servers_die_with_a_killed_loadgen() {
    let out = temp_dir("sigkill");
    let mut child = spawn(&["--variant", "multi-worker"], &out);
    let root = child.id();
    wait_for_server(root, "--variant multi-worker");
    let deadline = Instant::now() + Duration::from_secs(30);
    while descendants(root).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let servers = descendants(root);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_gone(&servers);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn repeated_rounds_rotate_the_variants_and_summarise() {
    let out = temp_dir("repeat");
    let mut args = vec!["--variant", "rayon,sequential-queue", "--repeat", "2"];
    args.extend_from_slice(SHORT);
    let output = finish(spawn(&args, &out), Duration::from_secs(120));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let latest = out.join("latest");
    let order = |round: &str| -> Vec<String> {
        let text = std::fs::read_to_string(latest.join(round).join("report.json")).unwrap();
        let report: RunReport = serde_json::from_str(&text).unwrap();
        report.variants.into_iter().map(|v| v.name).collect()
    };
    assert_eq!(order("round-1"), ["rayon", "sequential-queue"]);
    assert_eq!(order("round-2"), ["sequential-queue", "rayon"]);
    let repeat: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latest.join("repeat.json")).unwrap()).unwrap();
    assert_eq!(repeat["rounds"], 2);
    for v in repeat["variants"].as_array().unwrap() {
        assert_eq!(v["verdicts"].as_array().unwrap().len(), 2, "{v}");
        assert_eq!(v["probe_p99_us"]["values"].as_array().unwrap().len(), 2);
    }
    let summary = std::fs::read_to_string(latest.join("summary.md")).unwrap();
    assert!(summary.contains("2 rounds") && summary.contains("sequential-queue"));
    // `plot` renders the rounds' summary again from their reports.
    std::fs::remove_file(latest.join("summary.md")).unwrap();
    let plotted = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["plot", latest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(plotted.status.success());
    assert_eq!(
        std::fs::read_to_string(latest.join("summary.md")).unwrap(),
        summary
    );
    // A repeated run is a set of runs `compare` reads as one side.
    let compared = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "compare",
            latest.to_str().unwrap(),
            latest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        compared.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&compared.stderr)
    );
    assert!(String::from_utf8_lossy(&compared.stdout).contains("base: 2 run(s)"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_frozen_variant_skips_the_heavier_steps() {
    // current-thread with jobs of 800 ms: the first heavy request (due as the step
    // starts) holds the only thread past the step's 0.3 s window, so no probe is
    // answered in it; the heavier steps are skipped, and reported as such.
    let out = temp_dir("frozen");
    let args = [
        "--variant",
        "current-thread",
        "--job",
        "800ms",
        "--loads",
        "0.5,1,2",
        "--idle",
        "300ms",
        "--loaded",
        "300ms",
        "--recovery",
        "300ms",
    ];
    let output = finish(spawn(&args, &out), Duration::from_secs(90));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&out);
    let v = &report.variants[0];
    let phases: Vec<&str> = v.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["idle", "load-50", "recovery"]);
    assert_eq!(v.skipped_steps, ["load-100", "load-200"]);
    let sweep = v.sweep.as_ref().expect("sweep");
    let skipped: Vec<bool> = sweep.steps.iter().map(|s| s.skipped).collect();
    assert_eq!(skipped, [false, true, true]);
    assert_eq!(sweep.capacity, 0.0);
    let summary = std::fs::read_to_string(out.join("latest/summary.md")).unwrap();
    assert!(summary.contains("skipped (frozen)"), "{summary}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_upstream_scenario_starts_its_upstream_and_async_io_keeps_up_where_rayon_cannot() {
    let out = temp_dir("upstream");
    // 100 ms calls at 20x what one blocking thread per core finishes (two cores:
    // 400 calls/s): rayon's threads make 20/s; async-io waits for all at once.
    let output = finish(
        spawn(
            &[
                "--scenario",
                "upstream",
                "--variant",
                "rayon,async-io",
                "--job",
                "100ms",
                "--loads",
                "20",
                "--idle",
                "500ms",
                "--loaded",
                "2s",
                "--recovery",
                "500ms",
            ],
            &out,
        ),
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&out);
    assert_eq!(report.scenario, Scenario::Upstream);
    let done = |name: &str| {
        let v = report.variants.iter().find(|v| v.name == name).unwrap();
        assert_eq!(v.status, VariantStatus::Ok, "{name}: {:?}", v.error);
        assert_eq!(v.heavy.unwrap().units, 100, "the call's wait in ms");
        v.figures.as_ref().unwrap().heavy_completions_per_s
    };
    let (rayon, async_io) = (done("rayon"), done("async-io"));
    assert!(
        async_io >= 5.0 * rayon.max(1.0),
        "async-io {async_io:.1} calls/s, rayon {rayon:.1}"
    );
    // The upstream ran beside each server, with its own log.
    assert!(out.join("latest/async-io.server.upstream.log").exists());
    // The recommendation is in the report and the summary, derived from these
    // figures: rayon, which could not keep up, is never recommended.
    // Written to report.json, and derived again from the figures when read.
    let json = std::fs::read_to_string(out.join("latest/report.json")).unwrap();
    assert!(json.contains("\"recommendation\""));
    let recommendation = &loadgen::report::Recommendation::derive(&report);
    assert!(recommendation
        .recommended
        .iter()
        .all(|a| a.variant != "rayon"));
    let rayon = recommendation
        .not_recommended
        .iter()
        .find(|a| a.variant == "rayon")
        .expect("rayon judged");
    assert!(
        rayon.missed.iter().any(|m| m.contains("did not keep up")),
        "{rayon:?}"
    );
    let summary = std::fs::read_to_string(out.join("latest/summary.md")).unwrap();
    assert!(summary.contains("## Which strategy to use"), "{summary}");
}
