//! `GET /metrics` (Prometheus text) and `GET /metrics.json` (the same figures for
//! the load generator). Both are served by the event loop like any request, so a
//! blocked server is slow to answer them too, which is itself worth knowing.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{ApiError, AppState};
use crate::telemetry::exposition;

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "telemetry is off on this server (started with --no-telemetry)",
    )
}

/// `GET /metrics`: every process's figures in Prometheus text format.
pub async fn prometheus(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let telemetry = state.telemetry.as_ref().ok_or_else(disabled)?;
    let report = telemetry.report(state.variant.name());
    let body = exposition::render(&report.variant, &report.processes);
    Ok(([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response())
}

/// `GET /metrics.json`: the same figures as JSON, histograms included.
pub async fn json(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let telemetry = state.telemetry.as_ref().ok_or_else(disabled)?;
    Ok(Json(telemetry.report(state.variant.name())).into_response())
}
