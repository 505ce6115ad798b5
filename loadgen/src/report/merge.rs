//! `loadgen merge`: the bench reports of agents that loaded one server together
//! (started with the same `--start-at`), added up into one report. Histograms
//! are added, overall and interval by interval, and every percentile is read off
//! the sums: percentiles are never averaged, which would be wrong for any tail.
//!
//! Intervals are aligned by wall-clock time: an agent whose measurement began k
//! whole intervals after the earliest one's has its interval i added to the
//! merged interval i + k. Starts that are not a whole number of intervals apart
//! (within a tenth of one) are refused, because their intervals would cover
//! different moments. Rates add up over the time the agents together covered.
//!
//! What cannot be added exactly is left out of the merged streams and kept, per
//! agent, in [`MergedSource`]: send lateness (each agent's own delay, summarised
//! as percentiles only), connection set-up, connect and first-byte times.

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::bench::BenchReport;
use super::stream::{EncodedHistograms, IntervalReport, Latency, StreamReport};
use crate::clock_sync::StartSync;
use crate::recorder::Counts;
use crate::stats::{new_histogram, Percentiles};

/// Largest distance of an agent's start from a whole number of intervals after
/// the earliest one's, as a share of the interval.
const MAX_SKEW: f64 = 0.1;

/// One agent's report in a merge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergedSource {
    /// The file it was read from.
    pub file: String,
    /// The agent's host, when it recorded one (runs with `--start-at`).
    pub host: Option<String>,
    /// When its measurement began, RFC 3339.
    pub measure_started_at: String,
    /// Whole intervals after the earliest agent's measurement it began.
    pub offset_intervals: u64,
    /// How far its start was from that whole number of intervals, in ms: its
    /// intervals were added to ones this much earlier (negative) or later.
    pub skew_ms: f64,
    /// Its `--start-at` record: how late it began and what its clock claimed.
    pub start: Option<StartSync>,
    pub interrupted: bool,
    /// The most any of its open-loop requests was sent late, in µs (the
    /// agent's own delay: kept per agent, since only its percentiles exist).
    pub lateness_max_us: Option<f64>,
}

/// Adds up `reports` (each with the file it came from) into one report.
pub fn merge(reports: &[(String, BenchReport)]) -> anyhow::Result<BenchReport> {
    // One report merges to itself (with its source listed), so a script need
    // not tell one agent from several.
    anyhow::ensure!(!reports.is_empty(), "merge needs at least one report");
    let (first_file, first) = &reports[0];
    for (file, report) in reports {
        check_compatible(first_file, first, file, report)?;
    }
    let interval = Duration::from_secs_f64(first.config.interval_s);
    let starts = reports
        .iter()
        .map(|(file, report)| measure_start(file, report))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let earliest = (0..starts.len())
        .min_by_key(|&i| starts[i])
        .expect("at least one report");
    let offsets = align(&starts, interval).map_err(|(i, skew)| {
        anyhow::anyhow!(
            "{} began measuring {:.3} s away from a whole number of intervals ({}) after {}: \
             its intervals would cover other moments; start every agent with the same --start-at",
            reports[i].0,
            skew.abs(),
            humantime::format_duration(interval),
            reports[earliest].0
        )
    })?;
    // Every agent must have been measuring while the first one was.
    let first_end = reports[earliest].1.config.duration_s;
    for ((file, _), (k, skew)) in reports.iter().zip(&offsets) {
        let after = *k as f64 * first.config.interval_s + skew;
        anyhow::ensure!(
            after < first_end,
            "{file} began measuring {after:.1} s after {}, which measured for {first_end} s: \
             the two never loaded the server together",
            reports[earliest].0
        );
    }
    // The time the agents together covered, from the earliest start.
    let span_s = reports
        .iter()
        .zip(&offsets)
        .map(|((_, r), (k, _))| *k as f64 * first.config.interval_s + r.config.duration_s)
        .fold(0.0, f64::max);

    let mut streams = Vec::new();
    for stream in &first.streams {
        let parts: Vec<(&str, &StreamReport, u64)> = reports
            .iter()
            .zip(&offsets)
            .map(|((file, r), (k, _))| {
                let s = r
                    .streams
                    .iter()
                    .find(|s| s.name == stream.name)
                    .expect("checked: every report has the same streams");
                (file.as_str(), s, *k)
            })
            .collect();
        streams.push(merge_stream(&parts, first.config.interval_s, span_s)?);
    }

    let mut merged = first.clone();
    merged.started_at = reports
        .iter()
        .map(|(_, r)| r.started_at.clone())
        .min()
        .unwrap_or_default();
    merged.measure_started_at =
        Some(humantime::format_rfc3339_micros(starts[earliest]).to_string());
    merged.interrupted = reports.iter().any(|(_, r)| r.interrupted);
    merged.config.duration_s = span_s;
    merged.streams = streams;
    merged.server_telemetry = None;
    merged.start = None;
    merged.merged_from = reports
        .iter()
        .zip(&starts)
        .zip(&offsets)
        .map(|(((file, r), start), (k, skew))| MergedSource {
            file: file.clone(),
            host: r.start.as_ref().map(|s| s.host.clone()),
            measure_started_at: humantime::format_rfc3339_micros(*start).to_string(),
            offset_intervals: *k,
            skew_ms: skew * 1e3,
            start: r.start.clone(),
            interrupted: r.interrupted,
            lateness_max_us: r
                .streams
                .iter()
                .filter_map(|s| s.lateness.map(|l| l.max_us))
                .reduce(f64::max),
        })
        .collect();
    Ok(merged)
}

/// Refuses a pair of reports whose streams or intervals do not match.
fn check_compatible(
    first_file: &str,
    first: &BenchReport,
    file: &str,
    report: &BenchReport,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        report.jobs.is_empty(),
        "{file} has job streams; their figures cannot be added up (merge request streams only)"
    );
    anyhow::ensure!(
        report.config.interval_s == first.config.interval_s,
        "{file} has {} s intervals and {first_file} {} s: give every agent the same --interval",
        report.config.interval_s,
        first.config.interval_s
    );
    let names = |r: &BenchReport| {
        let mut names: Vec<(String, super::StreamMode)> =
            r.streams.iter().map(|s| (s.name.clone(), s.mode)).collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
    };
    anyhow::ensure!(
        names(report) == names(first),
        "{file} and {first_file} have different streams ({}; {}): merge runs of the same scenario",
        describe_streams(report),
        describe_streams(first)
    );
    for stream in &report.streams {
        anyhow::ensure!(
            stream.intervals.iter().all(|i| i.histograms.is_some()),
            "{file}: stream {} has no per-interval histograms; run every agent with --start-at, which keeps them",
            stream.name
        );
    }
    Ok(())
}

fn describe_streams(report: &BenchReport) -> String {
    let names: Vec<String> = report
        .streams
        .iter()
        .map(|s| format!("{} ({:?})", s.name, s.mode).to_lowercase())
        .collect();
    names.join(", ")
}

/// When `report`'s measurement began.
fn measure_start(file: &str, report: &BenchReport) -> anyhow::Result<SystemTime> {
    let text = report.measure_started_at.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "{file} does not say when its measurement began (an older loadgen wrote it)"
        )
    })?;
    humantime::parse_rfc3339(text)
        .map_err(|e| anyhow::anyhow!("{file}: measure_started_at {text:?}: {e}"))
}

/// Each start's whole number of intervals after the earliest one, and how far
/// (in seconds, signed) it is from that; `Err((index, skew))` for the first start
/// further than [`MAX_SKEW`] of an interval from a whole number.
pub fn align(starts: &[SystemTime], interval: Duration) -> Result<Vec<(u64, f64)>, (usize, f64)> {
    let earliest = starts
        .iter()
        .min()
        .copied()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let interval_s = interval.as_secs_f64();
    starts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let after = start
                .duration_since(earliest)
                .unwrap_or_default()
                .as_secs_f64();
            let k = (after / interval_s).round();
            let skew = after - k * interval_s;
            if skew.abs() > MAX_SKEW * interval_s {
                Err((i, skew))
            } else {
                Ok((k as u64, skew))
            }
        })
        .collect()
}

/// The sum of `encoded` histograms (corrected, uncorrected).
fn add_histograms<'a>(
    encoded: impl Iterator<Item = (&'a str, &'a EncodedHistograms)>,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let (mut corrected, mut uncorrected) = (new_histogram(), new_histogram());
    for (file, histograms) in encoded {
        let (c, u) = histograms
            .decode()
            .map_err(|e| anyhow::anyhow!("{file}: a histogram cannot be read: {e}"))?;
        corrected
            .add(&c)
            .map_err(|e| anyhow::anyhow!("{file}: {e:?}"))?;
        uncorrected
            .add(&u)
            .map_err(|e| anyhow::anyhow!("{file}: {e:?}"))?;
    }
    Ok((corrected, uncorrected))
}

/// One stream of every agent (with its file and interval offset) as one.
fn merge_stream(
    parts: &[(&str, &StreamReport, u64)],
    interval_s: f64,
    span_s: f64,
) -> anyhow::Result<StreamReport> {
    let (corrected, uncorrected) =
        add_histograms(parts.iter().map(|(file, s, _)| (*file, &s.histograms)))?;
    let sum_counts = |pick: fn(&StreamReport) -> Counts| {
        parts.iter().fold(Counts::default(), |mut sum, (_, s, _)| {
            sum.add(&pick(s));
            sum
        })
    };
    let counts = sum_counts(|s| s.counts);
    let in_window = sum_counts(|s| s.in_window.unwrap_or(s.counts));
    let span = span_s.max(f64::MIN_POSITIVE);
    let open = parts.iter().all(|(_, s, _)| s.target_rate.is_some());
    let due: f64 = parts
        .iter()
        .map(|(_, s, _)| s.target_rate.unwrap_or(0.0) * s.measured_s)
        .sum();

    for (file, s, _) in parts {
        check_grid(file, s, interval_s)?;
    }
    let length = parts
        .iter()
        .map(|(_, s, k)| *k as usize + s.intervals.len())
        .max()
        .unwrap_or(0);
    let mut intervals = Vec::with_capacity(length);
    for j in 0..length {
        let here: Vec<(&str, &IntervalReport)> = parts
            .iter()
            .filter_map(|(file, s, k)| {
                let i = j.checked_sub(*k as usize)?;
                s.intervals.get(i).map(|interval| (*file, interval))
            })
            .collect();
        intervals.push(merge_interval(&here, j as f64 * interval_s)?);
    }

    let base = parts[0].1;
    Ok(StreamReport {
        name: base.name.clone(),
        method: base.method.clone(),
        path: base.path.clone(),
        mode: base.mode,
        connections: parts.iter().map(|(_, s, _)| s.connections).sum(),
        target_rate: open.then_some(due / span),
        // Each agent's stages are its share; the merged target per interval shows
        // the sum.
        stages: Vec::new(),
        start_rate: None,
        measured_s: span_s,
        achieved_rate: counts.sent as f64 / span,
        throughput: in_window.responses as f64 / span,
        ok_throughput: in_window.status_2xx as f64 / span,
        counts,
        in_window: Some(in_window),
        unsent: parts.iter().map(|(_, s, _)| s.unsent).sum(),
        latency: Latency {
            corrected: Percentiles::of(&corrected),
            uncorrected: Percentiles::of(&uncorrected),
        },
        lateness: None,
        pacer_lateness: None,
        connect: None,
        setup: None,
        first_byte: None,
        histograms: EncodedHistograms::of(&corrected, &uncorrected),
        intervals,
    })
}

/// Refuses a stream whose measured intervals do not start on their grid (every
/// `interval_s` from the start of measurement, as this loadgen rolls them), so
/// that the i-th interval of every agent covers the same moment.
fn check_grid(file: &str, stream: &StreamReport, interval_s: f64) -> anyhow::Result<()> {
    let measured = stream
        .intervals
        .iter()
        .enumerate()
        .filter(|(_, i)| i.is_in_window(stream.measured_s));
    for (n, interval) in measured {
        let off = interval.start_s - n as f64 * interval_s;
        anyhow::ensure!(
            off.abs() <= MAX_SKEW * interval_s,
            "{file}: interval {n} of stream {} starts at {:.3} s, not on its {interval_s} s grid \
             (a report of an older loadgen?)",
            stream.name,
            interval.start_s
        );
    }
    Ok(())
}

/// The agents' intervals that cover the same moment (starting `start_s` after
/// the earliest measurement start) as one.
fn merge_interval(
    here: &[(&str, &IntervalReport)],
    start_s: f64,
) -> anyhow::Result<IntervalReport> {
    let (corrected, uncorrected) = add_histograms(here.iter().map(|(file, i)| {
        (
            *file,
            i.histograms.as_ref().expect("checked: histograms kept"),
        )
    }))?;
    let length_s = here.iter().map(|(_, i)| i.length_s).fold(0.0, f64::max);
    let targets: Vec<f64> = here.iter().filter_map(|(_, i)| i.target_rate).collect();
    // Every rate as the sum of the agents' own (over their own lengths).
    Ok(IntervalReport {
        start_s,
        length_s,
        responses: here.iter().map(|(_, i)| i.responses).sum(),
        errors: here.iter().map(|(_, i)| i.errors).sum(),
        throughput: here.iter().map(|(_, i)| i.throughput).sum(),
        sent_rate: here.iter().map(|(_, i)| i.sent_rate).sum(),
        target_rate: (!targets.is_empty()).then(|| targets.iter().sum()),
        corrected: Percentiles::of(&corrected),
        uncorrected: Percentiles::of(&uncorrected),
        histograms: Some(EncodedHistograms::of(&corrected, &uncorrected)),
        // In the window if any agent's was.
        in_window: here
            .iter()
            .filter_map(|(_, i)| i.in_window)
            .reduce(|a, b| a || b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    #[test]
    fn aligns_starts_to_whole_intervals_after_the_earliest() {
        let second = Duration::from_secs(1);
        let offsets = align(&[at(3), at(0), at(2_040)], second).unwrap();
        assert_eq!(offsets.iter().map(|o| o.0).collect::<Vec<_>>(), [0, 0, 2]);
        assert!((offsets[0].1 - 0.003).abs() < 1e-9);
        assert!((offsets[2].1 - 0.040).abs() < 1e-9);
        // A start a quarter of an interval off cannot be added to any interval.
        assert_eq!(align(&[at(0), at(250)], second).unwrap_err().0, 1);
        assert_eq!(align(&[at(0), at(1_750)], second).unwrap_err().0, 1);
        assert!(align(&[at(0), at(1_950)], second).is_ok());
    }
}
