//! Server-side telemetry: what the server saw while the load generator measured it.
//!
//! - [`lag`]: an event-loop lag probe on the runtime (how late a 5 ms timer fires);
//! - [`runtime`]: tokio's stable runtime metrics;
//! - [`jobs`]: heavy jobs in flight, running, queued, finished, refused;
//! - [`traffic`]: connections accepted and requests received;
//! - [`polls`]: which code blocked: every poll of each route and background job
//!   task, timed by [`pollwatch`];
//! - [`group`]: the same for every process of a `multi-worker` server;
//! - [`exposition`]: all of it in Prometheus text format (`GET /metrics`); the JSON
//!   form (`GET /metrics.json`) is [`MetricsReport`] serialised.
//!
//! `--no-telemetry` turns the probe and both endpoints off, so the telemetry's own
//! cost can be measured; the job and traffic counters are a few relaxed atomic
//! additions per job, connection or request and stay on.

pub mod exposition;
pub mod group;
pub mod histogram;
pub mod jobs;
pub mod lag;
pub mod polls;
pub mod reporter;
pub mod runtime;
pub mod traffic;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

pub use group::Group;
pub use jobs::{JobFigures, JOBS};
pub use lag::{LagFigures, LagProbe};
pub use polls::PollFigures;
pub use runtime::RuntimeFigures;
pub use traffic::TRAFFIC;

/// Bumped whenever a field of [`MetricsReport`] changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// `GET /metrics.json`: the figures of every process of the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsReport {
    pub schema_version: u32,
    pub variant: String,
    /// One entry per process: one for most variants, every process for multi-worker.
    pub processes: Vec<ProcessSnapshot>,
}

/// One process's figures at one moment. Counters and histograms are cumulative
/// since the process started: subtract two snapshots for the time between them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSnapshot {
    /// Index within a multi-worker group; `None` for a single-process server.
    pub process: Option<usize>,
    pub pid: u32,
    /// When the snapshot was taken, in seconds on the process's own monotonic clock
    /// (since its telemetry started): the time base for differences.
    pub uptime_s: f64,
    /// How old the snapshot was when reported: 0 for the process answering, up to
    /// about 0.1 s for its siblings.
    pub age_s: f64,
    pub lag: LagFigures,
    pub runtime: RuntimeFigures,
    pub jobs: JobFigures,
    /// Connections this process accepted since it started. In a `multi-worker`
    /// group, which process took the load. Absent (0) in snapshots from servers
    /// older than the field.
    #[serde(default)]
    pub connections_accepted: u64,
    /// HTTP requests this process received since it started (absent: 0).
    #[serde(default)]
    pub requests: u64,
    /// Connections this process serves now, and the most it serves at once (0 from
    /// servers older than the fields).
    #[serde(default)]
    pub connections_open: u64,
    #[serde(default)]
    pub connection_limit: u64,
    /// Times the accept loop found every connection slot taken.
    #[serde(default)]
    pub connection_limit_waits: u64,
    /// Connections closed because no complete request head came in time.
    #[serde(default)]
    pub header_timeouts: u64,
    /// Poll timings by route and task; `None` with `--no-poll-timing` and from
    /// servers older than the field.
    #[serde(default)]
    pub polls: Option<PollFigures>,
}

/// The telemetry of one server process.
pub struct Telemetry {
    lag: Arc<LagProbe>,
    runtime: Handle,
    group: Option<Group>,
    started: Instant,
    polls: Option<Arc<pollwatch::PollWatch>>,
    reporter: reporter::Reporter,
}

impl Telemetry {
    /// Starts the lag probe on the runtime of `runtime` and, in a multi-worker
    /// group, the thread publishing this process's figures to its siblings.
    /// `polls`: the watch timing this process's routes and tasks, if any.
    pub fn start(
        runtime: &Handle,
        group: Option<Group>,
        polls: Option<Arc<pollwatch::PollWatch>>,
    ) -> std::io::Result<Arc<Telemetry>> {
        let lag = LagProbe::new();
        lag.start(runtime);
        let telemetry = Arc::new(Telemetry {
            lag,
            runtime: runtime.clone(),
            group,
            started: Instant::now(),
            polls,
            reporter: reporter::Reporter::start()?,
        });
        if let Some(group) = &telemetry.group {
            group.start_publishing(Arc::clone(&telemetry))?;
        }
        Ok(telemetry)
    }

    /// `work` on the telemetry's own reporter thread, off the event loop (see
    /// [`reporter`]).
    pub async fn off_loop<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Telemetry) -> T + Send + 'static,
    ) -> Result<T, reporter::Refused> {
        let telemetry = Arc::clone(self);
        self.reporter.run(move || work(&telemetry)).await
    }

    /// The watch timing this process's polls (`None` with `--no-poll-timing`).
    pub fn polls(&self) -> Option<&Arc<pollwatch::PollWatch>> {
        self.polls.as_ref()
    }

    /// This process's figures now.
    pub fn own_snapshot(&self) -> ProcessSnapshot {
        ProcessSnapshot {
            process: self.group.as_ref().map(|g| g.index),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            age_s: 0.0,
            lag: self.lag.figures(),
            runtime: runtime::figures(&self.runtime),
            jobs: JOBS.figures(),
            connections_accepted: TRAFFIC.connections_accepted(),
            requests: TRAFFIC.requests(),
            connections_open: TRAFFIC.connections_open(),
            connection_limit: TRAFFIC.connection_limit(),
            connection_limit_waits: TRAFFIC.connection_limit_waits(),
            header_timeouts: TRAFFIC.header_timeouts(),
            polls: self.polls.as_deref().map(PollFigures::of),
        }
    }

    /// The figures of every process of the server, in process order.
    pub fn report(&self, variant: &str) -> MetricsReport {
        let mut processes = vec![self.own_snapshot()];
        if let Some(group) = &self.group {
            processes.extend(group.siblings());
        }
        processes.sort_by_key(|p| p.process);
        MetricsReport {
            schema_version: SCHEMA_VERSION,
            variant: variant.to_owned(),
            processes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_without_the_traffic_counters_still_parses() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let telemetry = Telemetry::start(runtime.handle(), None, None).unwrap();
        let mut json = serde_json::to_value(telemetry.own_snapshot()).unwrap();
        assert!(json["connections_accepted"].is_u64(), "{json}");
        assert!(json["requests"].is_u64(), "{json}");
        let fields = json.as_object_mut().unwrap();
        fields.remove("connections_accepted");
        fields.remove("requests");
        fields.remove("polls");
        let older: ProcessSnapshot = serde_json::from_value(json).unwrap();
        assert_eq!(older.connections_accepted, 0);
        assert_eq!(older.requests, 0);
    }
}
