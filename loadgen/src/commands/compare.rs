//! `loadgen compare BASE CURRENT`: two runs, or two folders of repeated runs,
//! variant by variant; or two `bench --json` reports (or folders of them), stream
//! by stream (the verdicts are [`crate::check::compare`]'s): exit 99 when a figure
//! regressed.

use std::process::ExitCode;

use super::{judged, CommandError};
use crate::check::compare::{compare, compare_benches, render, Noise, Row, Verdict};
use crate::cli::CompareArgs;
use crate::report::load::{load_side, Side};
use crate::report::{BenchReport, RunReport};

/// The latency noise factor with three or more runs a side. Measured on 2 shared
/// cores (`results/compare-power/`, README): with 3 s steps, the lowest factor with
/// no false alarm in 21 A/A comparisons (1.1 had 2, from a sub-millisecond p99),
/// and every one of 42 injected regressions detected.
const NOISE_REPEATED: f64 = 1.5;

/// The latency noise factor with a single run on a side. Measured likewise, at 2:
/// 0–2 false alarms in 20 A/A comparisons, and 5–10 detections of 20; a single
/// run cannot do much better on a shared machine.
const NOISE_SINGLE: f64 = 2.0;

/// Runs `loadgen compare`.
pub fn run(args: &CompareArgs) -> Result<ExitCode, CommandError> {
    let (base, current) = (load_side(&args.base)?, load_side(&args.current)?);
    let runs = |side: &Side| match side {
        Side::Runs(runs) => runs.len(),
        Side::Benches(benches) => benches.len(),
    };
    let noise = args
        .noise
        .unwrap_or(if runs(&base).min(runs(&current)) >= 3 {
            NOISE_REPEATED
        } else {
            NOISE_SINGLE
        });
    if !(noise > 1.0 && args.noise_throughput > 1.0) {
        return Err(CommandError::Usage(
            "--noise and --noise-throughput must be above 1".into(),
        ));
    }
    let noise = Noise {
        latency: noise,
        throughput: args.noise_throughput,
    };
    let (rows, what, unit) = match (&base, &current) {
        (Side::Runs(base), Side::Runs(current)) => (
            compare_runs(base, current, noise)?,
            runs_described(base, current),
            "variant",
        ),
        (Side::Benches(base), Side::Benches(current)) => (
            {
                if let Some(difference) = bench_loads_differ(base, current) {
                    return Err(CommandError::Usage(difference));
                }
                compare_benches(base, current, noise)
            },
            benches_described(base, current),
            "stream",
        ),
        _ => return Err(CommandError::Usage(
            "one side holds `run` reports and the other `bench` reports; compare like with like"
                .into(),
        )),
    };
    if rows.is_empty() {
        return Err(anyhow::anyhow!("no {unit} has figures on both sides").into());
    }
    println!(
        "{what}; medians across runs, [95 % interval; with several runs, the median of their low ends to the median of their high ends]; noise factor {} for latencies, {} for throughput",
        noise.latency, noise.throughput
    );
    print!("{}", render(&rows, unit));
    Ok(judged(rows.iter().all(|r| r.verdict != Verdict::Worse)))
}

/// Compares run reports, which must be of one scenario and one sweep.
fn compare_runs(
    base: &[RunReport],
    current: &[RunReport],
    noise: Noise,
) -> Result<Vec<Row>, CommandError> {
    let mut scenarios = base.iter().chain(current).map(|r| r.scenario);
    if let Some(other) = scenarios.find(|s| *s != base[0].scenario) {
        return Err(CommandError::Usage(format!(
            "the runs mix the {} and {other} scenarios; compare runs of one scenario",
            base[0].scenario
        )));
    }
    let loads = &base[0].settings.loads;
    if let Some(other) = base
        .iter()
        .chain(current)
        .find(|r| &r.settings.loads != loads)
    {
        return Err(CommandError::Usage(format!(
            "the runs swept different loads ({loads:?} and {:?}); compare runs of one sweep",
            other.settings.loads
        )));
    }
    Ok(compare(base, current, noise))
}

/// Why the bench reports cannot be compared: a stream of both sides offered a
/// different load (mode, rate, connections, a new connection per request or not).
fn bench_loads_differ(base: &[BenchReport], current: &[BenchReport]) -> Option<String> {
    let load = |s: &crate::report::StreamReport| {
        format!(
            "{:?} {:?} on {} connections{}",
            s.mode,
            s.target_rate,
            s.connections,
            if s.connect.is_some() {
                ", new per request"
            } else {
                ""
            }
        )
    };
    let first = &base[0];
    for report in base.iter().chain(current) {
        for stream in &report.streams {
            let Some(reference) = first.streams.iter().find(|s| s.name == stream.name) else {
                continue;
            };
            if load(reference) != load(stream) {
                return Some(format!(
                    "stream {} offered different loads ({} and {}); compare bench reports of one load",
                    stream.name,
                    load(reference),
                    load(stream)
                ));
            }
        }
    }
    None
}

fn runs_described(base: &[RunReport], current: &[RunReport]) -> String {
    format!(
        "base: {} run(s), current: {} run(s) of the {} scenario",
        base.len(),
        current.len(),
        base[0].scenario
    )
}

fn benches_described(base: &[BenchReport], current: &[BenchReport]) -> String {
    format!(
        "base: {} bench report(s) of {}, current: {} of {}",
        base.len(),
        base[0].config.url,
        current.len(),
        current[0].config.url
    )
}
