//! Evaluating thresholds against a report: selectors `VARIANT.STREAM[.PHASE].STAT`
//! in a `loadgen run` report, `STREAM.STAT` in a `loadgen bench` one.

use super::expr::{Operand, Percentile, Selector, Stat, Threshold};
use crate::report::format::format_us;
use crate::report::{
    BenchReport, PhaseReport, Report, RunReport, StreamReport, VariantReport, VariantStatus,
};
use crate::telemetry::ServerTelemetry;

/// The result of one threshold for one variant (a `*` threshold gives one per
/// variant).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The expression, with `*` replaced by the variant it was checked for.
    pub name: String,
    pub passed: bool,
    /// What was compared, readable: `9.68s > 39.70ms (10 × 3.97ms)`.
    pub detail: String,
}

fn variant<'a>(report: &'a RunReport, name: &str) -> Result<&'a VariantReport, String> {
    report
        .variants
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = report.variants.iter().map(|v| v.name.as_str()).collect();
            format!(
                "unknown variant {name:?}; the report has {}",
                names.join(", ")
            )
        })
}

/// The value `sel` names for variant `v`; `Ok(None)` when the variant has no
/// measurement (it failed), which fails the threshold rather than erroring.
fn value(v: &VariantReport, sel: &Selector) -> Result<Option<f64>, String> {
    if sel.stat == Stat::Capacity {
        return Ok(v.sweep.as_ref().map(|s| s.capacity));
    }
    match sel.stat {
        Stat::Efficiency | Stat::Inflation => {
            let (stream, what) = if sel.stat == Stat::Efficiency {
                ("heavy", "efficiency")
            } else {
                ("probe", "inflation")
            };
            if sel.stream != stream {
                return Err(format!(
                    "{}: {what} is a figure of the {stream} stream",
                    sel.text
                ));
            }
            return Ok(v.figures.as_ref().map(|f| {
                if sel.stat == Stat::Efficiency {
                    f.heavy_efficiency
                } else {
                    f.probe_inflation
                }
            }));
        }
        _ => {}
    }
    if v.phases.is_empty() {
        return Ok(None);
    }
    let phases: Vec<_> = match &sel.phase {
        // A step the sweep skipped (the server was frozen), or a phase a failed
        // variant did not reach, has no measurement.
        Some(name)
            if v.skipped_steps.contains(name)
                || (v.status != VariantStatus::Ok && v.phase(name).is_none()) =>
        {
            return Ok(None)
        }
        Some(name) => {
            let phase = v.phase(name).ok_or_else(|| {
                let names: Vec<&str> = v.phases.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "{}: unknown phase {name:?}; use {}",
                    sel.text,
                    names.join(", ")
                )
            })?;
            vec![phase]
        }
        None if matches!(sel.stat, Stat::Count | Stat::Errors) => v.phases.iter().collect(),
        None => {
            return Err(format!(
                "{}: this statistic needs a phase: VARIANT.STREAM.PHASE.STAT",
                sel.text
            ))
        }
    };
    if sel.stream == SERVER {
        return server_value(&phases, sel);
    }
    let streams: Vec<_> = phases
        .iter()
        .filter_map(|p| p.stream(&sel.stream))
        .collect();
    stream_value(&streams, sel).map(Some)
}

/// The pseudo-stream naming the server's own event-loop lag in a run report.
const SERVER: &str = "server";

/// `VARIANT.server[.PHASE].STAT`: the server's event-loop lag (percentiles, mean,
/// max with stalls in progress), `count` (lag samples) or `errors` (failed
/// scrapes). `None` when the phase has no server figures (telemetry off).
fn server_value(phases: &[&PhaseReport], sel: &Selector) -> Result<Option<f64>, String> {
    let telemetry: Vec<_> = phases
        .iter()
        .filter_map(|p| p.server_telemetry.as_ref())
        .collect();
    telemetry_value(&telemetry, sel)
}

/// The statistic `sel` names of the server figures in `telemetry` (one per phase
/// it covers); `None` without any.
fn telemetry_value(telemetry: &[&ServerTelemetry], sel: &Selector) -> Result<Option<f64>, String> {
    // Without lag samples (no scrape, or one with no lag figures) there is
    // nothing to judge: not a zero.
    let measured = |t: &&ServerTelemetry| t.lag.is_some_and(|l| l.count > 0);
    let lag_stat = matches!(sel.stat, Stat::Latency(_) | Stat::Mean | Stat::Count);
    if telemetry.is_empty() || (lag_stat && !telemetry.iter().any(measured)) {
        return Ok(None);
    }
    let lag = |t: &ServerTelemetry| t.lag.unwrap_or_default();
    Ok(Some(match sel.stat {
        Stat::Latency(Percentile::Max) => match telemetry[0].lag_max_us {
            Some(max) => max,
            None => return Ok(None),
        },
        Stat::Latency(percentile) => match telemetry[0].lag {
            Some(l) => percentile.of(&l),
            None => return Ok(None),
        },
        Stat::Mean => lag(telemetry[0]).mean_us,
        Stat::Count => telemetry.iter().map(|t| lag(t).count as f64).sum(),
        Stat::Errors => telemetry
            .iter()
            .map(|t| t.scrape_failures.values().sum::<u64>() as f64)
            .sum(),
        Stat::Rate
        | Stat::Efficiency
        | Stat::Inflation
        | Stat::Capacity
        | Stat::Connect(_)
        | Stat::FirstByte(_) => {
            return Err(format!(
                "{}: the server stream has lag statistics (p50 … max, mean), count and errors",
                sel.text
            ))
        }
    }))
}

/// The value `sel` names in `streams` (one per phase it covers).
fn stream_value(streams: &[&StreamReport], sel: &Selector) -> Result<f64, String> {
    if streams.is_empty() {
        return Err(format!("{}: no stream {:?} there", sel.text, sel.stream));
    }
    let s = streams[0];
    let l = &s.latency.corrected;
    Ok(match sel.stat {
        Stat::Latency(percentile) => percentile.of(l),
        Stat::Connect(percentile) => match &s.connect {
            Some(connect) => percentile.of(connect),
            None => {
                return Err(format!(
                    "{}: stream {:?} has no connect times (it keeps its connections open)",
                    sel.text, s.name
                ))
            }
        },
        Stat::FirstByte(percentile) => match &s.first_byte {
            Some(first_byte) => percentile.of(first_byte),
            None => {
                return Err(format!(
                    "{}: stream {:?} has no first-byte times (no request was answered)",
                    sel.text, s.name
                ))
            }
        },
        Stat::Mean => l.mean_us,
        Stat::Rate => s.throughput,
        Stat::Count => streams.iter().map(|s| s.counts.sent as f64).sum(),
        Stat::Errors => streams
            .iter()
            .map(|s| (s.counts.errors() + s.unsent) as f64)
            .sum(),
        Stat::Efficiency | Stat::Inflation | Stat::Capacity => {
            return Err(format!(
                "{}: efficiency, inflation and capacity exist only in run reports",
                sel.text
            ))
        }
    })
}

fn show(stat: Stat, v: f64) -> String {
    if stat.is_latency() {
        format_us(v)
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Evaluates `t` against `report`: one outcome per variant it applies to. An error
/// (unknown variant, stream or phase) means the threshold could not be checked.
pub fn evaluate(report: &Report, t: &Threshold) -> Result<Vec<Outcome>, String> {
    match report {
        Report::Run(run) => {
            if t.left.bench || matches!(&t.right, Operand::Scaled(_, s) if s.bench) {
                return Err("a run report needs VARIANT.STREAM[.PHASE].STAT selectors".into());
            }
            evaluate_run(run, t)
        }
        Report::Bench(bench) => evaluate_bench(bench, t),
    }
}

fn evaluate_bench(report: &BenchReport, t: &Threshold) -> Result<Vec<Outcome>, String> {
    let value = |sel: &Selector| {
        if !sel.bench {
            return Err(format!(
                "{}: a bench report needs STREAM.STAT selectors",
                sel.text
            ));
        }
        let streams: Vec<&StreamReport> = report
            .streams
            .iter()
            .filter(|s| s.name == sel.stream)
            .collect();
        // `server.STAT`: the figures `--scrape` read, unless a stream is so named.
        if streams.is_empty() && sel.stream == SERVER {
            let telemetry: Vec<&ServerTelemetry> = report.server_telemetry.iter().collect();
            return telemetry_value(&telemetry, sel)?.ok_or_else(|| {
                format!(
                    "{}: the report has no server figures (run bench with --scrape)",
                    sel.text
                )
            });
        }
        if streams.is_empty() {
            let names: Vec<&str> = report.streams.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "unknown stream {:?}; the report has {}",
                sel.stream,
                names.join(", ")
            ));
        }
        stream_value(&streams, sel)
    };
    let left = value(&t.left)?;
    let (right, right_text) = match &t.right {
        Operand::Value(v) => (*v, show(t.left.stat, *v)),
        Operand::Scaled(factor, sel) => {
            let v = value(sel)? * factor;
            (v, show(sel.stat, v))
        }
    };
    Ok(vec![Outcome {
        name: t.text.clone(),
        passed: t.op.holds(left, right),
        detail: format!("{} {} {right_text}", show(t.left.stat, left), t.op),
    }])
}

fn evaluate_run(report: &RunReport, t: &Threshold) -> Result<Vec<Outcome>, String> {
    let names: Vec<String> = match &t.left.variant {
        Some(name) => vec![name.clone()],
        None => report.variants.iter().map(|v| v.name.clone()).collect(),
    };
    let mut outcomes = Vec::new();
    for name in names {
        let left_variant = variant(report, &name)?;
        let left = value(left_variant, &t.left)?;
        let (right, right_text) = match &t.right {
            Operand::Value(v) => (Some(*v), show(t.left.stat, *v)),
            Operand::Scaled(factor, sel) => {
                let other = variant(report, sel.variant.as_deref().unwrap_or(&name))?;
                let value = value(other, sel)?.map(|v| v * factor);
                let text = match value {
                    Some(v) if *factor == 1.0 => show(sel.stat, v),
                    Some(v) => format!(
                        "{} ({factor} × {})",
                        show(sel.stat, v),
                        show(sel.stat, v / factor)
                    ),
                    None => format!("n/a ({} has no measurement)", other.name),
                };
                (value, text)
            }
        };
        let expr = match &t.left.variant {
            Some(_) => t.text.clone(),
            None => t.text.replacen('*', &name, 1),
        };
        let (passed, detail) = match (left, right) {
            (Some(l), Some(r)) => (
                t.op.holds(l, r),
                format!("{} {} {right_text}", show(t.left.stat, l), t.op),
            ),
            (None, _) => (
                false,
                format!(
                    "n/a: {name} has no measurement ({})",
                    left_variant.status.name()
                ),
            ),
            (_, None) => (false, right_text),
        };
        outcomes.push(Outcome {
            name: expr,
            passed,
            detail,
        });
    }
    Ok(outcomes)
}
