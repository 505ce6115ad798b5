//! The report of a `loadgen bench` run: its configuration, environment and
//! streams (request streams, then the submit and end-to-end streams of any job
//! stream), with the job streams' own figures.

use serde::{Deserialize, Serialize};

use super::jobs::JobsFigures;
use super::merge::MergedSource;
use super::stream::StreamReport;
use super::SCHEMA_VERSION;
use crate::clock_sync::StartSync;
use crate::engine::RunOutcome;
use crate::environment::Environment;
use crate::plan::Plan;

/// Everything a `bench` run measured, with its configuration and environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// When measurement (after the warm-up) started, RFC 3339 to the
    /// microsecond: what `loadgen merge` aligns intervals by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure_started_at: Option<String>,
    /// With `--start-at`: the instant asked for, how late this agent began, and
    /// what its clock claims about itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartSync>,
    /// A merged report (`loadgen merge`): the agents' reports it adds up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedSource>,
    /// Stopped early by Ctrl-C/SIGTERM: the figures cover less than the duration.
    pub interrupted: bool,
    pub environment: Environment,
    pub config: RunConfig,
    pub streams: Vec<StreamReport>,
    /// Job streams of a scenario file (`kind = "job"`): counts and server-side
    /// times; their submit and end-to-end latencies are streams above.
    #[serde(default)]
    pub jobs: Vec<NamedJobsFigures>,
    /// The server's own figures per interval (`--scrape`) and its CPU
    /// (`--server-pid`), beside the client's CPU.
    #[serde(default)]
    pub server_telemetry: Option<crate::telemetry::ServerTelemetry>,
}

/// The figures of one job stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedJobsFigures {
    pub name: String,
    pub figures: JobsFigures,
}

/// The settings of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub url: String,
    /// The address connected to.
    pub addr: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub timeout_s: f64,
    pub interval_s: f64,
    /// The open loop's release granularity (0: each request at its own due time).
    #[serde(default)]
    pub release_tick_s: f64,
    /// "HTTP/1.1" or "HTTP/2".
    #[serde(default = "http1")]
    pub protocol: String,
    /// Concurrent requests each connection carries (1 over HTTP/1.1; a stream's
    /// requests in flight are its connections times this).
    #[serde(default = "one")]
    pub streams_per_connection: usize,
}

fn http1() -> String {
    "HTTP/1.1".into()
}

fn one() -> usize {
    1
}

impl BenchReport {
    /// The report of `outcome`, a run of `plan`.
    pub fn new(plan: &Plan, outcome: &RunOutcome, environment: Environment) -> BenchReport {
        BenchReport {
            schema_version: SCHEMA_VERSION,
            tool: "loadgen".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            started_at: humantime::format_rfc3339_seconds(outcome.started_at).to_string(),
            measure_started_at: Some(
                humantime::format_rfc3339_micros(outcome.measure_started_at).to_string(),
            ),
            start: plan
                .timing
                .start_at
                .zip(outcome.start_late)
                .map(|(at, late)| StartSync::new(at, late, outcome.start_clock)),
            merged_from: Vec::new(),
            interrupted: outcome.interrupted,
            environment,
            config: RunConfig {
                url: plan.target.url.clone(),
                addr: outcome.addr.to_string(),
                duration_s: plan.timing.duration.as_secs_f64(),
                warmup_s: plan.timing.warmup.as_secs_f64(),
                timeout_s: plan.timing.timeout.as_secs_f64(),
                interval_s: plan.timing.interval.as_secs_f64(),
                release_tick_s: plan.timing.release_tick.as_secs_f64(),
                protocol: plan.target.protocol.name().into(),
                streams_per_connection: plan.target.protocol.streams_per_connection(),
            },
            streams: outcome
                .streams
                .iter()
                .map(|s| StreamReport::from_outcome(s, outcome.measured))
                .collect(),
            jobs: Vec::new(),
            server_telemetry: None,
        }
    }
}
