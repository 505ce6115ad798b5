//! An app with two planted mistakes, the kind this project is about, for
//! `loadgen bench --scrape` to find by name:
//!
//! - `GET /report` builds its answer with CPU work inside the `async fn`: every
//!   request blocks its worker thread for [`REPORT_WORK`];
//! - `POST /profile` answers `202` at once, and the background task it spawns,
//!   `rebuild-profile`, does [`PROFILE_WORK`] of CPU work on the event loop
//!   (the question this project grew from: the request was answered, and the
//!   server still stopped responding).
//!
//! `GET /search` waits [`SEARCH_WAIT`] the right way (an `.await`), and
//! `GET /health` answers at once: neither should show. `GET /metrics` is the
//! poll timings in Prometheus text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use pollwatch::PollWatch;

/// CPU time of one `GET /report`, spent inside the handler.
pub const REPORT_WORK: Duration = Duration::from_millis(30);
/// CPU time of the background task one `POST /profile` leaves behind.
pub const PROFILE_WORK: Duration = Duration::from_millis(80);
/// How long `GET /search` waits, without blocking anything.
pub const SEARCH_WAIT: Duration = Duration::from_millis(30);

/// Keeps the CPU busy for `length`: a stand-in for parsing, hashing, rendering.
pub fn cpu_work(length: Duration) -> u64 {
    let started = Instant::now();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while started.elapsed() < length {
        for _ in 0..1_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
    }
    state
}

/// The app, every route timed by `watch` (the one line that adds it is the
/// `.layer(...)`; background tasks go through `watch.spawn`).
pub fn app(watch: Arc<PollWatch>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/report", get(report))
        .route("/search", get(search))
        .route("/profile", post(profile))
        .route("/metrics", get(metrics))
        .layer(watch.layer())
        .with_state(watch)
}

/// Planted mistake 1: CPU work in an `async fn`.
async fn report() -> String {
    format!("report {:x}\n", cpu_work(REPORT_WORK))
}

/// Waits properly: the worker thread runs other requests meanwhile.
async fn search() -> &'static str {
    tokio::time::sleep(SEARCH_WAIT).await;
    "no results\n"
}

/// Planted mistake 2: answers at once, then blocks the loop in the background.
async fn profile(State(watch): State<Arc<PollWatch>>) -> impl IntoResponse {
    watch.spawn("rebuild-profile", async {
        cpu_work(PROFILE_WORK);
    });
    (StatusCode::ACCEPTED, "profile update queued\n")
}

/// The poll timings, built on the blocking pool: copying the histograms takes
/// about a millisecond, which on the event loop would be a long poll itself.
async fn metrics(State(watch): State<Arc<PollWatch>>) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || watch.prometheus(&[]))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
