//! Which code blocked: the poll timings of [`pollwatch`] (every route's request
//! future and every background job task), in the form `/metrics.json` carries
//! them, histograms included, so the load generator can subtract two snapshots
//! and place each long poll on its own timeline.

use std::sync::Arc;
use std::time::Duration;

use pollwatch::{LongPoll, PollWatch, Snapshot, SourceKind, SourceSnapshot};
use serde::{Deserialize, Serialize};

use super::histogram::{decode, encode};

/// One process's poll figures, cumulative since it started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PollFigures {
    /// How long a poll must run to count as long.
    pub threshold_s: f64,
    /// When the figures were taken, in seconds on the watch's own clock: the time
    /// base of every `started_s` and `max_ended_s` here.
    pub now_s: f64,
    /// Per route and per task, sorted by kind and name.
    pub sources: Vec<SourcePolls>,
    /// The most recent long polls, oldest first (at most
    /// [`pollwatch::RECENT_LONG_POLLS`]).
    pub long_polls: Vec<LongPollRecord>,
    /// Long polls ever recorded: with each one's `seq`, a reader sees how many it
    /// missed between two reads.
    pub long_polls_total: u64,
}

/// One route (its matched pattern) or one task (its name).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourcePolls {
    /// `route` or `task`.
    pub kind: String,
    pub name: String,
    pub polls: u64,
    /// Polls that ran at least the threshold.
    pub long_polls: u64,
    pub max_s: f64,
    /// When the longest poll ended (on the `now_s` clock); `None` from a
    /// Prometheus scrape, which does not say.
    #[serde(default)]
    pub max_ended_s: Option<f64>,
    /// Every poll's duration added up, in seconds.
    #[serde(default)]
    pub sum_s: f64,
    /// Every poll's duration in ns (the lag histogram's form); `None` when
    /// unreadable.
    #[serde(default)]
    pub histogram: Option<String>,
    /// Whether `histogram` was rebuilt from a Prometheus histogram's buckets
    /// (each poll at its bucket's upper bound), so that its values are upper
    /// bounds rather than measurements.
    #[serde(default)]
    pub buckets_only: bool,
}

/// One long poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LongPollRecord {
    pub seq: u64,
    pub kind: String,
    pub name: String,
    /// When it started, on the `now_s` clock.
    pub started_s: f64,
    pub duration_s: f64,
}

/// `seconds` as a duration, whatever the number: negative or NaN is zero, too
/// large for a `Duration` (or infinite) is the largest one. The figures come
/// from other processes' files and from the network.
pub fn duration_from_secs(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
}

impl PollFigures {
    /// The figures of `watch` now.
    pub fn of(watch: &PollWatch) -> PollFigures {
        let s = watch.snapshot();
        PollFigures {
            threshold_s: s.threshold.as_secs_f64(),
            now_s: s.now.as_secs_f64(),
            sources: s
                .sources
                .iter()
                .filter(|source| !source.histogram.is_empty())
                .map(|source| SourcePolls {
                    kind: source.kind.label().to_owned(),
                    name: source.name.clone(),
                    polls: source.histogram.len(),
                    long_polls: source.over_threshold,
                    max_s: source.max.as_secs_f64(),
                    max_ended_s: Some(source.max_ended.as_secs_f64()),
                    sum_s: source.sum.as_secs_f64(),
                    histogram: Some(encode(&source.histogram)),
                    buckets_only: false,
                })
                .collect(),
            long_polls: s
                .long_polls
                .iter()
                .map(|p| LongPollRecord {
                    seq: p.seq,
                    kind: p.kind.label().to_owned(),
                    name: p.name.to_string(),
                    started_s: p.started.as_secs_f64(),
                    duration_s: p.duration.as_secs_f64(),
                })
                .collect(),
            long_polls_total: s.long_polls_total,
        }
    }

    /// Back to [`pollwatch`]'s form, for its Prometheus writer: how a process
    /// answering `/metrics` writes its siblings' figures. Sources without a
    /// readable histogram are left out.
    pub fn to_snapshot(&self) -> Snapshot {
        let kind = |k: &str| SourceKind::from_label(k).unwrap_or(SourceKind::Route);
        let secs = duration_from_secs;
        Snapshot {
            threshold: secs(self.threshold_s),
            now: secs(self.now_s),
            sources: self
                .sources
                .iter()
                .filter_map(|s| {
                    Some(SourceSnapshot {
                        kind: kind(&s.kind),
                        name: s.name.clone(),
                        histogram: decode(s.histogram.as_deref()?).ok()?,
                        max: secs(s.max_s),
                        max_ended: secs(s.max_ended_s.unwrap_or(0.0)),
                        over_threshold: s.long_polls,
                        sum: secs(s.sum_s),
                    })
                })
                .collect(),
            long_polls: self
                .long_polls
                .iter()
                .map(|p| LongPoll {
                    seq: p.seq,
                    kind: kind(&p.kind),
                    name: Arc::from(p.name.as_str()),
                    started: secs(p.started_s),
                    duration: secs(p.duration_s),
                })
                .collect(),
            long_polls_total: self.long_polls_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_json_form_keeps_the_histogram_and_the_long_polls() {
        let watch = PollWatch::new();
        let t0 = Instant::now();
        let route = watch.source(SourceKind::Route, "/work/cpu");
        route.record(t0, t0 + Duration::from_micros(20));
        route.record(t0, t0 + Duration::from_millis(40));
        // A source that was never polled is not reported.
        watch.source(SourceKind::Task, "idle");
        let figures = PollFigures::of(&watch);
        let json = serde_json::to_string(&figures).unwrap();
        let back: PollFigures = serde_json::from_str(&json).unwrap();
        assert_eq!(back.sources.len(), 1);
        assert_eq!(back.sources[0].polls, 2);
        assert_eq!(back.sources[0].long_polls, 1);
        assert_eq!(back.long_polls.len(), 1);
        assert!((back.long_polls[0].duration_s - 0.04).abs() < 1e-9);
        let snapshot = back.to_snapshot();
        assert_eq!(snapshot.sources[0].histogram.len(), 2);
        assert!(snapshot.sources[0].histogram.max() >= 39_000_000);
    }

    #[test]
    fn any_number_of_seconds_is_a_duration() {
        assert_eq!(duration_from_secs(f64::NAN), Duration::ZERO);
        assert_eq!(duration_from_secs(-3.0), Duration::ZERO);
        assert_eq!(duration_from_secs(f64::INFINITY), Duration::MAX);
        assert_eq!(duration_from_secs(1e300), Duration::MAX);
        assert_eq!(duration_from_secs(1.5), Duration::from_millis(1_500));
    }

    #[test]
    fn histograms_have_the_bounds_the_decoder_checks() {
        use super::super::histogram::{HIGHEST_NS, LOWEST_NS, SIGFIG};
        let h = pollwatch::new_histogram();
        assert_eq!(
            (h.low(), h.high(), h.sigfig()),
            (LOWEST_NS, HIGHEST_NS, SIGFIG)
        );
    }
}
