//! Reference HTTP servers for measuring what blocking does to an async server.
//!
//! One axum application, identical on every variant, whose heavy endpoints hand their
//! work to a [`strategy::Strategy`]. A [`variant::Variant`] picks the strategy and the
//! runtime (multi-thread, current-thread, or several processes). See the workspace
//! README for what each variant mirrors in the Python world.

pub mod api;
pub mod background;
pub mod cli;
pub mod config;
pub mod connections;
pub mod limits;
mod listener;
pub mod multi_worker;
pub mod queue_worker;
pub mod serve;
mod shutdown;
pub mod strategy;
pub mod telemetry;
pub mod upstream;
pub mod variant;
pub mod workload;

use std::io::IsTerminal;
use std::time::Duration;

use config::ServerConfig;
use workload::Calibration;

/// CPU time spent measuring the kernel at start-up.
const CALIBRATION_BUDGET: Duration = Duration::from_millis(100);

/// Starts the server described by `config` and blocks until it stops.
pub fn run(config: ServerConfig) -> anyhow::Result<()> {
    let calibration = match config.ns_per_unit {
        Some(ns_per_unit) => Calibration { ns_per_unit },
        None => workload::calibrate(CALIBRATION_BUDGET),
    };
    if config.variant.is_multi_process() && config.process_index.is_none() {
        multi_worker::supervise(&config, calibration)
    } else {
        serve::serve(&config, calibration)
    }
}

/// Sends `tracing` output to stderr (stdout carries only the `listening on` line),
/// at `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
