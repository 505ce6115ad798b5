//! The figures of a background-job load (`POST /jobs` open loop at a fixed rate,
//! each accepted job's status polled until it is done, by
//! [`crate::background_jobs`]). What it records, per variant: submit latency (from
//! each submission's due time to the 202), the time each job waited in the server's
//! queue and ran (from the server's own timestamps), end-to-end time (from the due
//! time to the server's `finished_at`), and the jobs refused, failed and lost
//! (accepted but never finished: must be 0).
//!
//! Submit latency and end-to-end time become two streams of the phase, `submit` and
//! `jobs`, so percentiles, histograms, spectra and thresholds treat them like any
//! other stream (`rayon.jobs.loaded.p99 < 1s`).

use serde::{Deserialize, Serialize};

use crate::stats::Percentiles;

/// The job counts and server-side times of one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobsFigures {
    /// Jobs asked for per second.
    pub rate: f64,
    /// The request body of every submission.
    pub body: String,
    pub submitted: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Answered 503 (the server's queue was full).
    pub rejected: u64,
    /// Submissions that failed otherwise (another status, no answer).
    pub submit_errors: u64,
    pub done: u64,
    pub failed: u64,
    /// Accepted, and neither done nor failed when the run stopped waiting.
    pub lost: u64,
    /// Of the lost: jobs whose last status read was a 404, the server answering
    /// that it does not know them (e.g. another process of a multi-worker server
    /// holds them).
    #[serde(default)]
    pub not_found: u64,
    /// From `queued_at` to `started_at` (server clock), done jobs.
    pub queue_wait: Percentiles,
    /// From `started_at` to `finished_at`.
    pub run: Percentiles,
    /// How long the run waited for the last jobs after submissions ended, in s.
    pub drain_s: f64,
}
