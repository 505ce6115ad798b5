//! The machine-readable result of a `bench` run and its output formats, one format
//! per file behind the small [`Exporter`] trait (as hyperfine's exporters are). The
//! interval log is different: it is written while the run goes on ([`hlog`]).

pub mod hgrm;
pub mod hlog;
pub mod json;
pub mod text;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{RunOutcome, StreamOutcome};
use crate::environment::Environment;
use crate::recorder::Counts;
use crate::scenario::{Load, Plan};
use crate::stats::{encode, Percentiles};

/// Bumped whenever a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a `bench` run measured, with its configuration and environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// Stopped early by Ctrl-C/SIGTERM: the figures cover less than the duration.
    pub interrupted: bool,
    pub environment: Environment,
    pub config: RunConfig,
    pub streams: Vec<StreamReport>,
    /// Job streams of a scenario file (`kind = "job"`): counts and server-side
    /// times; their submit and end-to-end latencies are streams above.
    #[serde(default)]
    pub jobs: Vec<NamedJobsFigures>,
}

/// The figures of one job stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedJobsFigures {
    pub name: String,
    pub figures: crate::jobs::JobsFigures,
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
}

/// What one stream measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamReport {
    pub name: String,
    pub method: String,
    pub path: String,
    /// `open` (fixed rate) or `closed` (back to back).
    pub mode: String,
    pub connections: usize,
    /// Open loop: requests per second asked for.
    pub target_rate: Option<f64>,
    /// Length of the measured part in seconds.
    pub measured_s: f64,
    /// Requests sent per second.
    pub achieved_rate: f64,
    /// Responses (any status) completed inside the measured window, per second.
    pub throughput: f64,
    /// 2xx responses completed inside the measured window, per second.
    pub ok_throughput: f64,
    pub counts: Counts,
    /// Open loop: due in the measured part but never sent (no free connection);
    /// in the corrected latency as lower bounds.
    pub unsent: u64,
    pub latency: Latency,
    /// Open loop: send time minus due time.
    pub lateness: Option<Percentiles>,
    /// Full distributions, HdrHistogram V2 compressed and base64-encoded, in ns.
    pub histograms: EncodedHistograms,
    pub intervals: Vec<IntervalReport>,
}

/// Corrected (from the due time) first, then uncorrected (from the send time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

/// See [`StreamReport::histograms`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncodedHistograms {
    pub corrected: String,
    pub uncorrected: String,
}

/// One interval of the time series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalReport {
    /// From the start of measurement, in seconds.
    pub start_s: f64,
    pub length_s: f64,
    pub responses: u64,
    pub errors: u64,
    /// Responses per second in this interval.
    pub throughput: f64,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

impl StreamReport {
    /// Summarises one stream's outcome; `measured` is the measured length.
    pub fn from_outcome(outcome: &StreamOutcome, measured: std::time::Duration) -> StreamReport {
        let spec = &outcome.spec;
        let total = &outcome.total;
        let seconds = measured.as_secs_f64().max(f64::MIN_POSITIVE);
        let open = matches!(spec.load, Load::Open { .. });
        StreamReport {
            name: spec.name.clone(),
            method: spec.method.to_string(),
            path: spec.path.clone(),
            mode: if open { "open" } else { "closed" }.into(),
            connections: spec.load.connections(),
            target_rate: spec.load.rate(),
            measured_s: measured.as_secs_f64(),
            achieved_rate: total.counts.sent as f64 / seconds,
            throughput: outcome.in_window.responses as f64 / seconds,
            ok_throughput: outcome.in_window.status_2xx as f64 / seconds,
            counts: total.counts,
            unsent: outcome.unsent,
            latency: Latency {
                corrected: Percentiles::of(&total.corrected),
                uncorrected: Percentiles::of(&total.uncorrected),
            },
            lateness: open.then(|| Percentiles::of(&total.lateness)),
            histograms: EncodedHistograms {
                corrected: encode(&total.corrected),
                uncorrected: encode(&total.uncorrected),
            },
            intervals: outcome
                .intervals
                .iter()
                .map(|i| IntervalReport {
                    start_s: i.start.as_secs_f64(),
                    length_s: i.length.as_secs_f64(),
                    responses: i.counts.responses,
                    errors: i.counts.errors(),
                    throughput: i.counts.responses as f64
                        / i.length.as_secs_f64().max(f64::MIN_POSITIVE),
                    corrected: i.corrected,
                    uncorrected: i.uncorrected,
                })
                .collect(),
        }
    }
}

impl BenchReport {
    /// The report of `outcome`, a run of `plan`.
    pub fn new(plan: &Plan, outcome: &RunOutcome, environment: Environment) -> BenchReport {
        BenchReport {
            schema_version: SCHEMA_VERSION,
            tool: "loadgen".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            started_at: humantime::format_rfc3339_seconds(outcome.started_at).to_string(),
            interrupted: outcome.interrupted,
            environment,
            config: RunConfig {
                url: plan.target.url.clone(),
                addr: outcome.addr.to_string(),
                duration_s: plan.timing.duration.as_secs_f64(),
                warmup_s: plan.timing.warmup.as_secs_f64(),
                timeout_s: plan.timing.timeout.as_secs_f64(),
                interval_s: plan.timing.interval.as_secs_f64(),
            },
            streams: outcome
                .streams
                .iter()
                .map(|s| StreamReport::from_outcome(s, outcome.measured))
                .collect(),
            jobs: Vec::new(),
        }
    }
}

/// One output format of a finished report.
pub trait Exporter {
    /// The files this format makes for `report` when asked to write `path`, as
    /// (file, contents) pairs. Most formats make exactly `path`.
    fn files(&self, report: &BenchReport, path: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>>;

    /// Writes every file, each one atomically.
    fn write(&self, report: &BenchReport, path: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (file, contents) in self.files(report, path)? {
            crate::files::write_atomically(&file, &contents)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
            written.push(file);
        }
        Ok(written)
    }
}

/// `path` for a one-stream run; `stem.STREAM.ext` beside it when there are several.
pub fn per_stream_path(path: &Path, stream: &str, streams: usize) -> PathBuf {
    if streams == 1 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{stream}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{stream}"),
    };
    path.with_file_name(name)
}
