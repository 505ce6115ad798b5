//! `loadgen run` (what `cargo run -p loadgen` does): every server variant, one after
//! another, each in its own child process, through the responsiveness scenario; the
//! report, the comparison table and per-variant histograms land in
//! `results/runs/<UTC timestamp>/`, with `results/runs/latest` pointing at it.

mod report;
mod responsiveness;
mod server_process;

pub use report::{
    Figures, MatrixReport, PhaseReport, Placement, Resolution, VariantReport, SCHEMA_VERSION,
    TABLE_HEADER,
};
pub use responsiveness::{JobPlan, PhaseSpec, Settings};
pub use server_process::{redis_available, Launch, ServerProcess};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use servers::variant::Variant;

use crate::cli::RunArgs;
use crate::cpu;
use crate::engine::{self, IntervalRecord, Live, Observer};
use crate::environment::Environment;
use crate::exit::{CommandError, EXIT_INTERRUPTED};
use crate::files::write_atomically;
use crate::interrupt::Interrupt;
use crate::jobs::{self, driver::JobsPlan};
use crate::progress::Progress;
use crate::report::hgrm::percentile_table;
use crate::report::hlog::HlogWriter;
use crate::report::StreamReport;
use crate::stats::decode;
use crate::telemetry::{ScrapeTarget, Scraper, ServerTelemetry};

/// Connections submitting background jobs in the jobs scenario.
const JOB_CONNECTIONS: usize = 16;

/// Start-up, calibration and drains per variant, for the time estimate.
const OVERHEAD_PER_VARIANT: Duration = Duration::from_secs(2);

/// What `run` was asked to do, checked.
struct Job {
    variants: Vec<Variant>,
    settings: Settings,
    placement: Placement,
    launch: Launch,
    out: PathBuf,
}

fn prepare(args: &RunArgs) -> Result<Job, CommandError> {
    let variants = if args.variant.is_empty() {
        let redis = redis_available();
        if !redis {
            eprintln!(
                "note: redis-queue skipped: redis-server is not installed (Debian package redis-server; .ci/run installs it)"
            );
        }
        Variant::ALL
            .into_iter()
            .filter(|v| !v.needs_redis() || redis)
            .collect()
    } else {
        args.variant
            .iter()
            .map(|name| {
                Variant::from_name(name.trim()).ok_or_else(|| {
                    let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
                    CommandError::Usage(format!(
                        "unknown variant {name:?}; choose from {}",
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let mut settings = Settings::new(args.quick);
    for (phase, value) in [
        ("idle", args.idle),
        ("loaded", args.loaded),
        ("recovery", args.recovery),
    ] {
        if let Some(d) = value {
            settings.set_duration(phase, d);
        }
    }
    settings.job_ms = args.job.as_secs_f64() * 1e3;
    settings.overload = args.overload;
    settings.scenario = args.scenario.clone();
    settings.job_load = args.job_load;
    settings.probe_rate = args.probe_rate;
    settings.probe_connections = args.probe_connections;
    settings.heavy_connections = args.heavy_connections;
    settings.validate().map_err(CommandError::Usage)?;
    let cpus = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                cpu::parse_cpu_list(t).map_err(|e| CommandError::Usage(format!("{flag}: {e}")))
            })
            .transpose()
    };
    let placement = Placement {
        server_cpus: cpus("--server-cpus", &args.server_cpus)?,
        client_cpus: cpus("--client-cpus", &args.client_cpus)?,
    };
    if let (Some(s), Some(c)) = (&placement.server_cpus, &placement.client_cpus) {
        if s.iter().any(|x| c.contains(x)) {
            return Err(CommandError::Usage(
                "--server-cpus and --client-cpus overlap; give them disjoint CPU lists".into(),
            ));
        }
    }
    if args.workers == Some(0) {
        return Err(CommandError::Usage("--workers must be at least 1".into()));
    }
    Ok(Job {
        variants,
        launch: Launch {
            cpus: placement.server_cpus.clone(),
            workers: args.workers,
            telemetry: !args.no_telemetry,
        },
        settings,
        placement,
        out: args.out.clone(),
    })
}

/// Runs `loadgen run`.
pub fn run(args: RunArgs) -> Result<ExitCode, CommandError> {
    let job = prepare(&args)?;
    // Read the thresholds before spending minutes on the run.
    let thresholds = match &args.check {
        Some(file) => Some(crate::check::load_thresholds(file)?),
        None => None,
    };
    if let Some(cpus) = &job.placement.client_cpus {
        // Before the runtime exists, so every thread it starts inherits the mask.
        cpu::pin_current_thread(cpus)
            .map_err(|e| anyhow::anyhow!("cannot pin loadgen to {cpus:?}: {e}"))?;
    }
    let started = SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(started)
        .to_string()
        .replace(['-', ':'], "");
    let dir = job.out.join(&stamp);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    // block_on polls the matrix on this (main) thread, which lives as long as the
    // process: the servers' PDEATHSIG is tied to the thread that started them.
    let report = runtime.block_on(run_matrix(&job, &dir, started))?;

    let mut json = serde_json::to_vec_pretty(&report).map_err(anyhow::Error::from)?;
    json.push(b'\n');
    write_atomically(&dir.join("report.json"), &json).map_err(anyhow::Error::from)?;
    let summary = report.summary_markdown();
    write_atomically(&dir.join("summary.md"), summary.as_bytes()).map_err(anyhow::Error::from)?;
    // Charts are drawn from the written report, as `loadgen plot` would; a
    // failure here costs the pictures, not the measurements.
    if let Err(e) = crate::charts::render_matrix(&report, &dir) {
        eprintln!("warning: charts not drawn: {e:#}");
    }
    point_latest_at(&job.out, &stamp);

    println!("\n{summary}");
    println!("results: {}", dir.display());
    let mut failed_check = false;
    if let Some(expressions) = &thresholds {
        let checked = crate::check::Report::Run(report.clone());
        let outcomes = crate::check::evaluate_all(&checked, expressions)?;
        println!("\nthresholds:\n{}", crate::check::lines(&outcomes));
        write_atomically(
            &dir.join("check.md"),
            crate::check::markdown(&outcomes).as_bytes(),
        )
        .map_err(anyhow::Error::from)?;
        failed_check = outcomes.iter().any(|o| !o.passed);
    }
    Ok(if report.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if report.variants.iter().any(|v| v.status != "ok") {
        ExitCode::FAILURE
    } else if failed_check {
        ExitCode::from(crate::exit::EXIT_THRESHOLD_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Makes `out/latest` a symbolic link to the run folder `stamp`, replacing the old
/// link in one rename. A failure only costs the convenience link.
fn point_latest_at(out: &Path, stamp: &str) {
    let temporary = out.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let linked = std::os::unix::fs::symlink(stamp, &temporary)
        .and_then(|()| std::fs::rename(&temporary, out.join("latest")));
    if let Err(e) = linked {
        eprintln!(
            "warning: cannot update {}: {e}",
            out.join("latest").display()
        );
    }
}

async fn run_matrix(
    job: &Job,
    dir: &Path,
    started: SystemTime,
) -> Result<MatrixReport, CommandError> {
    let interrupt = Interrupt::install().map_err(anyhow::Error::from)?;
    let per_variant = job.settings.planned_per_variant() + OVERHEAD_PER_VARIANT;
    let progress = Progress::new("run", per_variant * job.variants.len() as u32);
    let mut variants = Vec::new();
    for (i, &variant) in job.variants.iter().enumerate() {
        if interrupt.fired() {
            break;
        }
        let position = per_variant * i as u32;
        let label = format!("[{}/{}] {}", i + 1, job.variants.len(), variant);
        progress.note(&format!("{label}: starting"));
        let ctx = VariantContext {
            job,
            dir,
            progress: &progress,
            interrupt: &interrupt,
            label,
            position,
        };
        variants.push(ctx.run(variant).await);
    }
    progress.finish();
    Ok(MatrixReport {
        schema_version: report::SCHEMA_VERSION,
        scenario: job.settings.scenario.clone(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        interrupted: interrupt.fired(),
        environment: Environment::detect(),
        placement: job.placement.clone(),
        settings: job.settings.clone(),
        resolution: report::Resolution::of(&variants),
        variants,
    })
}

/// What running one variant needs.
struct VariantContext<'a> {
    job: &'a Job,
    dir: &'a Path,
    progress: &'a Progress,
    interrupt: &'a Interrupt,
    label: String,
    /// Planned time of the variants before this one.
    position: Duration,
}

impl VariantContext<'_> {
    async fn run(&self, variant: Variant) -> VariantReport {
        let mut report = VariantReport {
            name: variant.name().into(),
            summary: variant.summary().into(),
            status: "ok".into(),
            error: None,
            server: None,
            job: None,
            phases: Vec::new(),
            figures: None,
        };
        let log = self.dir.join(format!("{variant}.server.log"));
        let mut server = match ServerProcess::start(variant.name(), &self.job.launch, &log).await {
            Ok(server) => server,
            Err(e) => {
                report.status = "failed".into();
                report.error = Some(format!("did not start: {e:#}"));
                self.progress
                    .note(&format!("{}: failed to start: {e:#}", self.label));
                return report;
            }
        };
        if let Err(e) = self.measure(&mut server, &mut report).await {
            report.status = if self.interrupt.fired() {
                "interrupted"
            } else {
                "failed"
            }
            .into();
            self.progress.note(&format!("{}: {e:#}", self.label));
            report.error = Some(format!("{e:#}"));
        } else if self.interrupt.fired() {
            report.status = "interrupted".into();
        }
        server.stop().await;
        report
    }

    async fn measure(
        &self,
        server: &mut ServerProcess,
        report: &mut VariantReport,
    ) -> anyhow::Result<()> {
        let settings = &self.job.settings;
        let info = server.info().await?;
        let job = JobPlan::from_info(&info, settings)?;
        report.server = Some(info);
        report.job = Some(job);
        let name = report.name.clone();
        let hlog = HlogWriter::create(
            &self.dir.join(format!("{name}.hlog")),
            &format!("variant {name}"),
        )?;
        let mut observer = PhaseObserver {
            progress: self.progress,
            hlog: &hlog,
            base: None,
            offset: Duration::ZERO,
            phase: String::new(),
            position: self.position,
            measured_from: None,
        };
        let client_cores = self
            .job
            .placement
            .client_cpus
            .as_ref()
            .map_or_else(|| cpu::online_cpus().len(), Vec::len);
        for phase in &settings.phases {
            if self.interrupt.fired() {
                break;
            }
            self.progress
                .set_label(format!("{} {}", self.label, phase.name));
            observer.phase = phase.name.clone();
            observer.measured_from = None;
            let plan = responsiveness::plan(phase, server.addr, settings, &job);
            let (client_before, server_before, wall) =
                (cpu::own_cpu_time(), server.cpu_time(), Instant::now());
            let scraper = Scraper::start(ScrapeTarget {
                addr: server.addr,
                scrape: self.job.launch.telemetry,
                server_pid: Some(server.pid),
                every: plan.timing.interval,
            });
            let background = (settings.scenario == "jobs" && phase.heavy).then(|| JobsPlan {
                addr: server.addr,
                path: "/jobs".into(),
                name: "jobs".into(),
                rate: settings.job_load * job.ideal_per_s,
                body: format!(r#"{{"kind": "cpu", "units": {}}}"#, job.units),
                duration: Duration::from_secs_f64(phase.warmup_s + phase.duration_s),
                connections: JOB_CONNECTIONS,
                timeout: Duration::from_secs_f64(settings.timeout_s),
                drain: Duration::from_secs_f64((2.0 * phase.duration_s).max(10.0)),
            });
            let (outcome, jobs) = match &background {
                Some(jobs_plan) => {
                    let (outcome, jobs) = tokio::join!(
                        engine::run(&plan, &mut observer, self.interrupt),
                        jobs::driver::run(jobs_plan, self.interrupt)
                    );
                    (outcome, Some(jobs))
                }
                None => (
                    engine::run(&plan, &mut observer, self.interrupt).await,
                    None,
                ),
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
            if let (Some(jobs), Some(jobs_plan)) = (&jobs, &background) {
                streams.push(StreamReport::from_outcome(&jobs.submit, jobs_plan.duration));
                streams.push(StreamReport::from_outcome(
                    &jobs.end_to_end,
                    jobs_plan.duration,
                ));
            }
            for s in &streams {
                let table = percentile_table(&decode(&s.histograms.corrected)?);
                write_atomically(
                    &self
                        .dir
                        .join(format!("{name}.{}.{}.hgrm", phase.name, s.name)),
                    table.as_bytes(),
                )?;
            }
            report.phases.push(PhaseReport {
                name: phase.name.clone(),
                measured_s: outcome.measured.as_secs_f64(),
                wall_s: wall.as_secs_f64(),
                client_cpu_s: client_cpu.as_secs_f64(),
                client_cpu_share: client_cpu.as_secs_f64()
                    / (wall.as_secs_f64() * client_cores as f64).max(f64::MIN_POSITIVE),
                server_cpu_s: server
                    .cpu_time()
                    .saturating_sub(server_before)
                    .as_secs_f64(),
                streams,
                server_telemetry: observer
                    .measured_from
                    .map(|from| ServerTelemetry::from_samples(&samples, from)),
                jobs: jobs.map(|j| j.figures),
            });
            observer.position += Duration::from_secs_f64(phase.duration_s + phase.warmup_s);
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
            report.figures = Figures::derive(&report.phases, &job);
        }
        Ok(())
    }
}

/// Feeds one variant's phases to the progress bar and its interval log, with the
/// log's timestamps counting from the start of the variant's first phase.
struct PhaseObserver<'a> {
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
    }

    fn interval(&mut self, record: &IntervalRecord<'_>) {
        self.hlog.record(record, self.offset);
    }

    fn progress(&mut self, live: &Live) {
        self.progress.update_at(self.position + live.elapsed, live);
    }
}

/// Runs `loadgen plot DIR`: charts and report.html from a saved `report.json`.
pub fn plot(dir: &Path) -> Result<ExitCode, CommandError> {
    let report = crate::check::load_report(dir)?;
    for file in crate::charts::render_matrix(&report, dir)? {
        println!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
