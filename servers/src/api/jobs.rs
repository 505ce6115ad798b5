//! `POST /jobs`, `GET /jobs/{id}`, `GET /backlog`: background jobs. The job runs
//! in a task of its own through the variant's strategy, after the 202 has gone out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};
use crate::background::{Backlog, JobSpec, JobStore, JobView, Refusal};
use crate::strategy::Rejection;
use crate::workload::{Job, JobReport};

/// What a client is told to wait before retrying when the table is full.
const RETRY_AFTER_FULL: Duration = Duration::from_secs(1);

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Full { capacity } => ApiError::unavailable(
                format!("{capacity} background jobs are already queued or running; retry later"),
                RETRY_AFTER_FULL,
            ),
            Refusal::Kept { kept, retry_after } => ApiError::unavailable(
                format!(
                    "{kept} finished background jobs are kept for their status reads; retry once the oldest expire"
                ),
                retry_after.max(Duration::from_secs(1)),
            ),
            Refusal::Unavailable(why) => ApiError::unavailable(
                format!("the job queue is unavailable: {why}"),
                RETRY_AFTER_FULL,
            ),
        }
    }
}

/// `POST /jobs` with `{"kind": "cpu", "units": N}`, `{"kind": "io", "ms": N}` or
/// `{"kind": "upstream", "ms": N}`.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    body: Result<Json<JobSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(spec) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; send {{\"kind\": \"cpu\", \"units\": N}}, {{\"kind\": \"io\", \"ms\": N}} or {{\"kind\": \"upstream\", \"ms\": N}}",
            e.body_text()
        ))
    })?;
    spec.validate(&state.limits)
        .map_err(ApiError::bad_request)?;
    if matches!(spec, JobSpec::Upstream { .. }) {
        state.require_upstream()?;
    }
    let id = match &state.jobs {
        JobStore::Memory(table) => {
            let (id, started) = table.admit(spec)?;
            let job = Job {
                work: spec.work(),
                arrived: Instant::now(),
                started: Some(started),
                client_gone: None,
            };
            // A strategy with admission control decides now, before the 202.
            let running = match state.start_job(job) {
                Ok(running) => running,
                Err(rejection) => {
                    table.withdraw(&id);
                    return Err(rejection.into());
                }
            };
            // Timed under the job's kind: on a variant that runs jobs inline, the
            // long poll that blocks the loop is this task's, not the route's.
            let finish = finish_in_process(Arc::clone(&state), id.clone(), running);
            match state.polls() {
                Some(watch) => drop(watch.spawn(spec.kind(), finish)),
                None => drop(tokio::spawn(finish)),
            }
            id
        }
        JobStore::Redis(queue) => queue.submit(spec).await?,
    };
    let location = format!("/jobs/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!({ "id": id, "status": "queued" })),
    )
        .into_response())
}

/// Waits for an in-process background job and records how it ended.
async fn finish_in_process(
    state: Arc<AppState>,
    id: String,
    running: impl std::future::Future<Output = Result<JobReport, Rejection>>,
) {
    let outcome = match running.await {
        Ok(report) => Ok(report.to_json()),
        Err(rejection) => Err(ApiError::from(rejection).message().to_owned()),
    };
    if let JobStore::Memory(table) = &state.jobs {
        table.finish(&id, outcome);
    }
}

/// `GET /jobs/{id}`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let view = match &state.jobs {
        JobStore::Memory(table) => table.view(&id),
        JobStore::Redis(queue) => queue.view(&id).await?,
    };
    view.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no job {id:?} (never submitted here, or finished and expired)"),
        )
    })
}

/// `GET /backlog`.
pub async fn backlog(State(state): State<Arc<AppState>>) -> Result<Json<Backlog>, ApiError> {
    Ok(Json(match &state.jobs {
        JobStore::Memory(table) => table.backlog(),
        JobStore::Redis(queue) => queue.backlog().await?,
    }))
}
