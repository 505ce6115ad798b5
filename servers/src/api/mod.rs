//! The HTTP interface, identical on every variant: `/health`, `/work/cpu`,
//! `/work/io`, `/work/upstream`, `/jobs`, `/backlog`, `/info`, `/metrics`, `/metrics.json`, and JSON
//! errors for everything else.

mod error;
mod handlers;
mod jobs;
mod metrics;
mod params;

pub use error::ApiError;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;

use crate::background::JobStore;
use crate::config::BuildProfile;
use crate::limits::Limits;
use crate::strategy::{Rejection, Strategy};
use crate::telemetry::{traffic, Telemetry, JOBS};
use crate::variant::Variant;
use crate::workload::{Calibration, ClientWatch, Job, JobReport};

/// Largest request body accepted; no endpoint needs one, so this only guards memory.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything a handler needs, shared by all requests.
pub struct AppState {
    pub variant: Variant,
    pub strategy: Box<dyn Strategy>,
    pub calibration: Calibration,
    pub limits: Limits,
    /// Runtime worker threads, or processes for the multi-worker variants.
    pub workers: usize,
    pub cores: usize,
    /// How long `/health` waits before answering (`--inject-delay`).
    pub inject_delay: Option<std::time::Duration>,
    /// Index of this process within a multi-worker (or multi-worker-reuseport) group.
    pub process_index: Option<usize>,
    pub build: BuildProfile,
    /// The strategy's own settings, as `/info` reports them (bounded-pool's budget
    /// and priority), so a report records which configuration it measured.
    pub strategy_settings: serde_json::Value,
    /// Background jobs (`POST /jobs`).
    pub jobs: JobStore,
    /// `None` with `--no-telemetry`.
    pub telemetry: Option<Arc<Telemetry>>,
    /// Whether queued jobs whose client has gone are skipped (`--skip-abandoned`).
    pub skip_abandoned: bool,
}

impl AppState {
    /// Hands `job` to the variant's strategy, keeping the job counters: refused
    /// at once where the strategy decides at once (admission control), otherwise
    /// the future of its outcome, a failed call becoming [`Rejection::Failed`].
    pub fn start_job(
        &self,
        job: Job,
    ) -> Result<
        impl std::future::Future<Output = Result<JobReport, Rejection>> + Send + 'static,
        Rejection,
    > {
        let in_flight = JOBS.accept();
        let running = self.strategy.try_submit(job).inspect_err(count_refusal)?;
        Ok(async move {
            let _in_flight = in_flight;
            let result = match running.await {
                Ok(JobReport {
                    error: Some(error), ..
                }) => Err(Rejection::Failed(error)),
                other => other,
            };
            match &result {
                Ok(_) => JOBS.completed(),
                Err(rejection) => count_refusal(rejection),
            }
            result
        })
    }

    /// Runs `job` through the variant's strategy to its end. With
    /// `--skip-abandoned`, a job still queued when its client goes (this future
    /// dropped) is skipped by the thread that would have run it.
    pub async fn run_job(&self, mut job: Job) -> Result<JobReport, Rejection> {
        if !self.skip_abandoned {
            return self.start_job(job)?.await;
        }
        let (watch, gone) = ClientWatch::new();
        job.client_gone = Some(gone);
        let result = self.start_job(job)?.await;
        watch.stayed();
        result
    }
}

/// Counts a refusal for a full queue (not a lost worker or a failed call).
fn count_refusal(rejection: &Rejection) {
    if let Rejection::QueueFull { .. } = rejection {
        JOBS.rejected();
    }
}

impl AppState {
    /// 501 unless this server has an upstream to call (`--upstream`).
    pub fn require_upstream(&self) -> Result<(), ApiError> {
        if crate::upstream::client::configured() {
            return Ok(());
        }
        Err(ApiError::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "this server has no upstream: start it with --upstream http://127.0.0.1:PORT (`servers upstream` is one)",
        ))
    }
}

impl AppState {
    /// The watch timing every poll of routes and job tasks (`None` without
    /// telemetry or with `--no-poll-timing`).
    pub fn polls(&self) -> Option<&Arc<pollwatch::PollWatch>> {
        self.telemetry.as_ref()?.polls()
    }
}

/// The router serving every endpoint; with poll timing on, every poll of every
/// request's future is timed under the route it matched.
pub fn router(state: Arc<AppState>) -> Router {
    let polls = state.polls().cloned();
    let router = Router::new()
        .route("/health", get(handlers::health))
        .route("/work/cpu", get(handlers::work_cpu))
        .route("/work/io", get(handlers::work_io))
        .route("/work/upstream", get(handlers::work_upstream))
        .route("/info", get(handlers::info))
        .route("/jobs", post(jobs::submit))
        .route("/jobs/{id}", get(jobs::status))
        .route("/backlog", get(jobs::backlog))
        .route("/metrics", get(metrics::prometheus))
        .route("/metrics.json", get(metrics::json))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::from_fn(traffic::count_request))
        .with_state(state);
    match polls {
        Some(watch) => router.layer(watch.layer()),
        None => router,
    }
}
