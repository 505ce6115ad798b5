//! The run matrix behind `loadgen run` (what `cargo run -p loadgen` does): every
//! server variant, one after another, each in its own child process, through the
//! phases of its scenario. It returns the [`RunReport`]; the `run` command writes
//! it out.
//!
//! - [`variant`]: one variant: start its server, size the heavy job, run the
//!   phases, stop it;
//! - [`phase`]: one phase: the engine, any background jobs and the telemetry
//!   scraper side by side, summed up as a [`crate::report::PhaseReport`];
//! - [`plan`]: what each phase sends.

pub mod configuration;
mod phase;
pub mod plan;
mod variant;

use std::path::PathBuf;
use std::time::SystemTime;

pub use configuration::Configuration;

use crate::environment::Environment;
use crate::interrupt::Interrupt;
use crate::jitter;
use crate::live::{replay, LiveFeed};
use crate::progress::Progress;
use crate::report::{Placement, Recommendation, Resolution, RunReport, Settings, SCHEMA_VERSION};
use crate::server_process::Launch;
use variant::VariantRunner;

/// Sleeps of the timer-jitter measurement before a run (about half a second).
const JITTER_SAMPLES: usize = 500;

/// What `run` was asked to do, checked.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub variants: Vec<Configuration>,
    pub settings: Settings,
    pub placement: Placement,
    pub launch: Launch,
    /// The run's own folder (interval logs and server logs are written there as
    /// the run goes on).
    pub dir: PathBuf,
}

/// Where a run's frames go on the live dashboard (`run --live`), and what its
/// variants are called there.
#[derive(Clone)]
pub struct LiveRun {
    pub feed: LiveFeed,
    /// With `--repeat`: the round (from 1), named in every variant's section.
    pub round: Option<usize>,
}

impl LiveRun {
    /// The dashboard's name for `variant` in this round.
    pub fn section(&self, variant: &str) -> String {
        match self.round {
            Some(round) => format!("{variant} (round {round})"),
            None => variant.to_owned(),
        }
    }
}

/// Runs every variant of `run` in turn and returns what was measured; stops early
/// (the report says so) when `interrupt` fires. With `live`, each phase's
/// intervals and each finished variant's row go to the dashboard as they come.
pub async fn run(
    run: &RunPlan,
    started: SystemTime,
    interrupt: &Interrupt,
    live: Option<&LiveRun>,
) -> RunReport {
    // The machine's timer jitter, while nothing else of the run is going on.
    let timer_jitter = tokio::task::spawn_blocking(|| jitter::measure(JITTER_SAMPLES).ok())
        .await
        .ok()
        .flatten();
    let per_variant = run.settings.planned_run(1);
    let progress = Progress::new("run", run.settings.planned_run(run.variants.len()));
    let mut variants = Vec::new();
    for (i, variant) in run.variants.iter().enumerate() {
        if interrupt.fired() {
            break;
        }
        let label = format!("[{}/{}] {}", i + 1, run.variants.len(), variant.name);
        progress.note(&format!("{label}: starting"));
        let runner = VariantRunner {
            run,
            progress: &progress,
            interrupt,
            label,
            position: per_variant * i as u32,
            live,
        };
        variants.push(runner.run(variant).await);
        if let Some(live) = live {
            // The comparison so far (this round's), ranked as the report will
            // rank it: the report of the variants run so far, lent them.
            let so_far = report_of(
                run,
                started,
                interrupt,
                std::mem::take(&mut variants),
                timer_jitter,
            );
            if let Some(latest) = so_far.variants.last() {
                live.feed.publish(&replay::comparison(&so_far, latest));
            }
            variants = so_far.variants;
        }
    }
    progress.finish();
    let mut report = report_of(run, started, interrupt, variants, timer_jitter);
    if !report.interrupted {
        report.recommendation = Some(Recommendation::derive(&report));
    }
    report
}

/// The report of `variants`, the ones run so far.
fn report_of(
    run: &RunPlan,
    started: SystemTime,
    interrupt: &Interrupt,
    variants: Vec<crate::report::VariantReport>,
    timer_jitter: Option<crate::stats::Percentiles>,
) -> RunReport {
    RunReport {
        schema_version: SCHEMA_VERSION,
        scenario: run.settings.scenario,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        interrupted: interrupt.fired(),
        environment: Environment::detect(),
        placement: run.placement.clone(),
        settings: run.settings.clone(),
        resolution: Resolution::of(&variants, timer_jitter),
        variants,
        recommendation: None,
    }
}
