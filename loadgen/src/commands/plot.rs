//! `loadgen plot DIR`: the charts and report.html of a saved run, redrawn from its
//! `report.json` without running anything.

use std::process::ExitCode;

use super::CommandError;
use crate::cli::PlotArgs;
use crate::report::load::load_run;
use crate::report::Report;

/// Runs `loadgen plot`.
pub fn run(args: &PlotArgs) -> Result<ExitCode, CommandError> {
    let report = Report::Run(load_run(&args.dir)?);
    for file in crate::charts::render(&report, &args.dir)? {
        println!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
