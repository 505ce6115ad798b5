//! The endpoint handlers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde_json::{json, Value};

use super::{params, ApiError, AppState};
use crate::limits::Size;
use crate::workload::{Job, Work, ROUNDS_PER_UNIT};

type QueryResult = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The probe: no work, a tiny body (after `--inject-delay`, if given: a sleep,
/// which blocks nothing).
pub async fn health(State(state): State<Arc<AppState>>) -> &'static str {
    if let Some(delay) = state.inject_delay {
        tokio::time::sleep(delay).await;
    }
    "ok\n"
}

/// `GET /work/cpu?units=N`: N units of the kernel through the variant's strategy.
pub async fn work_cpu(
    State(state): State<Arc<AppState>>,
    query: QueryResult,
) -> Result<Json<Value>, ApiError> {
    let arrived = Instant::now();
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let units = params::bounded(&query, Size::Units, &state.limits)?;
    let report = state
        .run_job(Job {
            work: Work::Cpu { units },
            arrived,
            started: None,
            client_gone: None,
        })
        .await?;
    let mut body = report.to_json();
    body["units"] = json!(units);
    Ok(Json(body))
}

/// `GET /work/io?ms=N`: a blocking N ms call through the variant's strategy.
pub async fn work_io(
    State(state): State<Arc<AppState>>,
    query: QueryResult,
) -> Result<Json<Value>, ApiError> {
    let arrived = Instant::now();
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ms = params::bounded(&query, Size::Ms, &state.limits)?;
    let report = state
        .run_job(Job {
            work: Work::Io {
                duration: Duration::from_millis(ms),
            },
            arrived,
            started: None,
            client_gone: None,
        })
        .await?;
    Ok(Json(json!({
        "ms": ms,
        "queue_us": report.queued.as_micros() as u64,
        "compute_us": report.computed.as_micros() as u64,
    })))
}

/// `GET /work/upstream?ms=N`: one call to the upstream that waits N ms there, made
/// through the variant's strategy (a synchronous client on the thread the strategy
/// runs work on; an awaited async client on `async-io`). 502 when the call fails,
/// 501 when the server has no `--upstream`.
pub async fn work_upstream(
    State(state): State<Arc<AppState>>,
    query: QueryResult,
) -> Result<Json<Value>, ApiError> {
    let arrived = Instant::now();
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ms = params::bounded(&query, Size::Ms, &state.limits)?;
    state.require_upstream()?;
    let report = state
        .run_job(Job {
            work: Work::Upstream {
                delay: Duration::from_millis(ms),
            },
            arrived,
            started: None,
            client_gone: None,
        })
        .await?;
    Ok(Json(json!({
        "ms": ms,
        "queue_us": report.queued.as_micros() as u64,
        "call_us": report.computed.as_micros() as u64,
    })))
}

/// `GET /info`: what this server is and how expensive a unit of work is here.
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "variant": state.variant.name(),
        "summary": state.variant.summary(),
        "workers": state.workers,
        // The key predates the name `process_index`; kept because reports store
        // `/info` as it is.
        "worker_index": state.process_index,
        "cores": state.cores,
        "pid": std::process::id(),
        "build": state.build,
        "ns_per_unit": state.calibration.ns_per_unit,
        "rounds_per_unit": ROUNDS_PER_UNIT,
        "max_units": state.limits.max_units,
        "max_io_ms": state.limits.max_io_ms,
        "upstream": crate::upstream::client::configured(),
        "strategy_settings": state.strategy_settings,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Any path not listed above.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such path {}; try /health, /work/cpu?units=N, /work/io?ms=N, /work/upstream?ms=N, /info or /metrics",
            uri.path()
        ),
    )
}

/// A known path with a method other than GET.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this path does not serve that method: POST /jobs, GET everything else",
    )
}
