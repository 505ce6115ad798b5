//! One variant of a run: start its server as a child process, read `/info`, size
//! the heavy job, run every phase (the steps of the load sweep in increasing
//! order, each after the server has finished what the last one left it, and none
//! after a step whose probe got no answer at all), and stop the server, whatever
//! happened. A variant that fails is reported with its error; the run goes on with
//! the next.

use std::time::Duration;

use anyhow::Context;

use super::configuration::Configuration;
use super::phase::{PhaseObserver, PhaseRunner};
use super::{LiveRun, RunPlan};
use crate::cpu;
use crate::external::sizing;
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::report::hlog::HlogWriter;
use crate::report::settings::SETTLE_CAP;
use crate::report::{Figures, HeavySize, Sweep, VariantReport, VariantStatus};
use crate::server_process::ServerProcess;

/// How often the server's CPU is sampled while it settles: long enough for the
/// 10 ms ticks of /proc to measure a tenth of a core.
const SETTLE_SAMPLE: Duration = Duration::from_millis(250);
/// Server CPU at most this share of one core counts as quiet.
const QUIET: f64 = 0.1;

/// Waits until the server's processes use less than [`QUIET`] of a core over a
/// sample and, where it counts them, have no heavy job running or queued (it has
/// finished the work a step left it: CPU work shows in its CPU time, work that
/// waits, such as upstream calls, only in its counters; a server with telemetry
/// that does not answer for them is not settled), at most `cap`; returns how long
/// it waited.
async fn settle(server: &ServerProcess, telemetry: bool, cap: Duration) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let before = server.cpu_time();
        tokio::time::sleep(SETTLE_SAMPLE).await;
        let used = server.cpu_time().saturating_sub(before);
        let quiet = used.as_secs_f64() <= QUIET * SETTLE_SAMPLE.as_secs_f64()
            && (!telemetry || server.jobs_busy().await == Some(0));
        if quiet || started.elapsed() >= cap {
            return started.elapsed();
        }
    }
}

/// What running one variant needs.
pub(super) struct VariantRunner<'a> {
    pub(super) run: &'a RunPlan,
    pub(super) progress: &'a Progress,
    pub(super) interrupt: &'a Interrupt,
    /// `[i/n] name`, for the progress line.
    pub(super) label: String,
    /// Planned time of the variants before this one.
    pub(super) position: Duration,
    /// The live dashboard, with `run --live`.
    pub(super) live: Option<&'a LiveRun>,
}

impl VariantRunner<'_> {
    /// Runs `variant` through every phase; never fails: what went wrong is in the
    /// report's status and error.
    pub(super) async fn run(&self, variant: &Configuration) -> VariantReport {
        let mut report = VariantReport {
            name: variant.name.clone(),
            summary: variant.summary(),
            mirrors: variant.mirrors(),
            status: VariantStatus::Ok,
            error: None,
            server: None,
            heavy: None,
            phases: Vec::new(),
            figures: None,
            verdict: None,
            sweep: None,
            skipped_steps: Vec::new(),
        };
        let log = self.run.dir.join(format!("{}.server.log", variant.name));
        let mut server = match ServerProcess::start(variant, &self.run.launch, &log).await {
            Ok(server) => server,
            Err(e) => {
                report.status = VariantStatus::Failed;
                report.error = Some(format!("did not start: {e:#}"));
                self.progress
                    .note(&format!("{}: failed to start: {e:#}", self.label));
                return report;
            }
        };
        if let Err(e) = self.measure(variant, &mut server, &mut report).await {
            report.status = if self.interrupt.fired() {
                VariantStatus::Interrupted
            } else {
                VariantStatus::Failed
            };
            self.progress.note(&format!("{}: {e:#}", self.label));
            report.error = Some(format!("{e:#}"));
        } else if self.interrupt.fired() {
            report.status = VariantStatus::Interrupted;
        }
        server.stop().await;
        report
    }

    /// Sizes the heavy job and runs the phases into `report`.
    async fn measure(
        &self,
        variant: &Configuration,
        server: &mut ServerProcess,
        report: &mut VariantReport,
    ) -> anyhow::Result<()> {
        let settings = &self.run.settings;
        let heavy = match variant.as_external() {
            None => {
                let info = server.info().await?;
                let heavy = HeavySize::from_info(&info, settings)?;
                report.server = Some(info);
                heavy
            }
            Some(external) => {
                self.progress
                    .set_label(format!("{} sizing the job", self.label));
                let cores = crate::external::cores(&self.run.launch);
                let heavy = sizing::measure(external, server.addr, settings, cores)
                    .await
                    .context("sizing the heavy job")?;
                report.server = Some(serde_json::json!({
                    "external": true,
                    "command": external.command,
                    "cwd": external.cwd,
                    "env": external.env,
                    "cores": cores,
                }));
                heavy
            }
        };
        report.heavy = Some(heavy);
        // Only the reference servers answer for their own figures.
        let telemetry = self.run.launch.telemetry && server.is_builtin();
        let name = report.name.clone();
        let hlog = HlogWriter::create(
            &self.run.dir.join(format!("{name}.hlog")),
            &format!("variant {name}"),
        )?;
        let client_cores = self
            .run
            .placement
            .client_cpus
            .as_ref()
            .map_or_else(|| cpu::online_cpus().len(), Vec::len);
        let mut phases = PhaseRunner {
            settings,
            configuration: variant,
            telemetry,
            heavy,
            client_cores,
            interrupt: self.interrupt,
            observer: PhaseObserver::new(
                self.progress,
                &hlog,
                self.position,
                self.live.map(|l| (l.feed.clone(), l.section(&name))),
            ),
        };
        let mut frozen = false;
        let mut after_step = false;
        for phase in &settings.phases {
            if self.interrupt.fired() {
                break;
            }
            if phase.load.is_some() && frozen {
                report.skipped_steps.push(phase.name.clone());
                continue;
            }
            // Between steps, the server first finishes what the last one left it.
            let settled = if phase.load.is_some() && after_step {
                Some(settle(server, telemetry, SETTLE_CAP).await)
            } else {
                None
            };
            self.progress
                .set_label(format!("{} {}", self.label, phase.name));
            let mut measured = phases.run(phase, server).await?;
            measured.settled_s = settled.map(|d| d.as_secs_f64());
            // A step in which not one probe was answered: the server is frozen, and
            // heavier steps would only burn minutes.
            frozen |= phase.load.is_some()
                && measured
                    .stream("probe")
                    .is_some_and(|p| p.throughput == 0.0);
            after_step = phase.load.is_some();
            report.phases.push(measured);
            if let Some(status) = server.exited() {
                hlog.finish()?;
                anyhow::bail!(
                    "the server exited during the {} phase ({status})",
                    phase.name
                );
            }
        }
        hlog.finish()?;
        if !self.interrupt.fired() {
            report.figures = Figures::derive(&report.phases, &heavy);
            report.verdict = report.judge(settings.objective_ms);
            report.sweep = Sweep::derive(report, settings);
        }
        Ok(())
    }
}
