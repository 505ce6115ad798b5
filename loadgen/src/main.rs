//! The `loadgen` binary: parses the command line and dispatches.

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::Cli;

fn main() -> ExitCode {
    loadgen::commands::dispatch(Cli::parse())
}
