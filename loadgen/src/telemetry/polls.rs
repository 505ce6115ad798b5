//! Which code blocked in a phase: from the servers' poll timings (see
//! [`pollwatch`]), per route and task the polls, the long ones and the longest,
//! and each long poll placed on the phase's own clock, so a chart can draw it
//! under the client's latency.
//!
//! Poll figures are cumulative, like the rest of the telemetry: a phase's are the
//! difference between the last good snapshot at or before the start of
//! measurement and the last one, per process (matched by pid). Long polls come
//! with their start on the server's clock and the time the snapshot was taken on
//! the same clock; the scrape's own send and answer times place that moment on
//! the client's clock (to within the scrape's round trip).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use servers::telemetry::polls::SourcePolls;
use servers::telemetry::{MetricsReport, PollFigures};

use super::scraper::Sample;
use crate::stats::{decode, new_histogram};

/// At most this many long polls are kept per phase (the longest when there are
/// more); the rest are counted in [`PhasePolls::marks_left_out`].
pub const MAX_MARKS: usize = 2_000;

/// Which code blocked during one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhasePolls {
    /// How long a poll had to run to count as long, in µs (the server's).
    pub threshold_us: f64,
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
    /// The longest poll in the phase, in µs (to the histogram's precision; an
    /// upper bound at the buckets' resolution from a Prometheus scrape).
    pub longest_us: f64,
}

impl SourcePhasePolls {
    /// `route /work/cpu` or `task cpu`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
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

impl PhasePolls {
    /// The phase's poll figures from its samples (oldest first), or `None` when
    /// no snapshot carried any.
    pub fn from_samples(samples: &[Sample], measured_from: SystemTime) -> Option<PhasePolls> {
        let good: Vec<(&Sample, &MetricsReport)> = samples
            .iter()
            .filter_map(|s| match &s.scrape {
                Some(Ok(report)) => Some((s, report)),
                _ => None,
            })
            .collect();
        let with_polls = |r: &MetricsReport| r.processes.iter().any(|p| p.polls.is_some());
        if !good.iter().any(|(_, r)| with_polls(r)) {
            return None;
        }
        let start = good
            .iter()
            .rev()
            .find(|(s, _)| s.at + s.scrape_took <= measured_from)
            .or(good.first());
        let mut polls = PhasePolls::default();
        if let (Some((_, first)), Some((_, last))) = (start, good.last()) {
            polls.sources = phase_sources(first, last);
            polls.threshold_us = last
                .processes
                .iter()
                .find_map(|p| Some(p.polls.as_ref()?.threshold_s * 1e6))
                .unwrap_or(0.0);
        }
        let (marks, left_out) = marks(&good, measured_from);
        polls.marks = marks;
        polls.marks_left_out = left_out;
        Some(polls)
    }

    /// The source with the longest poll in the phase, if any was polled.
    pub fn longest(&self) -> Option<&SourcePhasePolls> {
        self.sources.first()
    }
}

/// Per (kind, name), the polls between `before` and `after`, summed over the
/// processes in both; longest first.
fn phase_sources(before: &MetricsReport, after: &MetricsReport) -> Vec<SourcePhasePolls> {
    let mut merged: BTreeMap<(String, String), SourcePhasePolls> = BTreeMap::new();
    for a in &after.processes {
        let Some(b) = before.processes.iter().find(|b| b.pid == a.pid) else {
            continue;
        };
        let (Some(pa), Some(pb)) = (&a.polls, &b.polls) else {
            continue;
        };
        for source in &pa.sources {
            let earlier = pb
                .sources
                .iter()
                .find(|s| s.kind == source.kind && s.name == source.name);
            let Some((polls, long_polls, longest_us)) = difference(earlier, source) else {
                continue;
            };
            let entry = merged
                .entry((source.kind.clone(), source.name.clone()))
                .or_insert_with(|| SourcePhasePolls {
                    kind: source.kind.clone(),
                    name: source.name.clone(),
                    polls: 0,
                    long_polls: 0,
                    longest_us: 0.0,
                });
            entry.polls += polls;
            entry.long_polls += long_polls;
            entry.longest_us = entry.longest_us.max(longest_us);
        }
    }
    let mut sources: Vec<SourcePhasePolls> = merged.into_values().collect();
    sources.sort_by(|a, b| b.longest_us.total_cmp(&a.longest_us));
    sources
}

/// One source's polls, long polls and longest poll (µs) between two snapshots;
/// `None` if it was not polled in between.
fn difference(before: Option<&SourcePolls>, after: &SourcePolls) -> Option<(u64, u64, f64)> {
    let polls = after.polls.saturating_sub(before.map_or(0, |b| b.polls));
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
    // A longest-so-far that grew in between is the phase's longest, exactly;
    // otherwise the histograms' difference says (to its precision).
    let longest_us = if after.max_s > before.map_or(0.0, |b| b.max_s) {
        after.max_s * 1e6
    } else {
        in_between.unwrap_or(0.0)
    };
    Some((polls, long_polls, longest_us))
}

/// The long polls of every snapshot, each once (by process and sequence
/// number), placed on the phase's clock; and how many the scrapes missed.
fn marks(
    good: &[(&Sample, &MetricsReport)],
    measured_from: SystemTime,
) -> (Vec<LongPollMark>, u64) {
    // Per pid, the last sequence number seen.
    let mut seen: HashMap<u32, u64> = HashMap::new();
    let mut marks = Vec::new();
    let mut left_out = 0;
    for (sample, report) in good {
        let taken = sample.at + sample.scrape_took;
        for process in &report.processes {
            let Some(figures) = &process.polls else {
                continue;
            };
            let last = seen.get(&process.pid).copied();
            let new = figures
                .long_polls
                .iter()
                .filter(|p| last.is_none_or(|last| p.seq > last));
            for record in new {
                marks.push(place(
                    record,
                    figures,
                    process.age_s,
                    process.process,
                    taken,
                    measured_from,
                ));
            }
            if let (Some(last), Some(oldest)) = (last, figures.long_polls.first()) {
                // Sequence numbers the server handed out that no scrape caught.
                left_out += oldest.seq.saturating_sub(last + 1);
            }
            if figures.long_polls_total > 0 {
                seen.insert(process.pid, figures.long_polls_total - 1);
            }
        }
    }
    // Long polls from before the phase's first sample belong to an earlier phase.
    if let Some((first, _)) = good.first() {
        let earliest = match first.at.duration_since(measured_from) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
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

/// `record` on the phase's clock: the snapshot was taken `age_s` before the
/// scrape was answered, at `now_s` on the server's clock.
fn place(
    record: &servers::telemetry::polls::LongPollRecord,
    figures: &PollFigures,
    age_s: f64,
    process: Option<usize>,
    taken: SystemTime,
    measured_from: SystemTime,
) -> LongPollMark {
    let before_taken = (figures.now_s - record.started_s).max(0.0) + age_s.max(0.0);
    let started = taken
        .checked_sub(Duration::from_secs_f64(before_taken))
        .unwrap_or(taken);
    let start_s = match started.duration_since(measured_from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    LongPollMark {
        kind: record.kind.clone(),
        name: record.name.clone(),
        start_s,
        duration_us: record.duration_s * 1e6,
        process,
    }
}

#[cfg(test)]
mod tests {
    use servers::telemetry::polls::LongPollRecord;
    use servers::telemetry::ProcessSnapshot;

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
                histogram: Some(encode(&h)),
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
    }

    #[test]
    fn no_poll_figures_means_none() {
        let origin = SystemTime::UNIX_EPOCH;
        let mut r = report(1.0, &[], &[], 0);
        r.processes[0].polls = None;
        assert!(PhasePolls::from_samples(&[sample(origin, 0.0, r)], origin).is_none());
    }
}
