//! One phase of one variant: the request streams through the engine, the scenario's
//! background jobs beside them, and the telemetry scraper sampling both sides' CPU
//! and the server's own figures once per interval; summed up as a [`PhaseReport`].

use std::time::{Duration, Instant, SystemTime};

use super::plan::{jobs_plan, phase_plan};
use super::Configuration;
use crate::background_jobs;
use crate::cpu;
use crate::engine::{self, IntervalRecord, Live, Observer};
use crate::interrupt::Interrupt;
use crate::live::{Frame, LiveFeed};
use crate::progress::Progress;
use crate::report::hlog::HlogWriter;
use crate::report::{HeavySize, PhaseReport, PhaseSpec, Settings, StreamReport};
use crate::server_process::ServerProcess;
use crate::telemetry::{ScrapeTarget, Scraper, ServerTelemetry};

/// Runs the phases of one variant, one after another, on the same server.
pub(super) struct PhaseRunner<'a> {
    pub(super) settings: &'a Settings,
    /// The server's paths come from it.
    pub(super) configuration: &'a Configuration,
    /// Whether the server's telemetry is scraped.
    pub(super) telemetry: bool,
    pub(super) heavy: HeavySize,
    /// CPUs the client may use, for its CPU share.
    pub(super) client_cores: usize,
    pub(super) interrupt: &'a Interrupt,
    pub(super) observer: PhaseObserver<'a>,
}

impl PhaseRunner<'_> {
    /// Runs `phase` against `server` and reports what it measured.
    pub(super) async fn run(
        &mut self,
        phase: &PhaseSpec,
        server: &ServerProcess,
    ) -> anyhow::Result<PhaseReport> {
        let settings = self.settings;
        self.observer.start_phase(phase);
        let plan = phase_plan(
            phase,
            server.addr,
            settings,
            &self.heavy,
            self.configuration,
        );
        let jobs_plan = jobs_plan(
            phase,
            server.addr,
            settings,
            &self.heavy,
            self.configuration,
        );
        let (client_before, server_before, wall) =
            (cpu::own_cpu_time(), server.cpu_time(), Instant::now());
        let scraper = Scraper::start(
            ScrapeTarget {
                metrics: self
                    .telemetry
                    .then(|| (server.addr, crate::telemetry::scraper::METRICS_PATH.into())),
                server_pid: Some(server.pid),
                every: plan.timing.interval,
            },
            self.observer.live.as_ref().map(|(feed, _)| feed.clone()),
        );
        let requests = engine::run(&plan, &mut self.observer, self.interrupt);
        let (outcome, jobs) = match &jobs_plan {
            Some(jobs_plan) => {
                let (outcome, jobs) =
                    tokio::join!(requests, background_jobs::run(jobs_plan, self.interrupt));
                (outcome, Some(jobs))
            }
            None => (requests.await, None),
        };
        let samples = scraper.finish().await;
        let outcome = outcome?;
        let jobs = jobs.transpose()?;
        let wall = wall.elapsed();
        let client_cpu = cpu::own_cpu_time().saturating_sub(client_before);

        let mut streams: Vec<StreamReport> = outcome
            .streams
            .iter()
            .map(|s| StreamReport::from_outcome(s, outcome.measured))
            .collect();
        if let (Some(jobs), Some(jobs_plan)) = (&jobs, &jobs_plan) {
            streams.push(StreamReport::from_outcome(&jobs.submit, jobs_plan.duration));
            streams.push(StreamReport::from_outcome(
                &jobs.end_to_end,
                jobs_plan.duration,
            ));
        }
        let report = PhaseReport {
            name: phase.name.clone(),
            measured_s: outcome.measured.as_secs_f64(),
            wall_s: wall.as_secs_f64(),
            client_cpu_s: client_cpu.as_secs_f64(),
            client_cpu_share: client_cpu.as_secs_f64()
                / (wall.as_secs_f64() * self.client_cores as f64).max(f64::MIN_POSITIVE),
            server_cpu_s: server
                .cpu_time()
                .saturating_sub(server_before)
                .as_secs_f64(),
            streams,
            server_telemetry: self
                .observer
                .measured_from
                .map(|from| ServerTelemetry::from_samples(&samples, from)),
            jobs: jobs.map(|j| j.figures),
            load: phase.load,
            settled_s: None,
        };
        self.observer.position += Duration::from_secs_f64(phase.duration_s + phase.warmup_s);
        self.observer.end_phase(report.measured_s);
        Ok(report)
    }
}

/// Feeds one variant's phases to the progress bar and its interval log, with the
/// log's timestamps counting from the start of the variant's first phase.
pub(super) struct PhaseObserver<'a> {
    progress: &'a Progress,
    hlog: &'a HlogWriter,
    /// When the first phase's measurement started.
    base: Option<SystemTime>,
    /// This phase's measurement start, from `base`.
    offset: Duration,
    phase: String,
    /// Planned time of everything before this phase.
    position: Duration,
    /// When this phase's measurement started.
    measured_from: Option<SystemTime>,
    /// The live dashboard and this variant's name there, with `run --live`.
    live: Option<(LiveFeed, String)>,
    /// Measured time of the phases before this one: where this phase starts on
    /// the dashboard's axis (the phases' windows end to end, as the timeline
    /// charts lay them).
    axis_s: f64,
}

impl<'a> PhaseObserver<'a> {
    /// An observer for a variant whose phases start `position` into the run.
    pub(super) fn new(
        progress: &'a Progress,
        hlog: &'a HlogWriter,
        position: Duration,
        live: Option<(LiveFeed, String)>,
    ) -> PhaseObserver<'a> {
        PhaseObserver {
            progress,
            hlog,
            base: None,
            offset: Duration::ZERO,
            phase: String::new(),
            position,
            measured_from: None,
            live,
            axis_s: 0.0,
        }
    }

    fn start_phase(&mut self, phase: &PhaseSpec) {
        self.phase = phase.name.clone();
        self.measured_from = None;
        if let Some((feed, variant)) = &self.live {
            feed.set_axis(None);
            feed.publish(&Frame::Phase {
                variant: variant.clone(),
                phase: phase.name.clone(),
                at_s: self.axis_s,
                loaded: phase.heavy,
            });
        }
    }

    /// The phase ended after `measured_s` of measurement (its scraper has
    /// stopped; the next phase's start clears the dashboard's axis).
    fn end_phase(&mut self, measured_s: f64) {
        self.axis_s += measured_s;
    }
}

impl Observer for PhaseObserver<'_> {
    fn measuring(&mut self, since: SystemTime) {
        self.measured_from = Some(since);
        let base = *self.base.get_or_insert_with(|| {
            self.hlog.begin(since);
            since
        });
        self.offset = since.duration_since(base).unwrap_or_default();
        self.hlog.comment(format!(
            "phase {} starts at {:.3}s",
            self.phase,
            self.offset.as_secs_f64()
        ));
        if let Some((feed, _)) = &self.live {
            feed.set_axis(Some((since, self.axis_s)));
        }
    }

    fn interval(&mut self, record: &IntervalRecord<'_>) {
        self.hlog.record(record, self.offset);
        if let Some((feed, _)) = &self.live {
            feed.publish(&Frame::interval(record, self.axis_s));
        }
    }

    fn progress(&mut self, live: &Live) {
        self.progress.update_at(self.position + live.elapsed, live);
    }
}
