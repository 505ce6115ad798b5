//! `loadgen run` (what `cargo run -p loadgen` does): check the flags, run every
//! variant through the run matrix, and write the run folder
//! `results/runs/<UTC timestamp>/` (report, summary, histograms, charts), with
//! `results/runs/latest` pointing at it. With `--repeat N`, the folder holds one
//! run folder per round (`round-1/` …, the variants' order rotated each round) and
//! what the rounds say together (`summary.md`, `repeat.json`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use servers::variant::Variant;

use crate::external::{self, ExternalServer};
use crate::matrix::Configuration;

use super::{finish, CommandError};
use crate::cli::RunArgs;
use crate::cpu;
use crate::files::write_atomically;
use crate::interrupt::Interrupt;
use crate::live::{replay, LiveFeed, LiveServer, Outcome};
use crate::matrix::{self, LiveRun, RunPlan};
use crate::report::hgrm::Hgrm;
use crate::report::json::Json;
use crate::report::repeat::{rotated, RepeatReport};
use crate::report::{markdown, Exporter, Placement, Report, RunReport, Scenario, Settings};
use crate::server_process::{redis_available, Launch};

/// What `args` ask for, checked, with the run's folder at `dir`.
fn prepare(args: &RunArgs, dir: PathBuf) -> Result<RunPlan, CommandError> {
    let external = match &args.servers {
        Some(path) => external::spec::load(path).map_err(CommandError::Usage)?,
        None => Vec::new(),
    };
    let variants: Vec<Configuration> = if args.ablation {
        Configuration::ablation()
    } else if args.variant.is_empty() && !external.is_empty() {
        external.into_iter().map(Configuration::external).collect()
    } else if args.variant.is_empty() {
        let redis = redis_available();
        if !redis {
            eprintln!(
                "note: redis-queue skipped: redis-server is not installed (Debian package redis-server; .ci/run installs it)"
            );
        }
        Variant::ALL
            .into_iter()
            .filter(|v| !v.needs_redis() || redis)
            .map(Configuration::plain)
            .collect()
    } else {
        chosen(&args.variant, &external)?
    };
    check_external(&variants, args.scenario)?;
    if let Some(overload) = args.overload {
        return Err(CommandError::Usage(format!(
            "--overload was replaced by the load sweep: use --loads {overload} for one step at {overload}x"
        )));
    }
    let mut settings = Settings::new(args.quick, args.scenario);
    settings.job_load = args.job_load;
    if !args.loads.is_empty() {
        settings.set_loads(&args.loads, settings.step_lengths());
    } else if args.scenario == Scenario::Jobs {
        settings.set_loads(&[args.job_load], settings.step_lengths());
    }
    for (phase, value) in [
        ("idle", args.idle),
        ("loaded", args.loaded),
        ("recovery", args.recovery),
    ] {
        if let Some(d) = value {
            settings.set_duration(phase, d);
        }
    }
    settings.heavy_ms = args
        .job
        .unwrap_or(args.scenario.default_job())
        .as_secs_f64()
        * 1e3;
    settings.probe_rate = args.probe_rate;
    settings.objective_ms = args.objective.as_secs_f64() * 1e3;
    settings.probe_connections = args.probe_connections;
    settings.fresh_rate = args.fresh_rate;
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
    Ok(RunPlan {
        variants,
        launch: Launch {
            cpus: placement.server_cpus.clone(),
            workers: args.workers,
            telemetry: !args.no_telemetry,
            poll_timing: !args.no_poll_timing,
            inject_delay: args.inject_delay,
            upstream: (settings.scenario == Scenario::Upstream)
                .then(|| Duration::from_secs_f64(settings.heavy_ms / 1e3)),
            upstream_cpus: placement.client_cpus.clone(),
        },
        settings,
        placement,
        dir,
    })
}

/// The configurations `names` choose among the built-in variants and the
/// servers file's entries, in the order given.
fn chosen(
    names: &[String],
    external: &[ExternalServer],
) -> Result<Vec<Configuration>, CommandError> {
    let mut chosen: Vec<Configuration> = Vec::new();
    for name in names.iter().map(|n| n.trim()) {
        let configuration = if let Some(e) = external.iter().find(|e| e.name == name) {
            Configuration::external(e.clone())
        } else {
            match name.parse::<Variant>() {
                Ok(variant) => Configuration::plain(variant),
                Err(e) if external.is_empty() => return Err(CommandError::Usage(e)),
                Err(e) => {
                    let names: Vec<&str> = external.iter().map(|e| e.name.as_str()).collect();
                    return Err(CommandError::Usage(format!(
                        "{e}; or one of the servers file's: {}",
                        names.join(", ")
                    )));
                }
            }
        };
        if chosen.iter().any(|c| c.name == configuration.name) {
            return Err(CommandError::Usage(format!("--variant names {name} twice")));
        }
        chosen.push(configuration);
    }
    Ok(chosen)
}

/// Refuses, before anything starts, external servers that cannot run here: a
/// missing program (saying how to set it up), or a scenario they do not serve.
fn check_external(variants: &[Configuration], scenario: Scenario) -> Result<(), CommandError> {
    for external in variants.iter().filter_map(Configuration::as_external) {
        if let Some(missing) = external.missing_program() {
            return Err(CommandError::Usage(missing));
        }
        match scenario {
            Scenario::Upstream => {
                return Err(CommandError::Usage(format!(
                    "{}: external servers are not given the upstream to call; run them in the responsiveness or jobs scenario",
                    external.name
                )))
            }
            Scenario::Jobs if external.jobs_path.is_none() || !external.sized() => {
                return Err(CommandError::Usage(format!(
                    "{}: the jobs scenario needs jobs_path (POST /jobs, GET /jobs/ID) and {{units}} in heavy_path (jobs are sized in units) in its servers file entry",
                    external.name
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Creates the run's folder under `out`: `stamp`, or `stamp-2`, `stamp-3`, …
/// when a run started in the same second has it (creating a folder is atomic,
/// so two runs never share one); returns the name it got.
fn claim_run_folder(out: &Path, stamp: &str) -> anyhow::Result<String> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    for n in 1..1000 {
        let name = if n == 1 {
            stamp.to_owned()
        } else {
            format!("{stamp}-{n}")
        };
        match std::fs::create_dir(out.join(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => anyhow::bail!("cannot create {}: {e}", out.join(&name).display()),
        }
    }
    anyhow::bail!("{} holds 999 runs started at {stamp}", out.display())
}

/// Runs `loadgen run`.
pub fn run(args: RunArgs) -> Result<ExitCode, CommandError> {
    let started = SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(started)
        .to_string()
        .replace(['-', ':'], "");
    let mut plan = prepare(&args, args.out.join(&stamp))?;
    if args.repeat == 0 {
        return Err(CommandError::Usage("--repeat must be at least 1".into()));
    }
    // Read the thresholds before spending minutes on the run.
    let thresholds = match &args.check {
        Some(file) => crate::check::load_thresholds(file)?,
        None => Vec::new(),
    };
    // Only now, with every flag checked, is a folder made.
    let stamp = claim_run_folder(&args.out, &stamp)?;
    let dir = args.out.join(&stamp);
    plan.dir = dir.clone();
    if let Some(cpus) = &plan.placement.client_cpus {
        // Before the runtime exists, so every thread it starts inherits the mask.
        cpu::pin_current_thread(cpus)
            .map_err(|e| anyhow::anyhow!("cannot pin loadgen to {cpus:?}: {e}"))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    // block_on polls the matrix on this (main) thread, which lives as long as the
    // process: the servers' PDEATHSIG is tied to the thread that started them.
    let interrupt = runtime
        .block_on(async { Interrupt::install() })
        .map_err(anyhow::Error::from)?;

    let live = args.live.map(LiveServer::start).transpose()?;
    if let Some(server) = &live {
        let sections = (0..args.repeat)
            .flat_map(|round| {
                let live = live_round(server.feed(), args.repeat, round);
                rotated(&plan.variants, round)
                    .into_iter()
                    .map(move |v| live.section(&v.name))
            })
            .collect();
        server
            .feed()
            .publish(&replay::run_frame(&plan.settings, sections));
    }
    let mut rounds = Vec::new();
    let mut round_dirs = Vec::new();
    for round in 0..args.repeat {
        if interrupt.fired() {
            break;
        }
        let mut round_plan = plan.clone();
        if args.repeat > 1 {
            let name = format!("round-{}", round + 1);
            round_plan.dir = dir.join(&name);
            round_plan.variants = rotated(&plan.variants, round);
            eprintln!("round {} of {}", round + 1, args.repeat);
            round_dirs.push(name);
        }
        let report = runtime.block_on(async {
            std::fs::create_dir_all(&round_plan.dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", round_plan.dir.display()))?;
            let live = live
                .as_ref()
                .map(|server| live_round(server.feed(), args.repeat, round));
            anyhow::Ok(matrix::run(&round_plan, SystemTime::now(), &interrupt, live.as_ref()).await)
        })?;
        let summary = write_run_folder(&report, &round_plan.dir)?;
        println!("\n{summary}");
        println!("results: {}", round_plan.dir.display());
        rounds.push(report);
    }
    if args.repeat > 1 && !rounds.is_empty() {
        let repeat = RepeatReport::of(&rounds, round_dirs);
        let summary = repeat.summary();
        let mut json = serde_json::to_vec_pretty(&repeat).map_err(anyhow::Error::from)?;
        json.push(b'\n');
        write_atomically(&dir.join("repeat.json"), &json).map_err(anyhow::Error::from)?;
        write_atomically(&dir.join("summary.md"), summary.as_bytes())
            .map_err(anyhow::Error::from)?;
        println!("\n{summary}");
        println!("results: {}", dir.display());
    }
    point_latest_at(&args.out, &stamp);
    if let Some(server) = live {
        let outcome = if interrupt.fired() {
            Outcome::Interrupted
        } else {
            Outcome::Finished
        };
        server.finish(outcome, None);
    }
    let rounds: Vec<Report> = rounds.into_iter().map(Report::Run).collect();
    finish(&rounds, &thresholds, Some(&dir.join("check.md")))
}

/// Round `round` (from 0) of `repeat` on the dashboard.
fn live_round(feed: &LiveFeed, repeat: usize, round: usize) -> LiveRun {
    LiveRun {
        feed: feed.clone(),
        round: (repeat > 1).then_some(round + 1),
    }
}

/// Writes a run's folder: report.json, summary.md, the percentile tables and the
/// charts; returns the summary.
fn write_run_folder(report: &RunReport, dir: &Path) -> anyhow::Result<String> {
    let summary = markdown::summary(report);
    let report = Report::Run(report.clone());
    Json.write(&report, &dir.join("report.json"))?;
    Hgrm.write(&report, dir)?;
    write_atomically(&dir.join("summary.md"), summary.as_bytes())?;
    // Charts are drawn from the written report, as `loadgen plot` would; a
    // failure here costs the pictures, not the measurements.
    if let Err(e) = crate::charts::render(&report, dir) {
        eprintln!("warning: charts not drawn: {e:#}");
    }
    Ok(summary)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_folders_of_their_own() {
        let out = std::env::temp_dir().join(format!("loadgen-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let first = claim_run_folder(&out, "20261201T000000Z").unwrap();
        let second = claim_run_folder(&out, "20261201T000000Z").unwrap();
        assert_eq!(first, "20261201T000000Z");
        assert_eq!(second, "20261201T000000Z-2");
        assert!(out.join(&first).is_dir() && out.join(&second).is_dir());
        std::fs::remove_dir_all(&out).unwrap();
    }
}
