//! The `servers` binary: `servers --list`, or `servers --variant NAME`.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use servers::cli::Cli;
use servers::variant::Variant;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list {
        for variant in Variant::ALL {
            println!("{:<18} {}", variant.name(), variant.summary());
        }
        return ExitCode::SUCCESS;
    }
    if let Err(message) = cli.validate() {
        // Exits with status 2, like every other command-line error.
        Cli::command()
            .error(ErrorKind::ValueValidation, message)
            .exit();
    }
    servers::init_tracing();
    match servers::run(cli.into_config()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
