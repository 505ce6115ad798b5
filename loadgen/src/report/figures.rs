//! The comparison figures of one variant of a responsiveness run at the overload
//! point (the sweep's highest step that ran, `loaded`), beside the idle and
//! recovery phases: the probe in each, how much the load inflated it, and how much
//! heavy work got done.

use serde::{Deserialize, Serialize};

use super::run::{find_phase, PhaseReport};
use super::settings::HeavySize;
use crate::stats::Percentiles;

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
    pub fn derive(phases: &[PhaseReport], heavy_size: &HeavySize) -> Option<Figures> {
        let phase = |name: &str| find_phase(phases, name);
        let probe = |name: &str| phase(name).and_then(|p| p.stream("probe"));
        let (idle, loaded, recovery) = (probe("idle")?, probe("loaded")?, probe("recovery")?);
        let loaded_phase = phase("loaded")?;
        let heavy = loaded_phase.stream("heavy")?;
        // Over the part of the window whose requests could finish inside it.
        let completions =
            heavy.ok_throughput * heavy.measured_s / heavy_size.reachable_s(heavy.measured_s);
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
            heavy_efficiency: completions / heavy_size.ideal_per_s,
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
