//! Counts of heavy jobs, whatever strategy runs them: accepted and not finished,
//! actually running, finished, refused. Queued is the difference, so one set of
//! counters describes a blocking pool, rayon's queue and the sequential queue alike.
//!
//! The counters are process-wide: a process serves exactly one variant, and
//! [`crate::workload::Job::run`], the one place every strategy's work passes
//! through, can count running jobs without being handed anything.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The process's job counters.
pub static JOBS: JobGauges = JobGauges::new();

/// Counters of heavy jobs; cheap enough (relaxed atomics) to be always on.
pub struct JobGauges {
    in_flight: AtomicU64,
    running: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    skipped_abandoned: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFigures {
    /// Accepted by a handler and not finished (queued plus running).
    pub in_flight: u64,
    /// Doing work on some thread now.
    pub running: u64,
    /// Accepted and waiting for a thread.
    pub queued: u64,
    /// Finished since the process started.
    pub completed: u64,
    /// Refused (queue full) since the process started.
    pub rejected: u64,
    /// Not run because the client had gone before a thread took the job
    /// (`--skip-abandoned`); absent (0) from servers older than the field.
    #[serde(default)]
    pub skipped_abandoned: u64,
}

/// Marks one job as accepted until dropped (also when the client goes away and the
/// handler's future is dropped).
pub struct InFlight(&'static JobGauges);

/// Marks one job as running until dropped.
pub struct Running(&'static JobGauges);

impl JobGauges {
    const fn new() -> JobGauges {
        JobGauges {
            in_flight: AtomicU64::new(0),
            running: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            skipped_abandoned: AtomicU64::new(0),
        }
    }

    /// A handler accepted a job.
    pub fn accept(&'static self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// A thread starts the work of a job.
    pub fn start(&'static self) -> Running {
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(self)
    }

    /// A job finished and its result went back to the handler.
    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// A job was refused because the strategy's queue was full.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A queued job was not run: its client had gone before a thread took it.
    pub fn skipped_abandoned(&self) {
        self.skipped_abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now. A job whose client hung up can still be running (a started
    /// blocking job cannot be stopped) after it stopped being in flight, so queued
    /// is clamped at zero.
    pub fn figures(&self) -> JobFigures {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let running = self.running.load(Ordering::Relaxed);
        JobFigures {
            in_flight,
            running,
            queued: in_flight.saturating_sub(running),
            completed: self.completed.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            skipped_abandoned: self.skipped_abandoned.load(Ordering::Relaxed),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}
