//! The settings of a `loadgen run`, recorded in its report: which scenario, the
//! phases and their lengths, the probe, and the heavy work.
//!
//! The default scenario, "responsiveness": per variant, an `idle` phase (probe
//! only), a `loaded` phase (probe plus more heavy work than the cores can finish),
//! and a `recovery` phase (probe only), each a separate run on the same server. In
//! the "jobs" scenario the loaded phase's load is background jobs instead.
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
}

impl Scenario {
    /// The name users type and reports show.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Responsiveness => "responsiveness",
            Scenario::Jobs => "jobs",
        }
    }

    /// The title of a run's summary and page.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Responsiveness => "Responsiveness under blocking load",
            Scenario::Jobs => "Background jobs under blocking load",
        }
    }

    /// The stream that carries the load's own latency in the loaded phase.
    pub fn load_stream(self) -> &'static str {
        match self {
            Scenario::Responsiveness => "heavy",
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
    /// Whether the heavy stream runs in this phase.
    pub heavy: bool,
}

/// The scenario's settings, recorded in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub phases: Vec<PhaseSpec>,
    /// Target CPU time of one piece of heavy work (a heavy request or a
    /// background job), in milliseconds (`--job`).
    #[serde(rename = "job_ms")]
    pub heavy_ms: f64,
    /// Heavy work offered, as a multiple of what the cores can finish.
    pub overload: f64,
    pub probe_rate: f64,
    pub probe_connections: usize,
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

/// Probe requests per second: 2,000 samples in the default run's shortest phase,
/// 500 in a quick run's, for about 2.5 % of one core of client CPU (measured with
/// `loadgen bench --rate 500 -c 8` on /health).
pub const DEFAULT_PROBE_RATE: f64 = 500.0;

/// Start-up, calibration and drains per variant, for the time estimate.
pub const OVERHEAD_PER_VARIANT: Duration = Duration::from_secs(2);

/// Phase lengths: (idle, loaded, recovery) durations and warm-ups in seconds.
struct Lengths {
    idle: (f64, f64),
    loaded: (f64, f64),
    recovery: (f64, f64),
}

/// At the default probe rate: 2,000, 5,000 and 2,000 probe samples.
const FULL: Lengths = Lengths {
    idle: (4.0, 0.5),
    loaded: (10.0, 1.0),
    recovery: (4.0, 0.0),
};

/// At the default probe rate: 500, 1,500 and 500 probe samples.
const QUICK: Lengths = Lengths {
    idle: (1.0, 0.3),
    loaded: (3.0, 0.5),
    recovery: (1.0, 0.0),
};

impl Settings {
    /// The default settings; `quick` shortens every phase for CI.
    pub fn new(quick: bool) -> Settings {
        let l = if quick { QUICK } else { FULL };
        let phase = |name: &str, (duration_s, warmup_s): (f64, f64), heavy| PhaseSpec {
            name: name.into(),
            duration_s,
            warmup_s,
            heavy,
        };
        Settings {
            phases: vec![
                phase("idle", l.idle, false),
                phase("loaded", l.loaded, true),
                phase("recovery", l.recovery, false),
            ],
            heavy_ms: 20.0,
            overload: 1.5,
            scenario: Scenario::Responsiveness,
            job_load: 0.8,
            probe_rate: DEFAULT_PROBE_RATE,
            probe_connections: 8,
            heavy_connections: 96,
            objective_ms: DEFAULT_OBJECTIVE_MS,
            timeout_s: 5.0,
            drain_s: 1.0,
        }
    }

    /// Sets a phase's measured duration.
    pub fn set_duration(&mut self, phase: &str, duration: Duration) {
        if let Some(p) = self.phases.iter_mut().find(|p| p.name == phase) {
            p.duration_s = duration.as_secs_f64();
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
                return Err(format!("--{} must be longer than zero", p.name));
            }
        }
        if !(self.heavy_ms.is_finite() && self.heavy_ms > 0.0) {
            return Err("--job must be longer than zero".into());
        }
        if !(self.overload > 0.0 && self.overload.is_finite()) {
            return Err("--overload must be a positive number".into());
        }
        if !(self.objective_ms > 0.0 && self.objective_ms.is_finite()) {
            return Err("--objective must be longer than zero".into());
        }
        if !(self.probe_rate > 0.0 && self.probe_rate.is_finite()) {
            return Err("--probe-rate must be a positive number".into());
        }
        if !(self.job_load > 0.0 && self.job_load.is_finite()) {
            return Err("--job-load must be a positive number".into());
        }
        if self.probe_connections == 0 || self.heavy_connections == 0 {
            return Err("--probe-connections and --heavy-connections must be at least 1".into());
        }
        Ok(())
    }
}

/// The heavy job sized for one server: how many work units make one job of the
/// asked-for CPU time, and what the server's cores can finish.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct HeavySize {
    pub units: u64,
    /// CPU time of one job by the server's calibration, in milliseconds.
    pub cost_ms: f64,
    /// Cores the server reported.
    pub cores: usize,
    /// Jobs per second the cores could finish: `cores / cost`.
    pub ideal_per_s: f64,
    /// Jobs per second offered in the loaded phase.
    pub offered_per_s: f64,
}

impl HeavySize {
    /// Sizes the heavy job from a server's `/info`.
    pub fn from_info(info: &serde_json::Value, settings: &Settings) -> anyhow::Result<HeavySize> {
        let ns_per_unit = info["ns_per_unit"]
            .as_f64()
            .filter(|n| *n > 0.0)
            .ok_or_else(|| anyhow::anyhow!("/info has no ns_per_unit"))?;
        let cores = info["cores"].as_u64().unwrap_or(1).max(1) as usize;
        let units = ((settings.heavy_ms * 1e6 / ns_per_unit).round() as u64).max(1);
        let cost_ms = units as f64 * ns_per_unit / 1e6;
        let ideal_per_s = cores as f64 * 1_000.0 / cost_ms;
        Ok(HeavySize {
            units,
            cost_ms,
            cores,
            ideal_per_s,
            offered_per_s: ideal_per_s * settings.overload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_the_job_from_the_calibration() {
        let settings = Settings::new(false);
        let info = serde_json::json!({ "ns_per_unit": 1000.0, "cores": 2 });
        let heavy = HeavySize::from_info(&info, &settings).unwrap();
        assert_eq!(heavy.units, 20_000);
        assert!((heavy.cost_ms - 20.0).abs() < 1e-9);
        assert!((heavy.ideal_per_s - 100.0).abs() < 1e-9);
        assert!((heavy.offered_per_s - 150.0).abs() < 1e-9);
    }

    #[test]
    fn every_phase_has_enough_probe_samples() {
        for (quick, least) in [(false, 2_000.0), (true, 500.0)] {
            let settings = Settings::new(quick);
            for p in &settings.phases {
                let samples = p.duration_s * settings.probe_rate;
                assert!(samples >= least, "{} (quick {quick}): {samples}", p.name);
            }
        }
    }

    #[test]
    fn full_matrix_fits_three_and_a_half_minutes_and_quick_about_one() {
        let variants = servers::variant::Variant::ALL.len();
        let full = Settings::new(false).planned_run(variants);
        let quick = Settings::new(true).planned_run(variants);
        assert!(full <= Duration::from_secs(215), "{full:?}");
        assert!(quick <= Duration::from_secs(90), "{quick:?}");
    }
}
