//! `loadgen`: an open-loop, coordinated-omission-correct HTTP/1.1 load generator that
//! records HdrHistograms per stream, built to measure what blocking does to an async
//! server, and usable against any HTTP server.
//!
//! Read top-down: `main.rs` dispatches to [`commands`]; a command builds a [`plan`]
//! and runs it with the [`engine`] (`bench`), or runs every server variant through
//! the [`matrix`] (`run`); either way the result is a [`report`], which [`charts`]
//! draw and [`check`] judges.

pub mod background_jobs;
pub mod charts;
pub mod check;
pub mod cli;
pub mod client;
pub mod clock_sync;
pub mod commands;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod environment;
pub mod external;
pub mod files;
pub mod guard;
pub mod interrupt;
pub mod jitter;
pub mod live;
pub mod matrix;
pub mod open_loop;
pub mod pacer;
pub mod plan;
pub mod precise_timer;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod scenario_file;
pub mod selftest;
pub mod server_process;
pub mod stages;
pub mod stats;
pub mod target;
pub mod telemetry;
