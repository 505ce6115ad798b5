//! Which code blocked a tokio event loop, on stable Rust.
//!
//! A future that blocks (a CPU loop, `std::thread::sleep`, a synchronous call)
//! does it inside one `poll`, and while it runs, nothing else queued on that
//! worker thread runs. Timing every poll of each request's future and of each
//! named background task's future catches the culprit by name, for two clock
//! reads per poll and no `--cfg tokio_unstable`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use pollwatch::PollWatch;
//!
//! # async fn demo() {
//! let watch = PollWatch::new();
//! let app: Router = Router::new()
//!     .route("/report", get(|| async { "ok" }))
//!     // Every poll of every route's future, by axum's matched path.
//!     .layer(watch.layer());
//! // A background task, timed under its name.
//! watch.spawn("refresh-cache", async { /* … */ });
//! // Prometheus text for a `/metrics` endpoint.
//! let text = watch.prometheus(&[]);
//! # }
//! ```
//!
//! What is kept per route and per task: a poll-duration HdrHistogram, the longest
//! poll and when it ended, the polls over a threshold (1 ms unless told otherwise;
//! tokio's guidance is 10–100 µs between awaits), and a bounded list of the most
//! recent long polls with their times. A long poll is also logged as a `tracing`
//! warning, at most one a second.

mod layer;
mod registry;
mod timed;

pub use layer::{PollTiming, PollTimingLayer, UNMATCHED};
pub mod prometheus;
pub use prometheus::render as render_prometheus;
pub use registry::{
    new_histogram, LongPoll, PollWatch, Snapshot, Source, SourceKind, SourceSnapshot,
    DEFAULT_THRESHOLD, RECENT_LONG_POLLS,
};
pub use timed::Timed;
