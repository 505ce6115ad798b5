//! Which code blocked in a phase: from the servers' poll timings (see
//! [`pollwatch`]), per route and task the polls, the long ones and the longest,
//! and each long poll placed on the phase's own clock, so a chart can draw it
//! under the client's latency.
//!
//! Poll figures are cumulative, like the rest of the telemetry: a phase's are the
//! difference, per process (matched by pid), between its last snapshot and its
//! latest one taken at or before the start of measurement (else its earliest; a
//! process that first appears in the last snapshot started during the phase).
//! As for the lag figures, that baseline can be up to one scrape interval into
//! the warm-up, whose polls then count with the phase's.
//! Long polls come with their start on the server's clock and the time the
//! snapshot was taken on the same clock; the middle of the scrape's round trip
//! places that moment on the client's clock.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use servers::telemetry::polls::{duration_from_secs, LongPollRecord, SourcePolls};
use servers::telemetry::{MetricsReport, PollFigures, ProcessSnapshot};

use super::scraper::Sample;
use super::series::{offset, taken};
use crate::stats::{decode, new_histogram};

/// At most this many long polls are kept per phase (the longest when there are
/// more); the rest are counted in [`PhasePolls::marks_left_out`].
pub const MAX_MARKS: usize = 2_000;

/// The longest a poll can be recorded as (the histograms' bound); longer or
/// unreadable figures from a server are clamped or dropped.
const LONGEST_S: f64 = 3_600.0;

/// Which code blocked during one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhasePolls {
    /// How long a poll had to run to count as long, in µs (the server's).
    pub threshold_us: f64,
    /// Whether some process had a snapshot to compare its last one with (an
    /// earlier one, or none at all because it started in the phase), so that
    /// `sources` are the phase's own. Without one (the server answered a single
    /// scrape) nothing can be said, which is not the same as nothing blocking.
    #[serde(default)]
    pub compared: bool,
    /// Per route and task polled in the phase, the longest poll first.
    pub sources: Vec<SourcePhasePolls>,
    /// The phase's long polls, in time order.
    pub marks: Vec<LongPollMark>,
    /// Long polls the server recorded that no scrape caught (it keeps the most
    /// recent few hundred), or past [`MAX_MARKS`].
    pub marks_left_out: u64,
}

/// One route or task over a phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourcePhasePolls {
    /// `route` or `task`.
    pub kind: String,
    pub name: String,
    pub polls: u64,
    /// Polls at or over the threshold.
    pub long_polls: u64,
    /// The longest poll in the phase, in µs.
    pub longest_us: f64,
    /// Whether `longest_us` was measured (the server's longest so far, grown
    /// since the baseline, or a difference of full histograms, to three digits)
    /// rather than the upper bound of a Prometheus bucket.
    #[serde(default = "measured")]
    pub longest_exact: bool,
}

fn measured() -> bool {
    true
}

/// One long poll on the phase's clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LongPollMark {
    pub kind: String,
    pub name: String,
    /// When it started, in seconds from the start of measurement (negative in
    /// the warm-up).
    pub start_s: f64,
    pub duration_us: f64,
    /// Which process of a multi-worker group (`None` for a single process).
    pub process: Option<usize>,
}

/// A sample with figures, and the moment they were most likely taken: the
/// middle of the scrape's round trip.
struct Scraped<'a> {
    sample: &'a Sample,
    report: &'a MetricsReport,
    at: SystemTime,
}

impl PhasePolls {
    /// The phase's poll figures from its samples (oldest first), or `None` when
    /// no snapshot carried any.
    pub fn from_samples(samples: &[Sample], measured_from: SystemTime) -> Option<PhasePolls> {
        let good: Vec<Scraped> = samples
            .iter()
            .filter_map(|sample| match &sample.scrape {
                Some(Ok(report)) => Some(Scraped {
                    sample,
                    report,
                    at: sample.at + sample.scrape_took / 2,
                }),
                _ => None,
            })
            .collect();
        let last = good.last()?;
        if !good
            .iter()
            .any(|g| g.report.processes.iter().any(|p| p.polls.is_some()))
        {
            return None;
        }
        let (sources, compared) = phase_sources(&good, measured_from);
        let (marks, marks_left_out) = marks(&good, measured_from);
        Some(PhasePolls {
            threshold_us: last
                .report
                .processes
                .iter()
                .find_map(|p| Some(finite_s(p.polls.as_ref()?.threshold_s) * 1e6))
                .unwrap_or(0.0),
            compared,
            sources,
            marks,
            marks_left_out,
        })
    }

    /// The source with the longest poll in the phase, if any was polled.
    pub fn longest(&self) -> Option<&SourcePhasePolls> {
        self.sources.first()
    }
}

/// A number of seconds from a server, as one: not negative, finite, at most
/// [`LONGEST_S`].
fn finite_s(seconds: f64) -> f64 {
    if seconds.is_finite() {
        seconds.clamp(0.0, LONGEST_S)
    } else {
        0.0
    }
}

/// When `server_s` on the clock of `figures` happened, in seconds from
/// `measured_from`: the snapshot was taken `age_s` before `at` (a sibling's
/// file is older than the answer), at `now_s` on that clock. `None` when the
/// figures cannot be placed.
fn on_phase_clock(
    server_s: f64,
    figures: &PollFigures,
    age_s: f64,
    at: SystemTime,
    measured_from: SystemTime,
) -> Option<f64> {
    if !server_s.is_finite() || !figures.now_s.is_finite() {
        return None;
    }
    let before =
        duration_from_secs(figures.now_s - server_s).checked_add(duration_from_secs(age_s))?;
    Some(offset(measured_from, at.checked_sub(before)?))
}

/// Per (kind, name), the polls of the phase summed over its processes, longest
/// first; and whether any process had a snapshot before the last to compare with.
fn phase_sources(good: &[Scraped], measured_from: SystemTime) -> (Vec<SourcePhasePolls>, bool) {
    let Some(last) = good.last() else {
        return (Vec::new(), false);
    };
    let mut merged: BTreeMap<(String, String), SourcePhasePolls> = BTreeMap::new();
    let mut compared = false;
    for after in &last.report.processes {
        let Some(figures) = &after.polls else {
            continue;
        };
        let earlier = &good[..good.len() - 1];
        let baseline = earlier
            .iter()
            .rev()
            .filter(|g| taken(g.sample) <= measured_from)
            .find_map(|g| process_of(g.report, after.pid))
            .or_else(|| earlier.iter().find_map(|g| process_of(g.report, after.pid)));
        let before = match baseline {
            // A stale file of a sibling, or a restarted process behind the same
            // stand-in id: nothing to subtract from.
            Some(before) if before.uptime_s >= after.uptime_s => continue,
            Some(before) => before.polls.as_ref(),
            // Seen only now, though earlier scrapes answered: it started in the
            // phase, and all its polls are the phase's.
            None if !earlier.is_empty() => None,
            None => continue,
        };
        compared = true;
        for source in &figures.sources {
            let earlier = before.and_then(|b| {
                b.sources
                    .iter()
                    .find(|s| s.kind == source.kind && s.name == source.name)
            });
            let Some(difference) = difference(earlier, source) else {
                continue;
            };
            let entry = merged
                .entry((source.kind.clone(), source.name.clone()))
                .or_insert_with(|| SourcePhasePolls {
                    kind: source.kind.clone(),
                    name: source.name.clone(),
                    polls: 0,
                    long_polls: 0,
                    // Below any difference, so the first one sets both.
                    longest_us: -1.0,
                    longest_exact: true,
                });
            entry.polls += difference.polls;
            entry.long_polls += difference.long_polls;
            if difference.longest_us > entry.longest_us {
                entry.longest_us = difference.longest_us;
                entry.longest_exact = difference.exact;
            }
        }
    }
    let mut sources: Vec<SourcePhasePolls> = merged.into_values().collect();
    sources.sort_by(|a, b| b.longest_us.total_cmp(&a.longest_us));
    (sources, compared)
}

/// The process `pid` of `report`, if it is there.
fn process_of(report: &MetricsReport, pid: u32) -> Option<&ProcessSnapshot> {
    report.processes.iter().find(|p| p.pid == pid)
}

/// One source's polls between two snapshots.
struct Difference {
    polls: u64,
    long_polls: u64,
    longest_us: f64,
    exact: bool,
}

/// One source's polls between two snapshots; `None` if it was not polled in
/// between. Fewer polls after than before means the counters were reset (a
/// restarted process behind the same stand-in id): everything after counts.
fn difference(before: Option<&SourcePolls>, after: &SourcePolls) -> Option<Difference> {
    let before = before.filter(|b| b.polls <= after.polls);
    let polls = after.polls - before.map_or(0, |b| b.polls);
    if polls == 0 {
        return None;
    }
    let long_polls = after
        .long_polls
        .saturating_sub(before.map_or(0, |b| b.long_polls));
    let histogram = |s: Option<&SourcePolls>| match s {
        None => Some(new_histogram()),
        Some(s) => decode(s.histogram.as_deref()?).ok(),
    };
    let in_between = match (histogram(before), histogram(Some(after))) {
        (Some(b), Some(mut a)) => a.subtract(&b).ok().map(|_| a.max() as f64 / 1e3),
        _ => None,
    };
    let max_s = finite_s(after.max_s);
    // A longest-so-far that grew in between is the longest in between, exactly;
    // otherwise the histograms' difference says (to three digits, or to the
    // bucket's upper bound from Prometheus text).
    let (longest_us, exact) = if max_s > before.map_or(0.0, |b| finite_s(b.max_s)) {
        (max_s * 1e6, true)
    } else {
        (
            in_between.unwrap_or(0.0),
            in_between.is_some() && !after.buckets_only,
        )
    };
    Some(Difference {
        polls,
        long_polls,
        longest_us,
        exact,
    })
}

/// The long polls of every snapshot, each once (by process and sequence
/// number), placed on the phase's clock; and how many the scrapes missed.
fn marks(good: &[Scraped], measured_from: SystemTime) -> (Vec<LongPollMark>, u64) {
    // Per pid, the sequence number of the next long poll not yet seen.
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut marks = Vec::new();
    let mut left_out = 0;
    for g in good {
        for process in &g.report.processes {
            let Some(figures) = &process.polls else {
                continue;
            };
            let seen_up_to = next.get(&process.pid).copied();
            let new = figures
                .long_polls
                .iter()
                .filter(|p| seen_up_to.is_none_or(|n| p.seq >= n));
            for record in new {
                if let Some(mark) = place(record, figures, process, g.at, measured_from) {
                    marks.push(mark);
                }
            }
            if let (Some(n), Some(oldest)) = (seen_up_to, figures.long_polls.first()) {
                // Sequence numbers handed out that no scrape caught.
                left_out += oldest.seq.saturating_sub(n);
            }
            let total = figures.long_polls_total.max(seen_up_to.unwrap_or(0));
            next.insert(process.pid, total);
        }
    }
    // Long polls from before the phase's first sample belong to an earlier phase.
    if let Some(first) = good.first() {
        let earliest = offset(measured_from, first.sample.at);
        marks.retain(|m| m.start_s + m.duration_us / 1e6 >= earliest);
    }
    marks.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    if marks.len() > MAX_MARKS {
        // Keep the longest, in time order.
        let mut by_length: Vec<usize> = (0..marks.len()).collect();
        by_length.sort_by(|&a, &b| marks[b].duration_us.total_cmp(&marks[a].duration_us));
        let mut keep = vec![false; marks.len()];
        for &i in &by_length[..MAX_MARKS] {
            keep[i] = true;
        }
        left_out += (marks.len() - MAX_MARKS) as u64;
        let mut i = 0;
        marks.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
    (marks, left_out)
}

/// `record` on the phase's clock; `None` if its figures are unreadable.
fn place(
    record: &LongPollRecord,
    figures: &PollFigures,
    process: &ProcessSnapshot,
    at: SystemTime,
    measured_from: SystemTime,
) -> Option<LongPollMark> {
    if !record.duration_s.is_finite() || record.duration_s < 0.0 {
        return None;
    }
    Some(LongPollMark {
        kind: record.kind.clone(),
        name: record.name.clone(),
        start_s: on_phase_clock(record.started_s, figures, process.age_s, at, measured_from)?,
        duration_us: finite_s(record.duration_s) * 1e6,
        process: process.process,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::encode;

    /// A one-process report whose `/work/cpu` route has polled `polls_ms` so far
    /// and whose recent long polls are `long` (seq, started_s, duration_s), taken
    /// at `now_s` on the server's clock, with `total` long polls ever.
    fn report(now_s: f64, polls_ms: &[u64], long: &[(u64, f64, f64)], total: u64) -> MetricsReport {
        let mut h = new_histogram();
        for ms in polls_ms {
            h.record((ms * 1_000_000).max(1_000)).unwrap();
        }
        let json = serde_json::json!({
            "schema_version": 1, "variant": "t",
            "processes": [{
                "process": null, "pid": 7, "uptime_s": now_s, "age_s": 0.0,
                "lag": {"count": 0, "sum_s": 0.0, "p50_s": 0.0, "p99_s": 0.0, "max_s": 0.0,
                        "stall_s": 0.0, "histogram": encode(&new_histogram())},
                "runtime": {"flavor": "", "workers": 1, "alive_tasks": 0,
                            "global_queue_depth": 0, "busy_s": [0.0], "parks": [0]},
                "jobs": {"in_flight": 0, "running": 0, "queued": 0, "completed": 0, "rejected": 0},
            }]
        });
        let mut r: MetricsReport = serde_json::from_value(json).unwrap();
        let p: &mut ProcessSnapshot = &mut r.processes[0];
        p.polls = Some(PollFigures {
            threshold_s: 0.001,
            now_s,
            sources: vec![SourcePolls {
                kind: "route".into(),
                name: "/work/cpu".into(),
                polls: h.len(),
                long_polls: polls_ms.iter().filter(|&&ms| ms >= 1).count() as u64,
                max_s: polls_ms.iter().copied().max().unwrap_or(0) as f64 / 1e3,
                max_ended_s: None,
                sum_s: 0.0,
                histogram: Some(encode(&h)),
                buckets_only: false,
            }],
            long_polls: long
                .iter()
                .map(|&(seq, started_s, duration_s)| LongPollRecord {
                    seq,
                    kind: "route".into(),
                    name: "/work/cpu".into(),
                    started_s,
                    duration_s,
                })
                .collect(),
            long_polls_total: total,
        });
        r
    }

    fn sample(origin: SystemTime, s: f64, report: MetricsReport) -> Sample {
        Sample {
            at: origin + Duration::from_secs_f64(s),
            client_cpu: Duration::ZERO,
            server_cpu: None,
            scrape: Some(Ok(report)),
            scrape_took: Duration::ZERO,
        }
    }

    #[test]
    fn a_phase_sees_only_its_own_polls_and_places_them_on_its_clock() {
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        // The server's clock reads 50 s at the client's `origin`. A 300 ms poll
        // from an earlier phase (seq 0) is still in the log at the first scrape.
        let samples = [
            sample(origin, 0.0, report(50.0, &[0, 300], &[(0, 40.0, 0.3)], 1)),
            sample(
                origin,
                1.0,
                report(
                    51.0,
                    &[0, 300, 0, 20],
                    &[(0, 40.0, 0.3), (1, 50.5, 0.02)],
                    2,
                ),
            ),
            // Seqs 2 and 3 fell out of the server's log before this scrape.
            sample(
                origin,
                2.0,
                report(52.0, &[0, 300, 0, 20, 5, 5, 30], &[(4, 51.8, 0.03)], 5),
            ),
        ];
        let polls = PhasePolls::from_samples(&samples, origin).unwrap();
        assert_eq!(polls.threshold_us, 1_000.0);
        let cpu = polls.longest().unwrap();
        assert_eq!((cpu.polls, cpu.long_polls), (5, 4), "{cpu:?}");
        // The longest in the phase, not the 300 ms one before it.
        assert!((cpu.longest_us - 30_000.0).abs() < 100.0, "{cpu:?}");
        let starts: Vec<f64> = polls
            .marks
            .iter()
            .map(|m| (m.start_s * 10.0).round() / 10.0)
            .collect();
        assert_eq!(starts, [0.5, 1.8]);
        assert_eq!(polls.marks_left_out, 2);
        assert!(polls.compared);
    }

    #[test]
    fn one_answered_scrape_says_nothing_rather_than_nothing_blocked() {
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let samples = [
            sample(origin, 0.0, report(50.0, &[0, 300], &[], 0)),
            Sample {
                scrape: Some(Err(crate::telemetry::scraper::ScrapeFailure::Timeout)),
                ..sample(origin, 1.0, report(51.0, &[], &[], 0))
            },
        ];
        let polls = PhasePolls::from_samples(&samples, origin).unwrap();
        assert!(!polls.compared);
        assert!(polls.sources.is_empty());
    }

    #[test]
    fn the_longest_comes_from_the_longest_so_far_or_else_the_histograms() {
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let longest = |earlier: &[u64], later: &[u64], histograms: bool| {
            let before = report(50.0, earlier, &[], 0);
            let mut after = report(51.0, later, &[], 0);
            if !histograms {
                after.processes[0].polls.as_mut().unwrap().sources[0].histogram = None;
            }
            let samples = [sample(origin, 0.0, before), sample(origin, 1.0, after)];
            let polls = PhasePolls::from_samples(&samples, origin).unwrap();
            let cpu = polls.longest().unwrap().clone();
            (cpu.longest_us, cpu.longest_exact)
        };
        // The longest so far grew: it is the phase's.
        assert_eq!(longest(&[40], &[40, 300, 2], false), (300_000.0, true));
        // It did not: the histograms' difference finds the phase's 30 ms.
        let (us, exact) = longest(&[400], &[400, 30, 2], true);
        assert!((us - 30_000.0).abs() < 50.0 && exact, "{us}");
        // Neither way to tell: nothing is claimed.
        assert_eq!(longest(&[400], &[400, 30, 2], false), (0.0, false));
    }

    #[test]
    fn hostile_figures_are_dropped_not_panicked_on() {
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut r = report(
            f64::MAX,
            &[5],
            &[
                (0, -f64::MAX, 1e300),
                (1, f64::NAN, 0.01),
                (2, 1.0, f64::INFINITY),
                (3, f64::MAX - 1.0, 0.01),
            ],
            4,
        );
        let source = &mut r.processes[0].polls.as_mut().unwrap().sources[0];
        source.max_s = f64::INFINITY;
        source.max_ended_s = Some(f64::NEG_INFINITY);
        let samples = [
            sample(origin, 0.0, report(1.0, &[], &[], 0)),
            sample(origin, 1.0, r),
        ];
        let polls = PhasePolls::from_samples(&samples, origin).unwrap();
        // Only the readable one is placed.
        assert_eq!(polls.marks.len(), 1, "{:?}", polls.marks);
        assert!(polls.marks[0].start_s.is_finite() && polls.marks[0].duration_us == 10_000.0);
        assert_eq!(polls.sources.len(), 1);
        for s in &polls.sources {
            assert!(
                s.longest_us.is_finite() && s.longest_us <= LONGEST_S * 1e6,
                "{s:?}"
            );
        }
    }

    #[test]
    fn no_poll_figures_means_none() {
        let origin = SystemTime::UNIX_EPOCH;
        let mut r = report(1.0, &[], &[], 0);
        r.processes[0].polls = None;
        assert!(PhasePolls::from_samples(&[sample(origin, 0.0, r)], origin).is_none());
    }
}
