//! `GET /metrics` (Prometheus text) and `GET /metrics.json` (the same figures for
//! the load generator). Both are received and answered by the event loop like
//! any request, so a blocked server is slow to answer them too, which is itself
//! worth knowing; the figures themselves are built on the telemetry's own
//! reporter thread (see [`crate::telemetry::reporter`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{ApiError, AppState};
use crate::telemetry::exposition;
use crate::telemetry::reporter::Refused;

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "telemetry is off on this server (started with --no-telemetry)",
    )
}

fn refused(why: Refused) -> ApiError {
    match why {
        Refused::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many scrapes are waiting for the telemetry already; try again",
        ),
        Refused::Failed => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "building the telemetry report failed (see the server's log)",
        ),
    }
}

/// `GET /metrics`: every process's figures in Prometheus text format.
pub async fn prometheus(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let telemetry = state.telemetry.as_ref().ok_or_else(disabled)?;
    let variant = state.variant.name();
    let body = telemetry
        .off_loop(move |t| {
            let report = t.report(variant);
            exposition::render(&report.variant, &report.processes)
        })
        .await
        .map_err(refused)?;
    Ok(([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response())
}

/// `GET /metrics.json`: the same figures as JSON, histograms included.
pub async fn json(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let telemetry = state.telemetry.as_ref().ok_or_else(disabled)?;
    let variant = state.variant.name();
    let report = telemetry
        .off_loop(move |t| t.report(variant))
        .await
        .map_err(refused)?;
    Ok(Json(report).into_response())
}
