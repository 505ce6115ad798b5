//! The settings of a `loadgen run`, recorded in its report: which scenario, the
//! phases and their lengths, the probe, and the heavy work.
//!
//! The default scenario, "responsiveness": per variant, an `idle` phase (probe
//! only), a `loaded` phase (probe plus more heavy work than the cores can finish),
//! and a `recovery` phase (probe only), each a separate run on the same server. In
//! the "jobs" scenario the loaded phase's load is background jobs instead; in the
//! "upstream" scenario it is `GET /work/upstream` calls to a slow HTTP service
//! (blocking network I/O), offered as multiples of what a pool of one blocking
//! thread per core could finish.
//!
//! The heavy job is sized from the server's own calibration (`/info`'s
//! `ns_per_unit`) to about 20 ms of CPU ([`HeavySize`]), and offered open-loop at
//! 1.5× what the server's cores could finish (`cores / job cost`), so every
//! strategy is saturated and its behaviour under overload shows.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What loads the server in the `loaded` phase of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Heavy `GET /work/cpu` requests beside the probe.
    #[default]
    Responsiveness,
    /// Background jobs: `POST /jobs` open loop, each polled until done.
    Jobs,
    /// `GET /work/upstream` calls to a slow HTTP service beside the probe: work
    /// that waits instead of computing.
    Upstream,
}

impl Scenario {
    /// The name users type and reports show.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Responsiveness => "responsiveness",
            Scenario::Jobs => "jobs",
            Scenario::Upstream => "upstream",
        }
    }

    /// Whether the load is heavy requests (the `heavy` stream) rather than
    /// background jobs.
    pub fn heavy_requests(self) -> bool {
        matches!(self, Scenario::Responsiveness | Scenario::Upstream)
    }

    /// The heavy request's path for a job of `units` (the CPU kernel's units, or
    /// the upstream's wait in ms).
    pub fn heavy_path(self, units: u64) -> String {
        match self {
            Scenario::Upstream => format!("/work/upstream?ms={units}"),
            Scenario::Responsiveness | Scenario::Jobs => format!("/work/cpu?units={units}"),
        }
    }

    /// The default length of one piece of heavy work (`--job`): CPU time, or the
    /// upstream's wait.
    pub fn default_job(self) -> Duration {
        match self {
            Scenario::Upstream => Duration::from_millis(200),
            Scenario::Responsiveness | Scenario::Jobs => Duration::from_millis(20),
        }
    }

    /// The title of a run's summary and page.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Responsiveness => "Responsiveness under blocking load",
            Scenario::Jobs => "Background jobs under blocking load",
            Scenario::Upstream => "Responsiveness under blocking network I/O",
        }
    }

    /// The stream that carries the load's own latency in the loaded phase.
    pub fn load_stream(self) -> &'static str {
        match self {
            Scenario::Responsiveness | Scenario::Upstream => "heavy",
            Scenario::Jobs => "jobs",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One phase of the scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseSpec {
    pub name: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Whether heavy work (requests or background jobs) runs in this phase.
    pub heavy: bool,
    /// A step of the load sweep: the heavy work offered, as a multiple of what the
    /// cores can finish.
    #[serde(default)]
    pub load: Option<f64>,
}

/// The name of the sweep's step at `load`: `load-150` for 1.5× what the cores can
/// finish (no dot, so it reads as one part of a check selector).
pub fn step_name(load: f64) -> String {
    format!("load-{}", (load * 100.0).round())
}

/// The scenario's settings, recorded in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub phases: Vec<PhaseSpec>,
    /// Target CPU time of one piece of heavy work (a heavy request or a
    /// background job), in milliseconds (`--job`).
    #[serde(rename = "job_ms")]
    pub heavy_ms: f64,
    /// The sweep's highest load: the overload point the comparison table and the
    /// `loaded` phase name refer to.
    pub overload: f64,
    /// The steps of the load sweep, in increasing order (multiples of what the
    /// cores can finish); one step in the jobs scenario.
    #[serde(default)]
    pub loads: Vec<f64>,
    pub probe_rate: f64,
    pub probe_connections: usize,
    /// New-connection probes per second (`fresh`: `GET /health` on a new connection
    /// each, as new clients arrive); 0 for none.
    #[serde(default)]
    pub fresh_rate: f64,
    pub heavy_connections: usize,
    pub timeout_s: f64,
    /// How long requests in flight at the end of a phase may still complete.
    pub drain_s: f64,
    #[serde(default)]
    pub scenario: Scenario,
    /// jobs: background jobs offered, as a multiple of what the cores can finish.
    #[serde(default)]
    pub job_load: f64,
    /// The responsiveness objective: a variant is responsive when its probe p99
    /// under load is at most this, in milliseconds (`--objective`).
    #[serde(default = "default_objective_ms")]
    pub objective_ms: f64,
}

fn default_objective_ms() -> f64 {
    DEFAULT_OBJECTIVE_MS
}

/// The default responsiveness objective: probe p99 under load at most 50 ms. Far
/// above the tool's floor and the timer's 1–2 ms, far below the hundreds of
/// milliseconds a blocked event loop costs, and under the 100 ms at which people
/// notice a delay.
pub const DEFAULT_OBJECTIVE_MS: f64 = 50.0;

/// Probe requests per second: 2,100 samples in each 3 s phase of the default run,
/// 525 in each 0.75 s phase of a quick one, for about 3.5 % of one core of client
/// CPU (measured with `loadgen bench --rate 500 -c 8` on /health: 2.5 %).
pub const DEFAULT_PROBE_RATE: f64 = 700.0;

/// New-connection probes per second: 600 samples in each 3 s phase, for about as
/// much client CPU as the kept-alive probe (every one is a handshake).
pub const DEFAULT_FRESH_RATE: f64 = 200.0;

/// The default load sweep: from a quarter of what the cores can finish to 1.5×.
pub const FULL_LOADS: [f64; 6] = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5];

/// The quick sweep: below, at and above capacity.
pub const QUICK_LOADS: [f64; 3] = [0.5, 1.0, 1.5];

/// The upstream scenario's sweep, in multiples of what a pool of one blocking
/// thread per core finishes: within it, past it, far past it, and (with 2 cores
/// and a 200 ms upstream: 3,000 calls per second, 600 waiting at once) past what
/// tokio's 512 blocking threads can hold (5, 20, 200 and 3,000 calls/s).
pub const UPSTREAM_LOADS: [f64; 4] = [0.5, 2.0, 20.0, 300.0];

/// Highest load a sweep step may offer: 10× what the cores can finish for CPU
/// work; I/O work goes far past what blocking threads finish, so 1,000× there.
fn max_load(scenario: Scenario) -> f64 {
    match scenario {
        Scenario::Upstream => 1000.0,
        Scenario::Responsiveness | Scenario::Jobs => 10.0,
    }
}

/// Longest wait between two steps for the server to finish what the first left it
/// (its CPU going quiet); a step that began at the cap is warned about.
pub const SETTLE_CAP: Duration = Duration::from_secs(3);

/// Start-up, calibration and drains per variant, for the time estimate (the settle
/// waits between steps are not in it).
pub const OVERHEAD_PER_VARIANT: Duration = Duration::from_secs(2);

/// Phase lengths, each (measured, warm-up) in seconds.
struct Lengths {
    idle: (f64, f64),
    /// One step of the load sweep (its warm-up is the settle after the load rises).
    step: (f64, f64),
    /// The single step of the jobs scenario.
    jobs: (f64, f64),
    recovery: (f64, f64),
}

const FULL: Lengths = Lengths {
    idle: (3.0, 0.5),
    step: (3.0, 0.25),
    jobs: (10.0, 1.0),
    recovery: (3.0, 0.0),
};

const QUICK: Lengths = Lengths {
    idle: (0.75, 0.3),
    step: (0.75, 0.25),
    jobs: (3.0, 0.5),
    recovery: (0.75, 0.0),
};

impl Settings {
    /// The default settings of `scenario`; `quick` shortens every phase (and the
    /// sweep) for CI.
    pub fn new(quick: bool, scenario: Scenario) -> Settings {
        let l = if quick { QUICK } else { FULL };
        let job_load = 0.8;
        let loads = match (scenario, quick) {
            (Scenario::Jobs, _) => vec![job_load],
            (Scenario::Responsiveness, false) => FULL_LOADS.to_vec(),
            (Scenario::Responsiveness, true) => QUICK_LOADS.to_vec(),
            (Scenario::Upstream, _) => UPSTREAM_LOADS.to_vec(),
        };
        let step = match scenario {
            Scenario::Jobs => l.jobs,
            Scenario::Responsiveness | Scenario::Upstream => l.step,
        };
        let mut settings = Settings {
            phases: Vec::new(),
            heavy_ms: scenario.default_job().as_secs_f64() * 1e3,
            overload: 1.5,
            loads: Vec::new(),
            scenario,
            job_load,
            probe_rate: DEFAULT_PROBE_RATE,
            probe_connections: 8,
            fresh_rate: DEFAULT_FRESH_RATE,
            heavy_connections: 96,
            objective_ms: DEFAULT_OBJECTIVE_MS,
            timeout_s: 5.0,
            drain_s: 1.0,
        };
        settings.phases = vec![
            probe_only("idle", l.idle),
            probe_only("recovery", l.recovery),
        ];
        settings.set_loads(&loads, step);
        settings
    }

    /// Replaces the sweep with steps at `loads` (sorted), each `(measured,
    /// warm-up)` seconds long, between the idle and the recovery phase.
    pub fn set_loads(&mut self, loads: &[f64], (duration_s, warmup_s): (f64, f64)) {
        let mut loads = loads.to_vec();
        loads.sort_by(f64::total_cmp);
        loads.dedup();
        let steps = loads.iter().map(|&load| PhaseSpec {
            name: step_name(load),
            duration_s,
            warmup_s,
            heavy: true,
            load: Some(load),
        });
        let idle = self.phases.iter().find(|p| p.name == "idle").cloned();
        let recovery = self.phases.iter().find(|p| p.name == "recovery").cloned();
        self.phases = idle.into_iter().chain(steps).chain(recovery).collect();
        self.overload = loads.last().copied().unwrap_or(self.overload);
        self.loads = loads;
    }

    /// The measured and warm-up lengths of the sweep's steps.
    pub fn step_lengths(&self) -> (f64, f64) {
        self.steps()
            .next()
            .map_or((0.0, 0.0), |p| (p.duration_s, p.warmup_s))
    }

    /// The steps of the load sweep, in order.
    pub fn steps(&self) -> impl Iterator<Item = &PhaseSpec> {
        self.phases.iter().filter(|p| p.load.is_some())
    }

    /// Sets a phase's measured duration (`loaded`: every step of the sweep).
    pub fn set_duration(&mut self, phase: &str, duration: Duration) {
        for p in &mut self.phases {
            if p.name == phase || (phase == "loaded" && p.load.is_some()) {
                p.duration_s = duration.as_secs_f64();
            }
        }
    }

    /// Planned time of a run of `variants` variants, start-up and drains included.
    pub fn planned_run(&self, variants: usize) -> Duration {
        (self.planned_per_variant() + OVERHEAD_PER_VARIANT) * variants as u32
    }

    /// Planned time of one variant's phases, warm-ups included.
    pub fn planned_per_variant(&self) -> Duration {
        Duration::from_secs_f64(self.phases.iter().map(|p| p.duration_s + p.warmup_s).sum())
    }

    /// Checks the settings; messages say what to change.
    pub fn validate(&self) -> Result<(), String> {
        for p in &self.phases {
            if p.duration_s <= 0.0 {
                let flag = if p.load.is_some() { "loaded" } else { &p.name };
                return Err(format!("--{flag} must be longer than zero"));
            }
        }
        if !(self.heavy_ms.is_finite() && self.heavy_ms > 0.0) {
            return Err("--job must be longer than zero".into());
        }
        if !(self.job_load > 0.0 && self.job_load.is_finite()) {
            return Err("--job-load must be a positive number".into());
        }
        let max = max_load(self.scenario);
        if self.loads.is_empty()
            || self
                .loads
                .iter()
                .any(|l| !(l.is_finite() && *l >= 0.01 && *l <= max))
        {
            return Err(format!(
                "--loads must be one or more multiples of what the cores can finish, each from 0.01 to {max} (e.g. 0.5,1,1.5)"
            ));
        }
        if self.scenario == Scenario::Upstream && self.heavy_ms < 1.0 {
            return Err("--job (the upstream's wait per call) must be at least 1ms".into());
        }
        if let Some(w) = self
            .loads
            .windows(2)
            .find(|w| step_name(w[0]) == step_name(w[1]))
        {
            return Err(format!(
                "--loads {} and {} name the same step ({}); give loads at least 0.01 apart",
                w[0],
                w[1],
                step_name(w[0])
            ));
        }
        if !(self.objective_ms > 0.0 && self.objective_ms.is_finite()) {
            return Err("--objective must be longer than zero".into());
        }
        if !(self.fresh_rate >= 0.0 && self.fresh_rate.is_finite()) {
            return Err("--fresh-rate must be zero or a positive number".into());
        }
        if !(self.probe_rate > 0.0 && self.probe_rate.is_finite()) {
            return Err("--probe-rate must be a positive number".into());
        }
        if self.probe_connections == 0 || self.heavy_connections == 0 {
            return Err("--probe-connections and --heavy-connections must be at least 1".into());
        }
        Ok(())
    }
}

/// The heavy job sized for one server: how many work units make one job of the
/// asked-for CPU time, and what the server's cores can finish. In the upstream
/// scenario a job is one call that waits `--job` at the upstream: `units` is that
/// wait in milliseconds, and the ideal is what a pool of one blocking thread per
/// core finishes (`cores / wait`), the bar the I/O answers are measured against.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct HeavySize {
    pub units: u64,
    /// CPU time of one job by the server's calibration, in milliseconds.
    pub cost_ms: f64,
    /// Cores the server reported.
    pub cores: usize,
    /// Jobs per second the cores could finish: `cores / cost`.
    pub ideal_per_s: f64,
    /// Jobs per second offered at the sweep's highest load.
    pub offered_per_s: f64,
    /// How the size was found when the server does not describe its kernel (an
    /// external server without `/info`); `None`: from its `/info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<MeasuredSize>,
}

/// The heavy request's service time as measured on the idle server, one request
/// after another on one kept-alive connection, after a warm-up request (see
/// `external::sizing`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredSize {
    /// Requests timed at the final size.
    pub samples: usize,
    /// Their median; less the fixed cost, the job's cost.
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// The request's fixed cost: the fastest one-unit request (0 when the size
    /// cannot be chosen).
    pub overhead_ms: f64,
    /// Requests sent in all to find the size.
    pub requests: usize,
}

impl HeavySize {
    /// A job of `units` that costs `cost_ms` on `cores` cores, offered as
    /// `settings` say.
    pub fn of(
        units: u64,
        cost_ms: f64,
        cores: usize,
        settings: &Settings,
        measured: Option<MeasuredSize>,
    ) -> HeavySize {
        let ideal_per_s = cores as f64 * 1_000.0 / cost_ms;
        HeavySize {
            units,
            cost_ms,
            cores,
            ideal_per_s,
            offered_per_s: ideal_per_s * settings.overload,
            measured,
        }
    }

    /// Sizes the heavy job from a server's `/info`.
    pub fn from_info(info: &serde_json::Value, settings: &Settings) -> anyhow::Result<HeavySize> {
        let ns_per_unit = info["ns_per_unit"]
            .as_f64()
            .filter(|n| *n > 0.0)
            .ok_or_else(|| anyhow::anyhow!("/info has no ns_per_unit"))?;
        let cores = info["cores"].as_u64().unwrap_or(1).max(1) as usize;
        let (units, cost_ms) = if settings.scenario == Scenario::Upstream {
            let ms = settings.heavy_ms.round().max(1.0);
            if let Some(cap) = info["max_io_ms"].as_f64() {
                anyhow::ensure!(
                    ms <= cap,
                    "--job {ms}ms is over the server's cap of {cap} ms per call (--max-io-ms)"
                );
            }
            (ms as u64, ms)
        } else {
            let units = ((settings.heavy_ms * 1e6 / ns_per_unit).round() as u64).max(1);
            (units, units as f64 * ns_per_unit / 1e6)
        };
        Ok(HeavySize::of(units, cost_ms, cores, settings, None))
    }
}

impl HeavySize {
    /// The part of a measured window of `measured_s` seconds whose heavy requests
    /// could be done inside it: a request due in the window's last job length
    /// cannot finish before the window ends, even on a free server. Throughput
    /// and the answered share count over this, so that 200 ms calls in a 3 s
    /// step are not short of their offered rate by 7 % before any server is to
    /// blame (20 ms CPU jobs: 0.7 %). At least half the window.
    pub fn reachable_s(&self, measured_s: f64) -> f64 {
        (measured_s - self.cost_ms / 1e3).max(measured_s / 2.0)
    }
}

/// A phase with the probe alone.
fn probe_only(name: &str, (duration_s, warmup_s): (f64, f64)) -> PhaseSpec {
    PhaseSpec {
        name: name.into(),
        duration_s,
        warmup_s,
        heavy: false,
        load: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_the_job_from_the_calibration() {
        let settings = Settings::new(false, Scenario::Responsiveness);
        let info = serde_json::json!({ "ns_per_unit": 1000.0, "cores": 2 });
        let heavy = HeavySize::from_info(&info, &settings).unwrap();
        assert_eq!(heavy.units, 20_000);
        assert!((heavy.cost_ms - 20.0).abs() < 1e-9);
        assert!((heavy.ideal_per_s - 100.0).abs() < 1e-9);
        assert!((heavy.offered_per_s - 150.0).abs() < 1e-9);
    }

    #[test]
    fn an_upstream_job_is_one_call_and_its_ideal_is_a_blocking_pool_per_core() {
        let settings = Settings::new(false, Scenario::Upstream);
        assert_eq!(settings.heavy_ms, 200.0);
        assert_eq!(settings.loads, UPSTREAM_LOADS);
        settings.validate().unwrap();
        let info = serde_json::json!({ "ns_per_unit": 1000.0, "cores": 2 });
        let heavy = HeavySize::from_info(&info, &settings).unwrap();
        assert_eq!(heavy.units, 200);
        assert!((heavy.ideal_per_s - 10.0).abs() < 1e-9);
        assert!((heavy.offered_per_s - 3_000.0).abs() < 1e-9);
        assert_eq!(Scenario::Upstream.heavy_path(200), "/work/upstream?ms=200");
        let mut cpu = Settings::new(false, Scenario::Responsiveness);
        cpu.set_loads(&[20.0], (1.0, 0.0));
        assert!(cpu.validate().unwrap_err().contains("to 10"));
    }

    #[test]
    fn every_phase_has_enough_probe_samples() {
        for (quick, least) in [(false, 2_000.0), (true, 500.0)] {
            let settings = Settings::new(quick, Scenario::Responsiveness);
            for p in &settings.phases {
                let samples = p.duration_s * settings.probe_rate;
                assert!(samples >= least, "{} (quick {quick}): {samples}", p.name);
            }
        }
    }

    #[test]
    fn the_default_run_fits_six_minutes_and_quick_one_and_a_half() {
        let variants = servers::variant::Variant::ALL.len();
        let full = Settings::new(false, Scenario::Responsiveness).planned_run(variants);
        let quick = Settings::new(true, Scenario::Responsiveness).planned_run(variants);
        assert!(full <= Duration::from_secs(360), "{full:?}");
        assert!(quick <= Duration::from_secs(90), "{quick:?}");
    }

    #[test]
    fn the_sweep_runs_between_idle_and_recovery_in_increasing_order() {
        let mut settings = Settings::new(false, Scenario::Responsiveness);
        let names: Vec<&str> = settings.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "idle", "load-25", "load-50", "load-75", "load-100", "load-125", "load-150",
                "recovery"
            ]
        );
        settings.set_loads(&[1.2, 0.4, 1.2], (2.0, 0.1));
        let names: Vec<&str> = settings.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["idle", "load-40", "load-120", "recovery"]);
        assert_eq!(settings.overload, 1.2);
        assert_eq!(settings.step_lengths(), (2.0, 0.1));
        settings.set_duration("loaded", Duration::from_secs(5));
        assert!(settings.steps().all(|p| p.duration_s == 5.0));
        let jobs = Settings::new(true, Scenario::Jobs);
        let steps: Vec<&str> = jobs.steps().map(|p| p.name.as_str()).collect();
        assert_eq!(steps, ["load-80"]);
    }
}
