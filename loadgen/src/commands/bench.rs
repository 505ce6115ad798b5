//! `loadgen bench`: build a [`Plan`] from flags or a scenario file, run it with a
//! progress bar and the interval log attached (and any job streams beside it),
//! print the summary and write the requested files.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{finish, CommandError};
use crate::background_jobs::{self, JobsOutcome, JobsPlan};
use crate::cli::BenchArgs;
use crate::config::{basic_auth, parse_header, parse_method, read_body_file, ConfigError};
use crate::engine::{self, IntervalRecord, Live, Observer};
use crate::environment::Environment;
use crate::interrupt::Interrupt;
use crate::live::{Frame, LiveFeed, LiveServer, Outcome};
use crate::plan::{Load, Plan, StreamSpec, Timing, DEFAULT_OPEN_LOOP_CONNECTIONS};
use crate::progress::Progress;
use crate::report::hgrm::Hgrm;
use crate::report::hlog::HlogWriter;
use crate::report::json::Json;
use crate::report::{text, BenchReport, Exporter, NamedJobsFigures, Report, StreamReport};
use crate::scenario_file::ScenarioFile;
use crate::stages::{parse_stages, stages_length};
use crate::target::Target;
use crate::telemetry::{ScrapeTarget, Scraper, ServerTelemetry};

/// The plan described by `args`, validated.
pub fn plan_from_args(args: &BenchArgs) -> Result<Plan, ConfigError> {
    let overrides = |mut timing: Timing| {
        timing.duration = args.duration.unwrap_or(timing.duration);
        timing.warmup = args.warmup.unwrap_or(timing.warmup);
        timing.timeout = args.timeout.unwrap_or(timing.timeout);
        timing.interval = args.interval.unwrap_or(timing.interval);
        timing.release_tick = args.release_tick.unwrap_or(timing.release_tick);
        timing.start_at = args.start_at;
        // What `loadgen merge` adds interval by interval.
        timing.keep_interval_histograms = args.start_at.is_some();
        timing.with_full_drain()
    };
    let plan = match &args.scenario {
        Some(path) => {
            let file = ScenarioFile::load(path)?;
            let url = args.url.clone().or(file.base_url.clone()).ok_or_else(|| {
                ConfigError(format!("{} has no base_url; pass --url", path.display()))
            })?;
            let mut target = Target::parse(&url)?;
            target.unix = args.unix.clone().or(file.unix.clone());
            Plan {
                streams: file.stream_specs(&target)?,
                timing: overrides(file.timing(Timing::default())),
                target,
            }
        }
        None => {
            let url = args
                .url
                .as_deref()
                .expect("clap requires --url without --scenario");
            let mut target = Target::parse(url)?;
            target.unix = args.unix.clone();
            let connections = args.connections.unwrap_or(DEFAULT_OPEN_LOOP_CONNECTIONS);
            let stages = args.stages.as_deref().map(parse_stages).transpose()?;
            let load = match (args.rate, &stages) {
                (Some(rate), _) => Load::Open { rate, connections },
                // A ramp starts from nothing unless told otherwise.
                (None, Some(_)) => Load::Open {
                    rate: 0.0,
                    connections,
                },
                (None, None) => Load::Closed { connections },
            };
            // Stages set the run's length, and a ramp is its own warm-up.
            let defaults = match &stages {
                Some(stages) => Timing {
                    duration: stages_length(stages),
                    warmup: Duration::ZERO,
                    ..Timing::default()
                },
                None => Timing::default(),
            };
            let mut headers: Vec<_> = args
                .headers
                .iter()
                .map(|h| parse_header(h))
                .collect::<Result<_, _>>()?;
            if let Some(credentials) = &args.auth {
                if headers
                    .iter()
                    .any(|(name, _)| name == http::header::AUTHORIZATION)
                {
                    return Err(ConfigError(
                        "--auth and an Authorization header both set the credentials; give one"
                            .into(),
                    ));
                }
                headers.push(basic_auth(credentials)?);
            }
            let body = match (&args.body, &args.body_file) {
                (_, Some(path)) => Some(read_body_file(path)?),
                (Some(text), None) => Some(text.clone().into()),
                (None, None) => None,
            };
            Plan {
                streams: vec![StreamSpec {
                    name: args.name.clone(),
                    method: parse_method(&args.method)?,
                    path: target.path_and_query.clone(),
                    headers,
                    body,
                    load,
                    fresh_connections: args.fresh_connections,
                    stages: stages.unwrap_or_default(),
                    mix: Vec::new(),
                }],
                timing: overrides(defaults),
                target,
            }
        }
    };
    let mut plan = plan;
    if args.insecure {
        plan.target.accept_any_certificate()?;
    }
    if args.http2 {
        plan.target.use_http2(args.h2_streams)?;
    }
    if plan.target.tls.is_some() && plan.target.unix.is_some() {
        return Err(ConfigError(
            "https:// over a Unix socket is not supported; give an http:// URL with --unix".into(),
        ));
    }
    if args.threads == Some(0) {
        return Err(ConfigError("--threads must be at least 1".into()));
    }
    plan.validate()?;
    Ok(plan)
}

/// Runs every job stream at once, each in a task of its own; outcomes in plan order.
async fn run_job_streams(
    plans: &[JobsPlan],
    interrupt: &Interrupt,
) -> anyhow::Result<Vec<JobsOutcome>> {
    let tasks: Vec<_> = plans
        .iter()
        .cloned()
        .map(|plan| {
            let interrupt = interrupt.clone();
            tokio::spawn(async move { background_jobs::run(&plan, &interrupt).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("a job stream's task panicked")?);
    }
    Ok(outcomes)
}

/// Progress bar, interval log and live dashboard.
struct BenchObserver {
    progress: Progress,
    hlog: Option<HlogWriter>,
    live: Option<LiveFeed>,
    /// When measurement started, as the engine said (the server's series and
    /// the dashboard's samples are placed from it).
    measured_from: Option<std::time::SystemTime>,
}

impl Observer for BenchObserver {
    fn measuring(&mut self, since: std::time::SystemTime) {
        self.measured_from = Some(since);
        if let Some(hlog) = &self.hlog {
            hlog.begin(since);
        }
        if let Some(live) = &self.live {
            live.set_axis(Some((since, 0.0)));
        }
    }

    fn interval(&mut self, record: &IntervalRecord<'_>) {
        if let Some(hlog) = &self.hlog {
            hlog.record(record, std::time::Duration::ZERO);
        }
        if let Some(live) = &self.live {
            live.publish(&Frame::interval(record, 0.0));
        }
    }

    fn progress(&mut self, live: &Live) {
        self.progress.update(live);
    }
}

/// With `--start-at`: how long before it the bench wakes from its wait to check
/// the server, open the connections (the engine's 2 s lead) and start the bar.
const WAKE_BEFORE_START: Duration = Duration::from_secs(5);

/// What `--scrape` and `--server-pid` ask to sample, if anything.
fn scrape_target(args: &BenchArgs, every: Duration) -> Result<Option<ScrapeTarget>, CommandError> {
    if args.scrape.is_none() && args.server_pid.is_none() {
        return Ok(None);
    }
    if let Some(pid) = args.server_pid {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(CommandError::Usage(format!(
                "--server-pid {pid}: no such process"
            )));
        }
    }
    let metrics = match &args.scrape {
        Some(url) => {
            let target = Target::parse(url)
                .map_err(|e| CommandError::Usage(format!("--scrape: {}", e.0)))?;
            if target.tls.is_some() {
                return Err(CommandError::Usage(
                    "--scrape reads metrics over plain HTTP; give an http:// URL".into(),
                ));
            }
            let addr =
                std::net::ToSocketAddrs::to_socket_addrs(&(target.host.as_str(), target.port))
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        CommandError::Usage(format!("--scrape: cannot resolve {}", target.host))
                    })?;
            Some((addr, target.path_and_query))
        }
        None => None,
    };
    Ok(Some(ScrapeTarget {
        metrics,
        server_pid: args.server_pid,
        every,
    }))
}

/// Runs `loadgen bench`.
pub fn run(args: BenchArgs) -> Result<ExitCode, CommandError> {
    let plan = plan_from_args(&args)?;
    let job_streams = match &args.scenario {
        Some(path) => ScenarioFile::load(path)?.job_specs(&plan.target)?,
        None => Vec::new(),
    };
    if plan.target.tls.is_some() && !job_streams.is_empty() {
        return Err(CommandError::Usage(
            "job streams (kind = \"job\") are sent over plain HTTP only; use an http:// base URL"
                .into(),
        ));
    }
    if args.http2 && !job_streams.is_empty() {
        return Err(CommandError::Usage(
            "job streams (kind = \"job\") are sent over HTTP/1.1 only; drop --http2 or the job streams"
                .into(),
        ));
    }
    if args.start_at.is_some() && !job_streams.is_empty() {
        return Err(CommandError::Usage(
            "job streams (kind = \"job\") cannot wait for --start-at, and a merge cannot add their figures; drop one".into(),
        ));
    }
    if plan.target.unix.is_some() && !job_streams.is_empty() {
        return Err(CommandError::Usage(
            "job streams (kind = \"job\") are sent over TCP only; drop --unix (or the file's unix) or the job streams".into(),
        ));
    }
    // Checked before anything starts.
    let scrape = scrape_target(&args, plan.timing.interval)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    match args.threads {
        Some(threads) => {
            runtime.worker_threads(threads);
        }
        // An open loop is paced, not flat out: one worker sends and reads
        // everything, so a release never has to wake a second worker through a
        // futex. Measured at 10,000/s with a 1 ms tick: 18 µs of CPU per request on
        // one worker against 32 µs on two (results/bench-open-loop/).
        None if plan.streams.iter().all(|s| s.load.rate().is_some()) => {
            runtime.worker_threads(1);
        }
        None => {}
    }
    let runtime = runtime.enable_all().build().map_err(anyhow::Error::from)?;
    if let Some(at) = args.start_at {
        let wait = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        eprintln!(
            "waiting until {} to start ({:.1} s from now)",
            humantime::format_rfc3339_millis(at),
            wait.as_secs_f64()
        );
    }
    let report = runtime.block_on(async {
        let interrupt = Interrupt::install().map_err(anyhow::Error::from)?;
        let planned = plan.timing.warmup + plan.timing.duration;
        let live_server = args.live.map(LiveServer::start).transpose()?;
        if let Some(server) = &live_server {
            server.feed().publish(&Frame::bench_run(
                &plan.target.url,
                planned.as_secs_f64(),
                plan.timing.interval.as_secs_f64(),
                plan.streams.iter().map(|s| s.name.clone()).collect(),
            ));
        }
        // With --start-at, the progress bar and any scraping begin shortly
        // before the start, not during a long wait; the engine waits the rest.
        // (The dashboard is up during the wait.)
        engine::wait_for_start(&plan, WAKE_BEFORE_START, &interrupt).await?;
        let hlog = match &args.hlog {
            Some(path) => Some(HlogWriter::create(path, &plan.target.url)?),
            None => None,
        };
        let mut observer = BenchObserver {
            progress: Progress::new("bench", planned),
            hlog,
            live: live_server.as_ref().map(|server| server.feed().clone()),
            measured_from: None,
        };
        let job_plans: Vec<JobsPlan> = if job_streams.is_empty() {
            Vec::new()
        } else {
            let addr = match plan.target.resolve().await.map(|a| a.first().copied()) {
                Ok(Some(addr)) => addr,
                _ => {
                    return Err(CommandError::from(anyhow::anyhow!(
                        "cannot resolve {}",
                        plan.target.url
                    )))
                }
            };
            job_streams
                .iter()
                .map(|j| JobsPlan {
                    addr,
                    path: j.path.clone(),
                    name: j.name.clone(),
                    rate: j.rate,
                    body: j.body.clone(),
                    duration: plan.timing.warmup + plan.timing.duration,
                    connections: j.connections,
                    timeout: plan.timing.timeout,
                    drain: plan.timing.timeout * 2,
                })
                .collect()
        };
        let jobs_run = run_job_streams(&job_plans, &interrupt);
        let scraper = scrape.map(|target| Scraper::start(target, observer.live.clone()));
        let (outcome, jobs) = tokio::join!(engine::run(&plan, &mut observer, &interrupt), jobs_run);
        let samples = match scraper {
            Some(scraper) => Some(scraper.finish().await),
            None => None,
        };
        observer.progress.finish();
        if let Some(server) = live_server {
            match (&outcome, &jobs) {
                (Err(e), _) | (_, Err(e)) => server.finish(Outcome::Failed, Some(format!("{e:#}"))),
                (Ok(o), _) if o.interrupted => server.finish(Outcome::Interrupted, None),
                _ => server.finish(Outcome::Finished, None),
            }
        }
        let outcome = outcome?;
        let jobs = jobs?;
        if let Some(hlog) = observer.hlog.take() {
            hlog.finish()?;
        }
        let mut report = BenchReport::new(&plan, &outcome, Environment::detect());
        let measured_from = observer.measured_from.unwrap_or(outcome.measure_started_at);
        report.server_telemetry =
            samples.map(|samples| ServerTelemetry::from_samples(&samples, measured_from));
        for (jobs_plan, jobs) in job_plans.iter().zip(jobs) {
            report
                .streams
                .push(StreamReport::from_outcome(&jobs.submit, jobs_plan.duration));
            report.streams.push(StreamReport::from_outcome(
                &jobs.end_to_end,
                jobs_plan.duration,
            ));
            report.jobs.push(NamedJobsFigures {
                name: jobs_plan.name.clone(),
                figures: jobs.figures,
            });
        }
        Ok::<_, CommandError>(report)
    })?;

    print!("{}", text::render(&report));
    let report = Report::Bench(report);
    if let Some(path) = &args.hlog {
        eprintln!("wrote {}", path.display());
    }
    write_outputs(&report, &args.json, &args.hgrm, &args.plot)?;
    finish(std::slice::from_ref(&report), &args.threshold, None)
}

/// Writes a bench report's files: `--json`, `--hgrm` and `--plot` (what `bench`
/// and `merge` both offer), naming each file written.
pub(super) fn write_outputs(
    report: &Report,
    json: &Option<PathBuf>,
    hgrm: &Option<PathBuf>,
    plot: &Option<PathBuf>,
) -> Result<(), CommandError> {
    let exports: [(&Option<PathBuf>, &dyn Exporter); 2] = [(json, &Json), (hgrm, &Hgrm)];
    for (path, exporter) in exports {
        if let Some(path) = path {
            for file in exporter.write(report, path)? {
                eprintln!("wrote {}", file.display());
            }
        }
    }
    if let Some(dir) = plot {
        for file in crate::charts::render(report, dir)? {
            eprintln!("wrote {}", file.display());
        }
    }
    Ok(())
}
