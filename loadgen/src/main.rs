//! The `loadgen` binary.

use std::process::ExitCode;

use clap::Parser;
use loadgen::bench;
use loadgen::cli::{Cli, Command};
use loadgen::exit::CommandError;
use loadgen::matrix;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Run(args)) => matrix::run(args),
        Some(Command::Plot(args)) => matrix::plot(&args.dir),
        Some(Command::Check(args)) => loadgen::check::run(args),
        Some(Command::Selftest(args)) => loadgen::selftest::run(&args),
        Some(Command::Compare(args)) => loadgen::check::compare::run(args),
        // Multi-worker processes are started as `loadgen serve ...` too.
        Some(Command::Serve(server)) => return servers::cli::run(server, vec!["serve".into()]),
        None => matrix::run(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(CommandError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(CommandError::Failed(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
