//! `GET /metrics` (Prometheus text) and `GET /metrics.json` (the same figures for
//! the load generator). Both are served by the event loop like any request, so a
//! blocked server is slow to answer them too, which is itself worth knowing.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{ApiError, AppState};
use crate::telemetry::{exposition, MetricsReport};

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "telemetry is off on this server (started with --no-telemetry)",
    )
}

/// Every process's figures. Copying and encoding the histograms takes about a
/// millisecond, so it runs on the blocking pool: a scrape must not be the long
/// poll it reports.
async fn report(state: &AppState) -> Result<MetricsReport, ApiError> {
    let telemetry = Arc::clone(state.telemetry.as_ref().ok_or_else(disabled)?);
    let variant = state.variant.name();
    tokio::task::spawn_blocking(move || telemetry.report(variant))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /metrics`: every process's figures in Prometheus text format.
pub async fn prometheus(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let report = report(&state).await?;
    let body =
        tokio::task::spawn_blocking(move || exposition::render(&report.variant, &report.processes))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response())
}

/// `GET /metrics.json`: the same figures as JSON, histograms included.
pub async fn json(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    Ok(Json(report(&state).await?).into_response())
}
