//! The human summary printed after a run: per stream, counts, achieved against target
//! rate, errors by kind, and latency percentiles (corrected first), followed by
//! warnings when the numbers measure the client rather than the server.

use std::fmt::Write;

use super::{BenchReport, StreamReport};
use crate::recorder::LATE_THRESHOLD;
use crate::stats::Percentiles;

/// Share of late requests above which the summary warns.
const LATE_WARNING_SHARE: f64 = 0.01;

/// Formats microseconds with a unit that keeps three or four significant digits.
pub fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

fn percentile_row(label: &str, p: &Percentiles) -> String {
    format!(
        "  {label:<12}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
        format_us(p.p50_us),
        format_us(p.p90_us),
        format_us(p.p99_us),
        format_us(p.p99_9_us),
        format_us(p.max_us)
    )
}

/// `name count` for every non-zero count, or `none`.
fn nonzero(counts: &[(&str, u64)]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The summary of one stream.
pub fn stream_summary(s: &StreamReport) -> String {
    let mut out = String::new();
    let c = &s.counts;
    match s.target_rate {
        Some(rate) => {
            let _ = writeln!(
                out,
                "{}  {} {}  open loop, {rate:.1} req/s target on {} connections",
                s.name, s.method, s.path, s.connections
            );
        }
        None => {
            let _ = writeln!(
                out,
                "{}  {} {}  closed loop on {} connections",
                s.name, s.method, s.path, s.connections
            );
        }
    }
    let _ = write!(
        out,
        "  requests    {} sent ({:.1}/s), {} responses ({:.1}/s)",
        c.sent, s.achieved_rate, c.responses, s.throughput
    );
    if s.target_rate.is_some() {
        let _ = write!(
            out,
            ", {} late (>{}ms), {} unsent",
            c.late,
            LATE_THRESHOLD.as_millis(),
            s.unsent
        );
    }
    out.push('\n');
    let statuses = [
        ("1xx", c.status_1xx),
        ("2xx", c.status_2xx),
        ("3xx", c.status_3xx),
        ("4xx", c.status_4xx),
        ("5xx", c.status_5xx),
    ];
    let _ = writeln!(out, "  status      {}", nonzero(&statuses));
    let failures = [
        ("connect", c.connect_errors),
        ("timeout", c.timeouts),
        ("io", c.io_errors),
        ("abandoned", c.abandoned),
    ];
    let _ = writeln!(out, "  failures    {}", nonzero(&failures));
    let _ = writeln!(
        out,
        "  latency     {:>10}{:>10}{:>10}{:>10}{:>10}",
        "p50", "p90", "p99", "p99.9", "max"
    );
    out.push_str(&percentile_row("corrected", &s.latency.corrected));
    out.push_str(&percentile_row("uncorrected", &s.latency.uncorrected));
    if let Some(lateness) = &s.lateness {
        let _ = writeln!(
            out,
            "  send lateness  p50 {}  p99 {}  max {}",
            format_us(lateness.p50_us),
            format_us(lateness.p99_us),
            format_us(lateness.max_us)
        );
    }
    out
}

/// Warnings a reader must see before trusting the numbers.
pub fn warnings(report: &BenchReport) -> Vec<String> {
    let mut warnings = Vec::new();
    if report.interrupted {
        warnings.push("the run was interrupted: figures cover only the part that ran".into());
    }
    if report.environment.build.opt_level == "0" {
        warnings.push(
            "loadgen was built without optimisation; its own overhead may show in the numbers"
                .into(),
        );
    }
    for s in &report.streams {
        let sent = s.counts.sent.max(1) as f64;
        if s.target_rate.is_some() && s.counts.late as f64 / sent > LATE_WARNING_SHARE {
            warnings.push(format!(
                "{}: {:.1}% of requests were sent over {}ms late (all connections busy, or the client short of CPU); corrected latency includes that wait",
                s.name,
                100.0 * s.counts.late as f64 / sent,
                LATE_THRESHOLD.as_millis()
            ));
        }
        if s.unsent > 0 {
            warnings.push(format!(
                "{}: {} requests fell due but were never sent before the end (all connections busy); their corrected latency counts to the end as a lower bound",
                s.name, s.unsent
            ));
        }
        if s.counts.abandoned > 0 {
            warnings.push(format!(
                "{}: {} requests were still unanswered when the run stopped waiting; they are in the latency figures at the time they were given up (lower bounds)",
                s.name, s.counts.abandoned
            ));
        }
        if s.counts.responses == 0 {
            warnings.push(format!("{}: no responses at all", s.name));
        }
    }
    warnings
}

/// The whole summary: a header line, each stream, then warnings.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "loadgen {}: {} for {}s after {}s warm-up\n{}\n",
        report.tool_version,
        report.config.url,
        report.config.duration_s,
        report.config.warmup_s,
        report.environment.one_line()
    );
    for s in &report.streams {
        out.push_str(&stream_summary(s));
        out.push('\n');
    }
    for j in &report.jobs {
        let f = &j.figures;
        let _ = writeln!(
            out,
            "jobs {}: {} submitted, {} accepted, {} refused (503), {} submit errors; {} done, {} failed, {} lost; queue wait p50 {} p99 {}, run p50 {} p99 {}\n",
            j.name,
            f.submitted,
            f.accepted,
            f.rejected,
            f.submit_errors,
            f.done,
            f.failed,
            f.lost,
            format_us(f.queue_wait.p50_us),
            format_us(f.queue_wait.p99_us),
            format_us(f.run.p50_us),
            format_us(f.run.p99_us)
        );
    }
    for w in warnings(report) {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_sensible_units() {
        assert_eq!(format_us(12.4), "12µs");
        assert_eq!(format_us(1_234.0), "1.23ms");
        assert_eq!(format_us(2_500_000.0), "2.50s");
    }
}
