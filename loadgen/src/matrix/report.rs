//! The report of a `loadgen run`: every variant through every phase of the
//! responsiveness scenario, the figures derived from them, and the comparison
//! table (`summary.md`, also printed at the end).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::responsiveness::{JobPlan, Settings};
use crate::environment::Environment;
use crate::jobs::JobsFigures;
use crate::report::text::format_us;
use crate::report::StreamReport;
use crate::stats::Percentiles;
use crate::telemetry::ServerTelemetry;

/// Bumped whenever a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// Columns of the comparison table.
pub const TABLE_HEADER: [&str; 15] = [
    "variant",
    "probe p50",
    "probe p99",
    "probe p99.9",
    "probe max",
    "server lag max",
    "idle p99",
    "inflation",
    "heavy done/s",
    "efficiency",
    "heavy p50",
    "heavy p99",
    "503",
    "failed",
    "recovery p99",
];

/// Columns of the jobs scenario's table.
pub const JOBS_TABLE_HEADER: [&str; 14] = [
    "variant",
    "probe p50",
    "probe p99",
    "probe max",
    "server lag max",
    "submit p99",
    "queue wait p50",
    "run p50",
    "end-to-end p50",
    "end-to-end p99",
    "done",
    "rejected",
    "failed",
    "lost",
];

/// Client CPU use (share of its cores) above which the client's numbers are suspect.
const CLIENT_SATURATED: f64 = 0.9;

/// Everything a `loadgen run` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixReport {
    pub schema_version: u32,
    /// The scenario: `responsiveness`.
    pub scenario: String,
    pub tool_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub interrupted: bool,
    pub environment: Environment,
    pub placement: Placement,
    pub settings: Settings,
    /// How fine the tool's own resolution was in this run.
    #[serde(default)]
    pub resolution: Option<Resolution>,
    pub variants: Vec<VariantReport>,
}

/// The tool's resolution in a run, so a reader can tell whether a figure is near
/// it: the idle probe round trip (the floor) and how late probes were sent while
/// nothing else ran.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Resolution {
    /// Lowest idle probe p50 over the variants.
    pub floor_p50_us: f64,
    /// Highest idle probe send-lateness p99 over the variants.
    pub idle_lateness_p99_us: f64,
    /// Highest idle probe send-lateness max over the variants.
    pub idle_lateness_max_us: f64,
}

impl Resolution {
    /// From the idle phases of `variants`; `None` if none ran.
    pub fn of(variants: &[VariantReport]) -> Option<Resolution> {
        let idle: Vec<&StreamReport> = variants
            .iter()
            .filter_map(|v| v.phase("idle"))
            .filter_map(|p| p.stream("probe"))
            .collect();
        let lateness = |pick: fn(&Percentiles) -> f64| {
            idle.iter()
                .filter_map(|s| s.lateness.as_ref())
                .map(pick)
                .fold(0.0, f64::max)
        };
        (!idle.is_empty()).then(|| Resolution {
            floor_p50_us: idle
                .iter()
                .map(|s| s.latency.corrected.p50_us)
                .fold(f64::INFINITY, f64::min),
            idle_lateness_p99_us: lateness(|p| p.p99_us),
            idle_lateness_max_us: lateness(|p| p.max_us),
        })
    }
}

/// Which CPUs the servers and the client were pinned to (none: shared).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Placement {
    pub server_cpus: Option<Vec<usize>>,
    pub client_cpus: Option<Vec<usize>>,
}

/// One variant's runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantReport {
    pub name: String,
    pub summary: String,
    /// `ok`, `failed` or `interrupted`.
    pub status: String,
    pub error: Option<String>,
    /// The server's `/info`.
    pub server: Option<serde_json::Value>,
    pub job: Option<JobPlan>,
    pub phases: Vec<PhaseReport>,
    pub figures: Option<Figures>,
}

/// One phase of one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    pub name: String,
    pub measured_s: f64,
    /// Wall-clock time of the phase, warm-up and drain included.
    pub wall_s: f64,
    pub client_cpu_s: f64,
    /// Client CPU time over the wall time of the phase and the client's cores.
    pub client_cpu_share: f64,
    pub server_cpu_s: f64,
    pub streams: Vec<StreamReport>,
    /// The server's own figures and both sides' CPU, per interval; `None` in
    /// reports written before telemetry existed.
    #[serde(default)]
    pub server_telemetry: Option<ServerTelemetry>,
    /// The jobs scenario's loaded phase: job counts and server-side times.
    #[serde(default)]
    pub jobs: Option<JobsFigures>,
}

impl VariantReport {
    /// The phase named `name`, if it ran.
    pub fn phase(&self, name: &str) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.name == name)
    }
}

impl PhaseReport {
    pub fn stream(&self, name: &str) -> Option<&StreamReport> {
        self.streams.iter().find(|s| s.name == name)
    }
}

/// The comparison figures of one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub probe_idle: Percentiles,
    pub probe_loaded: Percentiles,
    pub probe_recovery: Percentiles,
    /// Loaded p99 over idle p99.
    pub probe_inflation: f64,
    /// Probe requests that failed in any phase (no response, or 4xx/5xx).
    pub probe_errors: u64,
    /// Heavy requests completed with 2xx per second of the loaded phase.
    pub heavy_completions_per_s: f64,
    /// Completions per second over the ideal `cores / job cost`.
    pub heavy_efficiency: f64,
    pub heavy_latency: Percentiles,
    /// Heavy requests refused with 503.
    pub heavy_rejected: u64,
    /// Heavy requests that failed otherwise (timeouts, errors, other statuses).
    pub heavy_failed: u64,
    /// The server's largest event-loop lag in the loaded phase, in µs (`None`
    /// without telemetry).
    #[serde(default)]
    pub server_lag_max_us: Option<f64>,
    /// Share of the runtime workers' time spent busy in the loaded phase.
    #[serde(default)]
    pub server_busy_ratio: Option<f64>,
}

impl Figures {
    /// Derives the figures from a variant's three phases; `None` if one is missing.
    pub fn derive(phases: &[PhaseReport], job: &JobPlan) -> Option<Figures> {
        let phase = |name: &str| phases.iter().find(|p| p.name == name);
        let probe = |name: &str| phase(name).and_then(|p| p.stream("probe"));
        let (idle, loaded, recovery) = (probe("idle")?, probe("loaded")?, probe("recovery")?);
        let loaded_phase = phase("loaded")?;
        let heavy = loaded_phase.stream("heavy")?;
        let completions = heavy.ok_throughput;
        let idle_p99 = idle.latency.corrected.p99_us;
        Some(Figures {
            probe_idle: idle.latency.corrected,
            probe_loaded: loaded.latency.corrected,
            probe_recovery: recovery.latency.corrected,
            probe_inflation: if idle_p99 > 0.0 {
                loaded.latency.corrected.p99_us / idle_p99
            } else {
                f64::NAN
            },
            probe_errors: [idle, loaded, recovery]
                .iter()
                .map(|s| s.counts.errors())
                .sum(),
            heavy_completions_per_s: completions,
            heavy_efficiency: completions / job.ideal_per_s,
            heavy_latency: heavy.latency.corrected,
            heavy_rejected: heavy.counts.status_503,
            heavy_failed: heavy.counts.errors() - heavy.counts.status_503 + heavy.unsent,
            server_lag_max_us: loaded_phase
                .server_telemetry
                .as_ref()
                .and_then(|t| t.lag_max_us),
            server_busy_ratio: loaded_phase
                .server_telemetry
                .as_ref()
                .and_then(|t| t.busy_ratio),
        })
    }
}

impl MatrixReport {
    /// Variants with figures, by probe inflation (best first), then the others.
    pub fn ranked(&self) -> Vec<&VariantReport> {
        let mut ranked: Vec<&VariantReport> = self.variants.iter().collect();
        ranked.sort_by(|a, b| {
            let key = |v: &VariantReport| {
                v.figures
                    .as_ref()
                    .map_or(f64::INFINITY, |f| f.probe_inflation)
            };
            key(a).total_cmp(&key(b))
        });
        ranked
    }

    /// The comparison table as rows of cells, best variant first: each row starts
    /// with the variant's name; a variant without figures has its error instead.
    pub fn table_rows(&self) -> Vec<Vec<String>> {
        self.ranked()
            .into_iter()
            .map(|v| {
                let mut row = vec![v.name.clone()];
                match &v.figures {
                    Some(f) => row.extend([
                        format_us(f.probe_loaded.p50_us),
                        format_us(f.probe_loaded.p99_us),
                        format_us(f.probe_loaded.p99_9_us),
                        format_us(f.probe_loaded.max_us),
                        f.server_lag_max_us.map_or_else(|| "–".into(), format_us),
                        format_us(f.probe_idle.p99_us),
                        format!("{:.1}×", f.probe_inflation),
                        format!("{:.1}", f.heavy_completions_per_s),
                        format!("{:.0}%", f.heavy_efficiency * 100.0),
                        format_us(f.heavy_latency.p50_us),
                        format_us(f.heavy_latency.p99_us),
                        f.heavy_rejected.to_string(),
                        f.heavy_failed.to_string(),
                        format_us(f.probe_recovery.p99_us),
                    ]),
                    None => row.push(v.error.clone().unwrap_or_else(|| v.status.clone())),
                }
                row
            })
            .collect()
    }

    /// Whether this is a run of the jobs scenario.
    pub fn is_jobs(&self) -> bool {
        self.settings.scenario == "jobs"
    }

    /// The columns of [`MatrixReport::rows`].
    pub fn header(&self) -> &'static [&'static str] {
        if self.is_jobs() {
            &JOBS_TABLE_HEADER
        } else {
            &TABLE_HEADER
        }
    }

    /// The table of this run's scenario, as rows of cells.
    pub fn rows(&self) -> Vec<Vec<String>> {
        if self.is_jobs() {
            self.jobs_table_rows()
        } else {
            self.table_rows()
        }
    }

    /// The jobs scenario's table, by loaded probe p99 (best first): probe latency
    /// while background jobs run, the jobs' own times and counts.
    pub fn jobs_table_rows(&self) -> Vec<Vec<String>> {
        let probe_p99 = |v: &VariantReport| {
            v.phase("loaded")
                .and_then(|p| p.stream("probe").map(|s| s.latency.corrected.p99_us))
                .unwrap_or(f64::INFINITY)
        };
        let mut ranked: Vec<&VariantReport> = self.variants.iter().collect();
        ranked.sort_by(|a, b| probe_p99(a).total_cmp(&probe_p99(b)));
        ranked
            .into_iter()
            .map(|v| {
                let mut row = vec![v.name.clone()];
                let found = v.phase("loaded").and_then(|p| {
                    Some((
                        p.stream("probe")?,
                        p.stream("submit")?,
                        p.stream("jobs")?,
                        p.jobs.as_ref()?,
                        p,
                    ))
                });
                match found {
                    Some((probe, submit, jobs, figures, p)) => row.extend([
                        format_us(probe.latency.corrected.p50_us),
                        format_us(probe.latency.corrected.p99_us),
                        format_us(probe.latency.corrected.max_us),
                        p.server_telemetry
                            .as_ref()
                            .and_then(|t| t.lag_max_us)
                            .map_or_else(|| "–".into(), format_us),
                        format_us(submit.latency.corrected.p99_us),
                        format_us(figures.queue_wait.p50_us),
                        format_us(figures.run.p50_us),
                        format_us(jobs.latency.corrected.p50_us),
                        format_us(jobs.latency.corrected.p99_us),
                        figures.done.to_string(),
                        figures.rejected.to_string(),
                        (figures.failed + figures.submit_errors).to_string(),
                        figures.lost.to_string(),
                    ]),
                    None => row.push(v.error.clone().unwrap_or_else(|| v.status.clone())),
                }
                row
            })
            .collect()
    }

    /// The comparison table in Markdown.
    pub fn table(&self) -> String {
        let header = self.header();
        let mut out = format!("| {} |\n", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in self.rows() {
            let mut cells = row;
            cells.resize(header.len(), String::new());
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }

    /// Warnings a reader must see before trusting the table.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.interrupted {
            warnings.push("the run was interrupted; variants not run are missing".into());
        }
        for v in &self.variants {
            if let Some(error) = &v.error {
                warnings.push(format!("{}: {error}", v.name));
            }
            for p in &v.phases {
                let telemetry = p.server_telemetry.as_ref();
                let busiest = telemetry.map_or(0.0, |t| t.client_cpu_max);
                let cores = self.environment.cores.max(1) as f64;
                if busiest / cores > CLIENT_SATURATED && p.client_cpu_share <= CLIENT_SATURATED {
                    warnings.push(format!(
                        "{} {}: in its busiest interval the client used {:.0}% of its CPUs; figures from that time measure the client too",
                        v.name,
                        p.name,
                        busiest / cores * 100.0
                    ));
                }
                if let Some(t) = telemetry.filter(|t| {
                    t.scrapes > 0 && t.scrapes == t.scrape_failures.values().sum::<u64>()
                }) {
                    warnings.push(format!(
                        "{} {}: no scrape of the server's /metrics.json succeeded ({:?}); no server figures",
                        v.name, p.name, t.scrape_failures
                    ));
                }
                if p.client_cpu_share > CLIENT_SATURATED {
                    warnings.push(format!(
                        "{} {}: the client used {:.0}% of its CPUs; its numbers measure the client too",
                        v.name,
                        p.name,
                        p.client_cpu_share * 100.0
                    ));
                }
                if let Some(jobs) = p.jobs.as_ref().filter(|j| j.lost > 0) {
                    warnings.push(format!(
                        "{} {}: {} accepted jobs were never seen finished; {} of them were unknown (404) to the process that answered their status (job state kept per process)",
                        v.name, p.name, jobs.lost, jobs.not_found
                    ));
                }
                if let Some(probe) = p.stream("probe") {
                    let late = probe.counts.late as f64 / probe.counts.sent.max(1) as f64;
                    if late > 0.01 || probe.unsent > 0 {
                        warnings.push(format!(
                            "{} {}: {:.1}% of probes were sent over 1 ms late and {} never sent (all probe connections were waiting); corrected latency includes the wait",
                            v.name, p.name, late * 100.0, probe.unsent
                        ));
                    }
                }
            }
        }
        warnings
    }

    /// `summary.md`: what was run, where, the table and the warnings.
    pub fn summary_markdown(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "# {} under blocking load: {}\n",
            if self.is_jobs() {
                "Background jobs"
            } else {
                "Responsiveness"
            },
            self.started_at
        );
        let _ = writeln!(out, "Environment: {}.", self.environment.one_line());
        let placement = match (&self.placement.server_cpus, &self.placement.client_cpus) {
            (None, None) => "servers and client share all CPUs".to_owned(),
            (sc, cc) => format!("servers on CPUs {sc:?}, client on CPUs {cc:?}"),
        };
        let _ = writeln!(out, "Placement: {placement}.");
        let phases: Vec<String> = s
            .phases
            .iter()
            .map(|p| format!("{} {}s (+{}s warm-up)", p.name, p.duration_s, p.warmup_s))
            .collect();
        let load = if self.is_jobs() {
            format!(
                "background `POST /jobs` of ~{} ms CPU offered open loop at {}× what the cores can finish, each polled until done",
                s.job_ms, s.job_load
            )
        } else {
            format!(
                "heavy `GET /work/cpu` jobs of ~{} ms CPU offered open loop at {}× what the cores can finish, on {} connections",
                s.job_ms, s.overload, s.heavy_connections
            )
        };
        let _ = writeln!(
            out,
            "Scenario: {}; probe `GET /health` open loop at {}/s on {} connections; {load}; timeout {}s.\n",
            phases.join(", "),
            s.probe_rate,
            s.probe_connections,
            s.timeout_s
        );
        if let Some(r) = &self.resolution {
            let _ = writeln!(
                out,
                "Tool resolution in this run: idle probe round trip (the floor) p50 {}; idle probe send lateness p99 {}, max {}. Figures near these measure the tool, not the server.\n",
                format_us(r.floor_p50_us),
                format_us(r.idle_lateness_p99_us),
                format_us(r.idle_lateness_max_us)
            );
        }
        out.push_str(if self.is_jobs() {
            "Probe latency (corrected) while background jobs run, sorted by probe p99. Submit: due time to the 202. Queue wait and run: the server's own `queued_at`→`started_at`→`finished_at`. End-to-end: due time to `finished_at`. Failed: jobs failed and submissions that got neither 202 nor 503. Lost: accepted but never finished (must be 0).\n\n"
        } else {
            "Probe latency under load (corrected for coordinated omission), sorted by inflation (loaded p99 ÷ idle p99). Server lag max: the longest the server's own event-loop lag probe (a 5 ms timer) waited past its due time in the loaded phase; about 1–2 ms is tokio's timer granularity. Heavy done/s: 2xx completions inside the loaded window; efficiency: that ÷ (cores ÷ job cost). Heavy latency includes 503 refusals, which are answered at once. Failed: heavy requests that timed out, errored, or were never sent or answered.\n\n"
        });
        out.push_str(&self.table());
        let warnings = self.warnings();
        if !warnings.is_empty() {
            out.push_str("\nWarnings:\n\n");
            for w in warnings {
                let _ = writeln!(out, "- {w}");
            }
        }
        out
    }
}
