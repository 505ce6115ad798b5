//! `loadgen compare BASE CURRENT`: two runs, or two folders of repeated runs,
//! variant by variant (the verdicts are [`crate::check::compare`]'s): exit 99 when a
//! figure regressed.

use std::process::ExitCode;

use super::{CommandError, EXIT_THRESHOLD_FAILED};
use crate::check::compare::{compare, render, Noise, Verdict};
use crate::cli::CompareArgs;
use crate::report::load::load_runs;

/// Runs `loadgen compare`.
pub fn run(args: &CompareArgs) -> Result<ExitCode, CommandError> {
    if !(args.noise > 1.0 && args.noise_throughput > 1.0) {
        return Err(CommandError::Usage(
            "--noise and --noise-throughput must be above 1".into(),
        ));
    }
    let base = load_runs(&args.base)?;
    let current = load_runs(&args.current)?;
    let mut scenarios = base.iter().chain(&current).map(|r| r.scenario);
    if let Some(other) = scenarios.find(|s| *s != base[0].scenario) {
        return Err(CommandError::Usage(format!(
            "the runs mix the {} and {other} scenarios; compare runs of one scenario",
            base[0].scenario
        )));
    }
    let rows = compare(
        &base,
        &current,
        Noise {
            latency: args.noise,
            throughput: args.noise_throughput,
        },
    );
    if rows.is_empty() {
        return Err(anyhow::anyhow!("no variant has figures on both sides").into());
    }
    println!(
        "base: {} run(s), current: {} run(s) of the {} scenario; medians across runs, [the envelope of their 95 % intervals] (for rates: [min–max])",
        base.len(),
        current.len(),
        base[0].scenario
    );
    print!("{}", render(&rows));
    Ok(if rows.iter().any(|r| r.verdict == Verdict::Worse) {
        ExitCode::from(EXIT_THRESHOLD_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
