//! One file per subcommand, each thin: parse what it was given, run the engine or
//! the run matrix (or read saved reports), write what it found, and map the outcome
//! to an exit status in one place: the measuring commands (`run`, `bench`) end
//! through [`finish`], which also checks their thresholds; the judging ones
//! (`check`, `compare`, `selftest`) through [`judged`].

pub mod bench;
pub mod check;
pub mod compare;
pub mod merge;
pub mod plot;
pub mod run;
pub mod selftest;

use std::path::Path;
use std::process::ExitCode;

use crate::check::{self as thresholds, Outcome};
use crate::cli::{Cli, Command};
use crate::config::ConfigError;
use crate::files::write_atomically;
use crate::report::Report;

/// Exit status when a threshold fails (k6 uses the same).
pub const EXIT_THRESHOLD_FAILED: u8 = 99;

/// Exit status when the run was cut short by Ctrl-C/SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Exit status of bad usage: nothing was sent.
pub const EXIT_USAGE: u8 = 2;

/// A failure of a command: bad usage (exit 2, nothing was sent) or a failure while
/// running (exit 1).
#[derive(Debug)]
pub enum CommandError {
    Usage(String),
    Failed(anyhow::Error),
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        CommandError::Usage(e.0)
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(e: anyhow::Error) -> Self {
        CommandError::Failed(e)
    }
}

/// Runs the command `cli` names (`run` when it names none) and returns the exit
/// status, having printed any error.
pub fn dispatch(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Plot(args)) => plot::run(&args),
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Selftest(args)) => selftest::run(&args),
        Some(Command::Compare(args)) => compare::run(&args),
        Some(Command::Merge(args)) => merge::run(&args),
        // Multi-worker processes are started as `loadgen serve ...` too.
        Some(Command::Serve(server)) => return servers::cli::run(server, vec!["serve".into()]),
        Some(Command::Guard(args)) => return crate::guard::run(&args),
        None => run::run(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(CommandError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(CommandError::Failed(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a judging command ends: 0 when everything it judged passed, 99 (k6's
/// threshold status) otherwise.
pub fn judged(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_THRESHOLD_FAILED)
    }
}

/// How every measuring command ends: checks `thresholds` against the finished
/// `rounds` (one report, or the rounds of a repeated run; printing the results, and
/// writing them as Markdown to `check_markdown` if given), then maps the outcome to
/// an exit status: 130 when interrupted, 1 when part of the run failed, 99 when a
/// threshold failed, 0 otherwise. Over several rounds a threshold fails when it
/// fails in more than half of them, so one noisy round on a shared machine does not
/// decide.
pub fn finish(
    rounds: &[Report],
    thresholds: &[String],
    check_markdown: Option<&Path>,
) -> Result<ExitCode, CommandError> {
    let mut outcomes: Vec<Outcome> = Vec::new();
    if !thresholds.is_empty() {
        let mut each = Vec::new();
        for report in rounds {
            each.push(thresholds::evaluate_all(report, thresholds)?);
        }
        outcomes = thresholds::by_majority(&each);
        print!("\nthresholds:\n{}", thresholds::lines(&outcomes));
        if let Some(path) = check_markdown {
            write_atomically(path, thresholds::markdown(&outcomes).as_bytes())
                .map_err(anyhow::Error::from)?;
        }
    }
    Ok(if rounds.iter().any(Report::interrupted) {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if rounds.iter().any(Report::has_failures) {
        ExitCode::FAILURE
    } else if outcomes.iter().any(|o| !o.passed) {
        ExitCode::from(EXIT_THRESHOLD_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
