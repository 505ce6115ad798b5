//! `loadgen check`: thresholds against a saved report (a run folder, its
//! report.json, or a `bench --json` file): exit 0 when all hold and 99 when any
//! fails (k6's convention), 1 when they cannot be checked.

use std::process::ExitCode;

use super::{judged, CommandError};
use crate::check::{evaluate_all, junit, lines, load_thresholds, markdown};
use crate::cli::CheckArgs;
use crate::files::write_atomically;
use crate::report::load::load;

/// Runs `loadgen check`.
pub fn run(args: &CheckArgs) -> Result<ExitCode, CommandError> {
    let report = load(&args.report)?;
    let mut expressions = args.threshold.clone();
    if let Some(file) = &args.thresholds {
        expressions.extend(load_thresholds(file)?);
    }
    if expressions.is_empty() {
        return Err(CommandError::Usage(
            "give at least one --threshold EXPR or --thresholds FILE".into(),
        ));
    }
    let outcomes = evaluate_all(&report, &expressions)?;
    print!("{}", lines(&outcomes));
    if let Some(path) = &args.junit {
        write_atomically(path, junit(&outcomes).as_bytes()).map_err(anyhow::Error::from)?;
    }
    if let Some(path) = &args.markdown {
        write_atomically(path, markdown(&outcomes).as_bytes()).map_err(anyhow::Error::from)?;
    }
    Ok(judged(outcomes.iter().all(|o| o.passed)))
}
