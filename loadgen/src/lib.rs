//! `loadgen`: an open-loop, coordinated-omission-correct HTTP/1.1 load generator that
//! records HdrHistograms per stream, built to measure what blocking does to an async
//! server, and usable against any HTTP server.

pub mod bench;
pub mod charts;
pub mod check;
pub mod cli;
pub mod client;
pub mod cpu;
pub mod engine;
pub mod environment;
pub mod exit;
pub mod files;
pub mod interrupt;
pub mod jobs;
pub mod matrix;
pub mod pacer;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod scenario;
pub mod selftest;
pub mod stats;
pub mod target;
pub mod telemetry;
