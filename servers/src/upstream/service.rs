//! `servers upstream`: the slow external API that `GET /work/upstream` calls.
//!
//! `GET /delay?ms=N` answers `{"ms": N}` after N milliseconds (the `--delay`
//! default when `ms` is absent). A wait is a timer on one `current_thread` event
//! loop, not a thread, so thousands of calls wait at once for almost no CPU: how
//! long a variant's call takes is the variant's doing, not the upstream's.
//! `GET /stats` tells how many calls are waiting now, the most that ever waited at
//! once, and how many were answered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::shutdown::Shutdown;

/// Longest wait one call may ask for.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Settings of `servers upstream`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub addr: SocketAddr,
    /// How long a call without `ms` waits.
    pub delay: Duration,
    /// How long calls still waiting may take after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
}

/// Calls waiting and answered, for `/stats`.
#[derive(Default)]
struct Counters {
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    served: AtomicU64,
}

/// Counts one call as waiting until dropped.
struct Waiting<'a>(&'a Counters);

impl<'a> Waiting<'a> {
    fn new(counters: &'a Counters) -> Self {
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        Waiting(counters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct ServiceState {
    default_delay: Duration,
    counters: Counters,
}

async fn delay(
    State(state): State<Arc<ServiceState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let wait = match query.get("ms") {
        None => state.default_delay,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(ms) if ms <= MAX_DELAY_MS => Duration::from_millis(ms),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`ms` must be a whole number from 0 to {MAX_DELAY_MS}, got {raw:?}"
                )))
            }
        },
    };
    let _waiting = Waiting::new(&state.counters);
    tokio::time::sleep(wait).await;
    state.counters.served.fetch_add(1, Ordering::Relaxed);
    Ok(Json(json!({ "ms": wait.as_millis() as u64 })))
}

async fn stats(State(state): State<Arc<ServiceState>>) -> Json<Value> {
    let c = &state.counters;
    Json(json!({
        "in_flight": c.in_flight.load(Ordering::Relaxed),
        "peak_in_flight": c.peak_in_flight.load(Ordering::Relaxed),
        "served": c.served.load(Ordering::Relaxed),
        "default_delay_ms": state.default_delay.as_millis() as u64,
    }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such path; try /delay?ms=N, /stats or /health",
    )
}

/// The service's routes.
fn router(default_delay: Duration) -> Router {
    let state = Arc::new(ServiceState {
        default_delay,
        counters: Counters::default(),
    });
    Router::new()
        .route("/delay", get(delay))
        .route("/stats", get(stats))
        .route("/health", get(|| async { "ok\n" }))
        .fallback(not_found)
        .with_state(state)
}

/// Serves until SIGINT/SIGTERM; prints `listening on http://ADDR` first, as the
/// variants do.
pub fn run(config: UpstreamConfig) -> anyhow::Result<()> {
    let std_listener = crate::listener::listen(config.addr, false)
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let local = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let shutdown = Shutdown::install()?;
        crate::serve::announce(local)?;
        tracing::info!(delay = ?config.delay, "upstream serving");
        let server = axum::serve(listener, router(config.delay))
            .with_graceful_shutdown(shutdown.clone().requested());
        tokio::select! {
            served = server => served.context("upstream failed")?,
            () = shutdown.deadline(config.shutdown_grace) => {}
        }
        anyhow::Ok(())
    })
}
