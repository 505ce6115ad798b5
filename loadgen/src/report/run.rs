//! The report of a `loadgen run`: every variant through every phase of its
//! scenario, with the figures derived from them ([`super::figures`]). Its comparison
//! table is [`super::table`], its summary [`super::markdown`].

use serde::{Deserialize, Serialize};

use super::figures::Figures;
use super::jobs::JobsFigures;
use super::settings::{HeavySize, Scenario, Settings};
use super::stream::StreamReport;
use super::sweep::Sweep;
use super::verdict::Verdict;
use crate::environment::Environment;
use crate::stats::Percentiles;
use crate::telemetry::ServerTelemetry;

/// Everything a `loadgen run` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    /// The scenario (also in the settings).
    pub scenario: Scenario,
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
    /// Which strategy to use, computed from the figures above
    /// ([`super::recommendation`]); derived again whenever a report is read, so
    /// the one stored is never read back.
    #[serde(default, skip_deserializing)]
    pub recommendation: Option<super::recommendation::Recommendation>,
}

/// The tool's resolution in a run, so a reader can tell whether a figure is near
/// it: the idle probe round trip (the floor), how late probes were sent while
/// nothing else ran, and how late this machine wakes a sleeping thread at all.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Resolution {
    /// Lowest idle probe p50 over the variants.
    pub floor_p50_us: f64,
    /// Highest idle probe send-lateness p99 over the variants.
    pub idle_lateness_p99_us: f64,
    /// Highest idle probe send-lateness max over the variants.
    pub idle_lateness_max_us: f64,
    /// The machine's timer jitter measured before the run (how late 1 ms sleeps
    /// woke: [`crate::jitter`]); no pacer can do better.
    #[serde(default)]
    pub timer_jitter: Option<Percentiles>,
}

impl Resolution {
    /// From the idle phases of `variants` and the machine's `timer_jitter`; `None`
    /// if no idle phase ran.
    pub fn of(variants: &[VariantReport], timer_jitter: Option<Percentiles>) -> Option<Resolution> {
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
            timer_jitter,
        })
    }
}

/// Which CPUs the servers and the client were pinned to (none: shared).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Placement {
    pub server_cpus: Option<Vec<usize>>,
    pub client_cpus: Option<Vec<usize>>,
}

impl Placement {
    /// The placement in words, for summaries and pages.
    pub fn describe(&self) -> String {
        let cpus = |list: &Option<Vec<usize>>| match list {
            Some(list) => {
                let list: Vec<String> = list.iter().map(usize::to_string).collect();
                format!("CPUs {}", list.join(","))
            }
            None => "all CPUs".to_owned(),
        };
        match (&self.server_cpus, &self.client_cpus) {
            (None, None) => "servers and client share all CPUs".to_owned(),
            (servers, client) => {
                format!("servers on {}, client on {}", cpus(servers), cpus(client))
            }
        }
    }
}

/// How a variant's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantStatus {
    /// Every phase ran.
    Ok,
    /// It did not start, crashed, or a phase could not run; `error` says why.
    Failed,
    /// Ctrl-C/SIGTERM stopped it.
    Interrupted,
}

impl VariantStatus {
    pub fn name(self) -> &'static str {
        match self {
            VariantStatus::Ok => "ok",
            VariantStatus::Failed => "failed",
            VariantStatus::Interrupted => "interrupted",
        }
    }
}

/// One variant's runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantReport {
    pub name: String,
    pub summary: String,
    /// What it mirrors: a built-in variant's FastAPI answer, or the built-in
    /// variant an external server mirrors.
    #[serde(default)]
    pub mirrors: String,
    pub status: VariantStatus,
    pub error: Option<String>,
    /// The server's `/info`.
    pub server: Option<serde_json::Value>,
    /// The heavy job sized for this server.
    #[serde(rename = "job")]
    pub heavy: Option<HeavySize>,
    pub phases: Vec<PhaseReport>,
    pub figures: Option<Figures>,
    /// Whether the probe stayed within the objective under load (`None`: the
    /// loaded phase did not run).
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// The load sweep, step by step, and the responsive capacity it shows.
    #[serde(default)]
    pub sweep: Option<Sweep>,
    /// Steps of the sweep not run: the probe had gone unanswered for a whole step.
    #[serde(default)]
    pub skipped_steps: Vec<String>,
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
    /// A step of the load sweep: the heavy work offered, as a multiple of what the
    /// cores can finish.
    #[serde(default)]
    pub load: Option<f64>,
    /// How long the run waited before this phase for the server to finish what the
    /// previous step left it (until its CPU went quiet, or the cap).
    #[serde(default)]
    pub settled_s: Option<f64>,
}

/// The phase named `name` among `phases`. `loaded` also names the highest step of
/// the load sweep that ran (the overload point), as it did before the sweep.
pub fn find_phase<'a>(phases: &'a [PhaseReport], name: &str) -> Option<&'a PhaseReport> {
    phases.iter().find(|p| p.name == name).or_else(|| {
        (name == "loaded")
            .then(|| phases.iter().rev().find(|p| p.load.is_some()))
            .flatten()
    })
}

impl VariantReport {
    /// The verdict on the loaded phase's probe against `objective_ms`, if it ran.
    pub fn judge(&self, objective_ms: f64) -> Option<Verdict> {
        let probe = self.phase("loaded")?.stream("probe")?;
        Some(Verdict::of(&probe.latency.corrected, objective_ms * 1e3))
    }

    /// The phase named `name`, if it ran (`loaded`: the highest step of the sweep
    /// that ran, see [`find_phase`], and only when every phase ran: a variant
    /// that failed part-way has no overload point).
    pub fn phase(&self, name: &str) -> Option<&PhaseReport> {
        if name == "loaded" && self.status != VariantStatus::Ok {
            return self.phases.iter().find(|p| p.name == name);
        }
        find_phase(&self.phases, name)
    }

    /// The load of the overload point, the highest step that ran.
    pub fn overload_load(&self) -> Option<f64> {
        self.phase("loaded")?.load
    }
}

impl PhaseReport {
    /// The stream named `name`, if the phase had it.
    pub fn stream(&self, name: &str) -> Option<&StreamReport> {
        self.streams.iter().find(|s| s.name == name)
    }
}
