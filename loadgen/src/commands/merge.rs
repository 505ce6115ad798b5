//! `loadgen merge`: adds up the bench reports of agents that loaded one server
//! together ([`crate::report::merge`]), prints the summary of the sum and writes
//! it in the formats asked for; its thresholds are judged on the sum.

use std::process::ExitCode;

use super::bench::write_outputs;
use super::{judged, CommandError};
use crate::check::{evaluate_all, lines};
use crate::cli::MergeArgs;
use crate::report::load::load_bench;
use crate::report::merge::merge;
use crate::report::{text, Report};

/// Runs `loadgen merge`.
pub fn run(args: &MergeArgs) -> Result<ExitCode, CommandError> {
    let mut reports = Vec::new();
    for path in &args.reports {
        reports.push((path.display().to_string(), load_bench(path)?));
    }
    let merged = merge(&reports)?;
    print!("{}", text::render(&merged));
    let report = Report::Bench(merged);
    write_outputs(&report, &args.json, &args.hgrm, &args.plot)?;
    if args.threshold.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let outcomes = evaluate_all(&report, &args.threshold)?;
    print!("\nthresholds:\n{}", lines(&outcomes));
    Ok(judged(outcomes.iter().all(|o| o.passed)))
}
