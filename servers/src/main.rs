//! The `servers` binary: `servers --list`, or `servers --variant NAME`.

use std::process::ExitCode;

use clap::Parser;
use servers::cli::Cli;

fn main() -> ExitCode {
    servers::cli::run(Cli::parse(), Vec::new())
}
