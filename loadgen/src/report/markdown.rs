//! `summary.md` of a run: what was run and where, the comparison table and the
//! warnings; printed at the end of `loadgen run` too. Its sentences that describe the
//! run are Markdown (code in backticks) and `report.html` shows the same ones.

use std::fmt::Write;

use super::format::format_us;
use super::run::RunReport;
use super::settings::Scenario;
use super::warnings::run_warnings;

/// What loaded the server in the loaded phase.
pub fn describe_load(report: &RunReport) -> String {
    let s = &report.settings;
    match report.scenario {
        Scenario::Jobs => {
            let loads: Vec<String> = s.loads.iter().map(|l| format!("{l}×")).collect();
            format!(
                "background `POST /jobs` of ~{} ms CPU offered open loop at {} what the cores can finish, each polled until done",
                s.heavy_ms,
                loads.join(", ")
            )
        }
        Scenario::Upstream => {
            let loads: Vec<String> = s.loads.iter().map(|l| format!("{l}×")).collect();
            format!(
                "`GET /work/upstream` calls, each waiting {} ms at a slow upstream HTTP service, offered open loop at {} what a pool of one blocking thread per core finishes, one step each, on {} connections",
                s.heavy_ms,
                loads.join(", "),
                s.heavy_connections
            )
        }
        Scenario::Responsiveness => {
            let loads: Vec<String> = s.loads.iter().map(|l| format!("{l}×")).collect();
            format!(
                "heavy `GET /work/cpu` jobs of ~{} ms CPU offered open loop at {} what the cores can finish, one step each, on {} connections",
                s.heavy_ms,
                loads.join(", "),
                s.heavy_connections
            )
        }
    }
}

/// The phases, the probe, the load and the timeout, in one sentence.
pub fn describe_scenario(report: &RunReport) -> String {
    let s = &report.settings;
    let phases: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("{} {}s (+{}s warm-up)", p.name, p.duration_s, p.warmup_s))
        .collect();
    format!(
        "Scenario: {}; probe `GET /health` open loop at {}/s on {} connections; {}; timeout {}s.",
        phases.join(", "),
        s.probe_rate,
        s.probe_connections,
        describe_load(report),
        s.timeout_s
    )
}

/// What the comparison table's columns mean and how it is sorted.
pub fn describe_table(report: &RunReport) -> String {
    let verdict = format!(
        "Responsive: the 95 % interval of the probe p99 under load (distribution-free, from the order statistics of its n samples) lies within the objective of {} ms (no: it lies beyond; undecided: it straddles the objective or the samples are too few).",
        report.settings.objective_ms
    );
    let columns = match report.scenario {
        Scenario::Jobs => "Probe latency (corrected) while background jobs run, sorted by probe p99. Submit: due time to the 202. Queue wait and run: the server's own `queued_at`→`started_at`→`finished_at`. End-to-end: due time to `finished_at`. Failed: jobs failed and submissions that got neither 202 nor 503. Lost: accepted but never finished (must be 0).",
        Scenario::Upstream => "Sorted by responsive capacity: the highest offered load up to which every step of the sweep kept the probe responsive and answered (done, or refused with 503) at least 90 % of the upstream calls offered in it, inside the step. The other columns are at the sweep's highest step that ran (its load is shown): probe latency corrected for coordinated omission. Server lag max: the longest the server's own event-loop lag probe (a 5 ms timer) waited past its due time. Heavy done/s: upstream calls completed with 2xx inside the loaded window, per second of the part of it whose calls could finish in it (the window less one call's wait); efficiency: that ÷ (cores ÷ upstream wait), what a pool of one blocking thread per core could finish, so an answer that holds no thread while it waits goes far past 100 %. Heavy latency includes 503 refusals. Failed: calls that timed out, errored, or were never sent or answered.",
        Scenario::Responsiveness => "Sorted by responsive capacity: the highest offered load up to which every step of the sweep kept the probe responsive and answered (done, or refused with 503) at least 90 % of the heavy work offered in it, inside the step (a bounded queue longer than a step counts as falling behind). The other columns are at the overload point, the sweep's highest step that ran (its load is shown): probe latency corrected for coordinated omission. Server lag max: the longest the server's own event-loop lag probe (a 5 ms timer) waited past its due time in the loaded phase; about 1–2 ms is tokio's timer granularity. Heavy done/s: 2xx completions inside the loaded window, per second of the part of it whose jobs could finish in it (the window less one job); efficiency: that ÷ (cores ÷ job cost). Heavy latency includes 503 refusals, which are answered at once. Failed: heavy requests that timed out, errored, or were never sent or answered.",
    };
    format!("{columns} {verdict}")
}

/// How fine the tool's own measurements were in this run, if known.
pub fn describe_resolution(report: &RunReport) -> Option<String> {
    report.resolution.map(|r| {
        let jitter = r.timer_jitter.map_or_else(String::new, |j| {
            format!(
                "; this machine wakes a 1 ms sleep late by p50 {}, p99 {}, max {}",
                format_us(j.p50_us),
                format_us(j.p99_us),
                format_us(j.max_us)
            )
        });
        format!(
            "Tool resolution in this run: idle probe round trip (the floor) p50 {}; idle probe send lateness p99 {}, max {}{jitter}. Figures near these measure the tool and the machine, not the server.",
            format_us(r.floor_p50_us),
            format_us(r.idle_lateness_p99_us),
            format_us(r.idle_lateness_max_us)
        )
    })
}

/// `summary.md`: what was run, where, the table and the warnings.
pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {}: {}\n",
        report.scenario.title(),
        report.started_at
    );
    let _ = writeln!(out, "Environment: {}.", report.environment.one_line());
    let _ = writeln!(out, "Placement: {}.", report.placement.describe());
    let _ = writeln!(out, "{}\n", describe_scenario(report));
    if let Some(resolution) = describe_resolution(report) {
        let _ = writeln!(out, "{resolution}\n");
    }
    let _ = writeln!(out, "{}\n", describe_table(report));
    out.push_str(&report.table());
    if let Some(sweep) = report.sweep_markdown() {
        let _ = writeln!(out, "\nThe load sweep. {}\n", RunReport::SWEEP_CAPTION);
        out.push_str(&sweep);
    }
    if let Some(fresh) = report.fresh_markdown() {
        let _ = writeln!(out, "\nNew connections. {}\n", report.fresh_caption());
        out.push_str(&fresh);
    }
    if let Some(polls) = report.polls_markdown() {
        let _ = writeln!(out, "\nWhich code blocked. {}\n", RunReport::POLLS_CAPTION);
        out.push_str(&polls);
    }
    if let Some(recommendation) = &report.recommendation {
        let _ = write!(out, "\n{}", recommendation.markdown());
    }
    let shares = connection_shares(report);
    if !shares.is_empty() {
        let _ = writeln!(
            out,
            "\nHow the processes of the multi-process variants shared the clients in the overload step, between its first and last successful telemetry scrape (connections accepted / requests served, new-connection probes and loadgen's own scrapes among them; a frozen server answers few scrapes, so its window is short):\n"
        );
        for line in shares {
            let _ = writeln!(out, "- {line}");
        }
    }
    let warnings = run_warnings(report);
    if !warnings.is_empty() {
        out.push_str("\nWarnings:\n\n");
        for w in warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    out
}

/// Per variant with several server processes: how they shared the connections and
/// requests over the overload step's phase, from its first good telemetry scrape to
/// its last (`multi-worker: process 0 97 / 4,211, …`).
pub fn connection_shares(report: &RunReport) -> Vec<String> {
    report
        .variants
        .iter()
        .filter_map(|v| {
            let phase = v.phase("loaded")?;
            let traffic = &phase.server_telemetry.as_ref()?.traffic;
            if traffic.len() < 2 {
                return None;
            }
            let parts: Vec<String> = traffic
                .iter()
                .map(|t| {
                    format!(
                        "process {} {} / {}",
                        t.process.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                        t.connections_accepted,
                        t.requests
                    )
                })
                .collect();
            Some(format!("{} ({}): {}", v.name, phase.name, parts.join(", ")))
        })
        .collect()
}
