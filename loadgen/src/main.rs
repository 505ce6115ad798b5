//! The `loadgen` binary.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use loadgen::bench::{self, CommandError};
use loadgen::cli::{Cli, Command};
use loadgen::matrix;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Run(args)) => matrix::run(args),
        Some(Command::Serve(server)) => return serve(server),
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

/// `loadgen serve`: one reference server, as `servers` would run it. Its
/// multi-worker processes are started as `loadgen serve ...` too.
fn serve(cli: servers::cli::Cli) -> ExitCode {
    if cli.list {
        for variant in servers::variant::Variant::ALL {
            println!("{:<18} {}", variant.name(), variant.summary());
        }
        return ExitCode::SUCCESS;
    }
    if let Err(message) = cli.validate() {
        Cli::command()
            .error(ErrorKind::ValueValidation, message)
            .exit();
    }
    servers::init_tracing();
    let mut config = cli.into_config();
    config.worker_args_prefix = vec!["serve".into()];
    match servers::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
