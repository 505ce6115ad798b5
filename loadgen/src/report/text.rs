//! The human summary printed after a run: per stream, counts, achieved against target
//! rate, errors by kind, and latency percentiles (corrected first), followed by
//! warnings when the numbers measure the client rather than the server.

use std::fmt::Write;

use super::bench::BenchReport;
use super::format::format_us;
use super::stream::StreamReport;
use super::warnings::bench_warnings;
use crate::recorder::LATE_THRESHOLD;
use crate::stats::Percentiles;

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

/// `  LABEL  p50 …  p99 …  max …  (NOTE)`: a time that is not a request's latency.
fn p50_p99_max_row(label: &str, p: &Percentiles, note: &str) -> String {
    format!(
        "  {label:<11} p50 {}  p99 {}  max {}  ({note})\n",
        format_us(p.p50_us),
        format_us(p.p99_us),
        format_us(p.max_us)
    )
}

/// The agents a merged report adds up, one line each, then what a merge leaves
/// out.
fn merged_from_summary(report: &BenchReport) -> String {
    let mut out = format!(
        "merged from {} reports (histograms added; intervals matched by wall-clock time):\n",
        report.merged_from.len()
    );
    for source in &report.merged_from {
        let clock = match &source.start {
            Some(start) => start.describe(),
            None => "no --start-at record".into(),
        };
        let _ = writeln!(
            out,
            "  {}: {} interval(s) after the first, {:+.3} ms off; send lateness max {}; {clock}",
            source.file,
            source.offset_intervals,
            source.skew_ms,
            source
                .lateness_max_us
                .map_or_else(|| "-".to_owned(), format_us),
        );
    }
    out.push_str(
        "  (send lateness, set-up, connect and first-byte times are per agent: see each report)\n\n",
    );
    out
}

/// The summary of one stream.
pub fn stream_summary(s: &StreamReport) -> String {
    let mut out = String::new();
    let c = &s.counts;
    match s.target_rate {
        Some(rate) if !s.stages.is_empty() => {
            let stages: Vec<String> = s
                .stages
                .iter()
                .map(|st| {
                    format!(
                        "{} to {}/s",
                        humantime::format_duration(st.duration),
                        st.target
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{}  {} {}  open loop, stages from {}/s: {} ({rate:.1} req/s on average) on {} connections",
                s.name,
                s.method,
                s.path,
                s.start_rate.unwrap_or(0.0),
                stages.join(", "),
                s.connections
            );
        }
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
        ("too large", c.too_large),
        ("reset", c.resets),
        ("goaway", c.goaways),
    ];
    let _ = writeln!(out, "  failures    {}", nonzero(&failures));
    let _ = writeln!(
        out,
        "  latency     {:>10}{:>10}{:>10}{:>10}{:>10}",
        "p50", "p90", "p99", "p99.9", "max"
    );
    out.push_str(&percentile_row("corrected", &s.latency.corrected));
    out.push_str(&percentile_row("uncorrected", &s.latency.uncorrected));
    if let Some(first_byte) = &s.first_byte {
        out.push_str(&percentile_row("first byte", first_byte));
    }
    if let Some(setup) = &s.setup {
        out.push_str(&p50_p99_max_row(
            "set-up",
            setup,
            "connect and any TLS handshake, connections opened before the clock",
        ));
    }
    if let Some(connect) = &s.connect {
        out.push_str(&p50_p99_max_row(
            "connect",
            connect,
            "a new connection per request",
        ));
    }
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

/// The whole summary: a header line, each stream, then warnings.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let protocol = match report.config.streams_per_connection {
        1 if report.config.protocol == "HTTP/1.1" => String::new(),
        1 => format!(" over {}", report.config.protocol),
        n => format!(
            " over {}, {n} streams per connection",
            report.config.protocol
        ),
    };
    let _ = writeln!(
        out,
        "loadgen {}: {}{protocol} for {}s after {}s warm-up\n{}\n",
        report.tool_version,
        report.config.url,
        report.config.duration_s,
        report.config.warmup_s,
        report.environment.one_line()
    );
    if let Some(start) = &report.start {
        let _ = writeln!(out, "{}\n", start.describe());
    }
    if !report.merged_from.is_empty() {
        out.push_str(&merged_from_summary(report));
    }
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
    if let Some(t) = &report.server_telemetry {
        out.push_str(&server_summary(t));
    }
    for w in bench_warnings(report) {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// What `--scrape` and `--server-pid` saw: the server's event-loop lag and busy
/// share over the measured time, and the most CPU either side used in an interval.
fn server_summary(t: &crate::telemetry::ServerTelemetry) -> String {
    let mut out = String::from("server");
    if let Some(lag) = &t.lag {
        let _ = write!(
            out,
            "  event-loop lag p50 {}  p99 {}  max {}",
            format_us(lag.p50_us),
            format_us(lag.p99_us),
            format_us(t.lag_max_us.unwrap_or(lag.max_us))
        );
    }
    if let Some(busy) = t.busy_ratio {
        let _ = write!(out, "  workers busy {:.0} %", busy * 100.0);
    }
    let server_cpu = t
        .intervals
        .iter()
        .filter(|i| i.start_s >= 0.0)
        .filter_map(|i| i.server_cpu)
        .reduce(f64::max);
    if let Some(cpu) = server_cpu {
        let _ = write!(out, "  CPU max {cpu:.2} cores per interval");
    }
    let _ = write!(out, "  (client CPU max {:.2} cores)", t.client_cpu_max);
    if t.scrapes > 0 {
        let failed: u64 = t.scrape_failures.values().sum();
        let _ = write!(out, "; {} scrapes, {failed} failed", t.scrapes);
    }
    out.push('\n');
    out.push_str(&polls_summary(t));
    out.push('\n');
    out
}

/// Which code blocked, when the server times its polls: the routes and tasks
/// with long polls, longest first (at most five), or that none was long.
fn polls_summary(t: &crate::telemetry::ServerTelemetry) -> String {
    use crate::report::polls::{loop_kept_running, source_name};
    let Some(polls) = &t.polls else {
        return String::new();
    };
    if !polls.compared {
        return "longest polls: unknown (no two snapshots of a process to compare)\n".into();
    }
    let long: Vec<String> = polls
        .sources
        .iter()
        .filter(|s| s.long_polls > 0)
        .take(5)
        .map(|s| {
            format!(
                "{} {} ({} of {} polls long)",
                source_name(&s.kind, &s.name),
                format_us(s.longest_us),
                s.long_polls,
                s.polls
            )
        })
        .collect();
    if long.is_empty() {
        return format!(
            "longest polls: none reached {} (every route and task kept its polls short)\n",
            format_us(polls.threshold_us)
        );
    }
    let ran = if loop_kept_running(t) == Some(true) {
        "; the lag probe stayed far below the longest, so the loop kept running"
    } else {
        ""
    };
    format!(
        "longest polls (≥ {}): {}{ran}\n",
        format_us(polls.threshold_us),
        long.join(", ")
    )
}
