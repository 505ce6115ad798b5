//! The Prometheus text exposition format (version 0.0.4) of a set of process
//! snapshots: one `# HELP`/`# TYPE` header per metric family, then its samples,
//! labelled by variant (and by process for the multi-worker variants, by worker
//! thread for per-worker figures). The lag distribution is a Prometheus histogram,
//! so the processes of a group aggregate with `sum by (le)`. The poll timings
//! (which route or task blocked) follow in [`pollwatch`]'s families, with the same
//! variant and process labels.

use pollwatch::prometheus::{family, write_families};

use super::histogram::decode;
use super::ProcessSnapshot;

/// The `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the lag histogram's buckets, in seconds (`+Inf` is added).
const LAG_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// The exposition of `processes` of a server of `variant`.
pub fn render(variant: &str, processes: &[ProcessSnapshot]) -> String {
    let mut out = String::new();
    let base = |p: &ProcessSnapshot| {
        let mut labels = vec![("variant", variant.to_owned())];
        if let Some(index) = p.process {
            labels.push(("process", index.to_string()));
        }
        labels
    };

    let mut f = family(
        &mut out,
        "server_event_loop_lag_seconds",
        "histogram",
        "How late the lag probe woke after asking to sleep 5 ms: time ready work waited for the event loop.",
    );
    for p in processes {
        let Ok(h) = decode(&p.lag.histogram) else {
            continue;
        };
        for le in LAG_BUCKETS_S {
            let mut labels = base(p);
            labels.push(("le", le.to_string()));
            let count = h.count_between(0, (le * 1e9) as u64);
            f.sample("_bucket", &labels, count as f64);
        }
        let mut labels = base(p);
        labels.push(("le", "+Inf".into()));
        f.sample("_bucket", &labels, h.len() as f64);
        f.sample("_sum", &base(p), p.lag.sum_s);
        f.sample("_count", &base(p), h.len() as f64);
    }

    type Pick = fn(&ProcessSnapshot) -> f64;
    // (name, type, help, value): one sample per process.
    let simple: [(&'static str, &str, &str, Pick); 19] = [
        (
            "server_event_loop_lag_max_seconds",
            "gauge",
            "Largest event-loop lag seen since the process started.",
            |p| p.lag.max_s,
        ),
        (
            "server_event_loop_stall_seconds",
            "gauge",
            "How overdue the lag probe's pending wake-up is now: a stall in progress.",
            |p| p.lag.stall_s,
        ),
        (
            "tokio_runtime_workers",
            "gauge",
            "Worker threads of the tokio runtime.",
            |p| p.runtime.workers as f64,
        ),
        (
            "tokio_runtime_alive_tasks",
            "gauge",
            "Tasks alive on the tokio runtime.",
            |p| p.runtime.alive_tasks as f64,
        ),
        (
            "tokio_runtime_global_queue_depth",
            "gauge",
            "Tasks waiting in the runtime's shared queue.",
            |p| p.runtime.global_queue_depth as f64,
        ),
        (
            "server_jobs_in_flight",
            "gauge",
            "Heavy jobs accepted and not finished.",
            |p| p.jobs.in_flight as f64,
        ),
        (
            "server_jobs_running",
            "gauge",
            "Heavy jobs doing work on some thread now.",
            |p| p.jobs.running as f64,
        ),
        (
            "server_jobs_queued",
            "gauge",
            "Heavy jobs accepted and waiting for a thread.",
            |p| p.jobs.queued as f64,
        ),
        (
            "server_telemetry_snapshot_age_seconds",
            "gauge",
            "Age of the figures reported for the process (0 for the process answering).",
            |p| p.age_s,
        ),
        (
            "server_uptime_seconds",
            "gauge",
            "Seconds since the process started its telemetry.",
            |p| p.uptime_s,
        ),
        (
            "server_jobs_completed_total",
            "counter",
            "Heavy jobs finished.",
            |p| p.jobs.completed as f64,
        ),
        (
            "server_jobs_rejected_total",
            "counter",
            "Heavy jobs refused because the queue was full.",
            |p| p.jobs.rejected as f64,
        ),
        (
            "server_connections_accepted_total",
            "counter",
            "Connections the process accepted.",
            |p| p.connections_accepted as f64,
        ),
        (
            "server_requests_total",
            "counter",
            "HTTP requests the process received.",
            |p| p.requests as f64,
        ),
        (
            "server_connections_open",
            "gauge",
            "Connections the process serves now.",
            |p| p.connections_open as f64,
        ),
        (
            "server_connections_max",
            "gauge",
            "Most connections the process serves at once; more wait in the accept queue.",
            |p| p.connection_limit as f64,
        ),
        (
            "server_connection_limit_waits_total",
            "counter",
            "Times the accept loop found every connection slot taken.",
            |p| p.connection_limit_waits as f64,
        ),
        (
            "server_header_timeouts_total",
            "counter",
            "Connections closed because no complete request head arrived in time.",
            |p| p.header_timeouts as f64,
        ),
        (
            "server_jobs_skipped_abandoned_total",
            "counter",
            "Queued heavy jobs not run because their client had gone (--skip-abandoned).",
            |p| p.jobs.skipped_abandoned as f64,
        ),
    ];
    for (name, kind, help, pick) in simple {
        let mut f = family(&mut out, name, kind, help);
        for p in processes {
            f.sample("", &base(p), pick(p));
        }
    }

    type PerWorker = fn(&ProcessSnapshot, usize) -> f64;
    let per_worker: [(&'static str, &str, PerWorker); 2] = [
        (
            "tokio_worker_busy_seconds_total",
            "Time the runtime worker spent busy (credited when it parks).",
            |p, w| p.runtime.busy_s[w],
        ),
        (
            "tokio_worker_parks_total",
            "Times the runtime worker parked (went idle).",
            |p, w| p.runtime.parks[w] as f64,
        ),
    ];
    for (name, help, pick) in per_worker {
        let mut f = family(&mut out, name, "counter", help);
        for p in processes {
            let workers = p.runtime.busy_s.len().min(p.runtime.parks.len());
            for w in 0..workers {
                let mut labels = base(p);
                labels.push(("worker", w.to_string()));
                f.sample("", &labels, pick(p, w));
            }
        }
    }
    let polls: Vec<_> = processes
        .iter()
        .filter_map(|p| Some((base(p), p.polls.as_ref()?.to_snapshot())))
        .collect();
    if !polls.is_empty() {
        let watches: Vec<_> = polls.iter().map(|(l, s)| (l.clone(), s)).collect();
        write_families(&mut out, &watches);
    }
    out
}
