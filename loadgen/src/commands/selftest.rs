//! `loadgen selftest`: the checks of [`crate::selftest`] against servers whose
//! behaviour is known exactly, as a table: exit 0 when every check passes, 99
//! otherwise.

use std::process::ExitCode;

use super::{judged, CommandError};
use crate::cli::SelftestArgs;
use crate::environment::Environment;
use crate::selftest::{render, run_checks, Verdict};

/// Runs `loadgen selftest`.
pub fn run(args: &SelftestArgs) -> Result<ExitCode, CommandError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    let rows = runtime.block_on(run_checks(args.lateness_allowance, &|line| {
        eprintln!("{line}")
    }))?;
    println!("{}", Environment::detect().one_line());
    print!("{}", render(&rows));
    Ok(judged(rows.iter().all(|r| r.verdict != Verdict::Fail)))
}
