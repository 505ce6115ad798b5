//! The figures kept per route and per task, and the log of recent long polls.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::layer::PollTimingLayer;
use crate::timed::Timed;

/// Polls at least this long count as long unless [`PollWatch::with_threshold`]
/// says otherwise. tokio's guidance is 10–100 µs between awaits; 1 ms is well
/// past it and above the noise of a shared machine.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(1);

/// How many of the most recent long polls are kept with their times.
pub const RECENT_LONG_POLLS: usize = 256;

/// Distinct routes, and distinct tasks, kept: more names of one kind than this
/// (task names built from data, say) are counted together under `(other)`.
/// Memory is per source and per thread that polls it: one histogram of about
/// 192 KiB each (a route polled by two runtime workers costs two).
const MAX_SOURCES_PER_KIND: usize = 128;

/// At most one `tracing` warning per this long; the ones in between are counted.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// An empty poll-duration histogram: nanoseconds, 1 µs to one hour, three
/// significant digits (the same form as the lag histograms of this workspace's
/// servers, so one decoder reads both). Shorter polls land in the first bucket.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 3_600 * 1_000_000_000, 3).expect("constant bounds are valid")
}

/// What a timed future is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// A request's future, named by the route it matched.
    Route,
    /// A background task, named by whoever spawned it.
    Task,
}

impl SourceKind {
    /// The Prometheus label (and JSON value) naming this kind: `route` or `task`.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Route => "route",
            SourceKind::Task => "task",
        }
    }

    /// The kind [`SourceKind::label`] names, if any.
    pub fn from_label(label: &str) -> Option<SourceKind> {
        match label {
            "route" => Some(SourceKind::Route),
            "task" => Some(SourceKind::Task),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Everything one shard recorded about one route or task.
#[derive(Default)]
struct Stats {
    /// Made on the shard's first poll, so threads that never poll this source
    /// cost nothing.
    histogram: Option<Histogram<u64>>,
    max_ns: u64,
    /// When the longest poll ended, in ns since the watch started.
    max_ended_ns: u64,
    over_threshold: u64,
    /// Every poll's duration added up, exactly (the histogram's sum is only as
    /// exact as its buckets).
    sum_ns: u64,
}

/// Shards per source. Each thread records into one (by a per-thread index), so
/// the worker threads polling the same route do not pass one lock's cache line
/// back and forth on every poll; a snapshot merges them.
const SHARDS: usize = 8;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// A shard on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Stats>);

/// One route or task being timed. Sources live as long as the process (at most
/// a few hundred per watch; see [`PollWatch::source`]), so a timed future refers
/// to its source without touching a shared reference count on every request.
pub struct Source {
    kind: SourceKind,
    name: Arc<str>,
    shards: [Shard; SHARDS],
    log: Arc<LongPollLog>,
}

impl Source {
    /// Its kind.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// Its route pattern or task name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records one poll that ran from `started` to `ended` (what [`Timed`] does on
    /// every poll; public for polls timed elsewhere, such as a runtime's own poll
    /// hooks).
    pub fn record(&self, started: Instant, ended: Instant) {
        let ns = duration_ns(ended.saturating_duration_since(started));
        let long = ns >= self.log.threshold_ns;
        {
            let shard = &self.shards[SHARD.with(|s| *s)];
            let mut stats = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            stats
                .histogram
                .get_or_insert_with(new_histogram)
                .saturating_record(ns);
            if ns > stats.max_ns {
                stats.max_ns = ns;
                stats.max_ended_ns = self.log.since_origin(ended);
            }
            if long {
                stats.over_threshold += 1;
            }
            stats.sum_ns = stats.sum_ns.saturating_add(ns);
        }
        if long {
            self.log.long_poll(self, started, ns);
        }
    }
}

impl Source {
    /// The shards merged.
    fn snapshot(&self) -> SourceSnapshot {
        let mut merged = SourceSnapshot {
            kind: self.kind,
            name: self.name.to_string(),
            histogram: new_histogram(),
            max: Duration::ZERO,
            max_ended: Duration::ZERO,
            over_threshold: 0,
            sum: Duration::ZERO,
        };
        for shard in &self.shards {
            let stats = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = &stats.histogram {
                // Same bounds: adding cannot fail.
                let _ = merged.histogram.add(h);
            }
            if Duration::from_nanos(stats.max_ns) > merged.max {
                merged.max = Duration::from_nanos(stats.max_ns);
                merged.max_ended = Duration::from_nanos(stats.max_ended_ns);
            }
            merged.over_threshold += stats.over_threshold;
            merged.sum += Duration::from_nanos(stats.sum_ns);
        }
        merged
    }
}

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// One long poll, as the log of recent ones keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LongPoll {
    /// Numbers every long poll of this watch in order, so a reader that polls
    /// the log sees which ones it has already seen and how many it missed.
    pub seq: u64,
    pub kind: SourceKind,
    pub name: Arc<str>,
    /// When the poll started, since the watch started.
    pub started: Duration,
    pub duration: Duration,
}

/// The recent long polls, the threshold, the clock and the warning limiter,
/// shared by the watch and its sources.
struct LongPollLog {
    origin: Instant,
    threshold_ns: u64,
    recent: Mutex<Recent>,
    /// When the last warning was logged, in ns since `origin` (0: never).
    last_warning_ns: AtomicU64,
    /// Long polls not warned about since the last warning.
    unwarned: AtomicU64,
}

struct Recent {
    polls: VecDeque<LongPoll>,
    next_seq: u64,
}

impl LongPollLog {
    fn since_origin(&self, t: Instant) -> u64 {
        duration_ns(t.saturating_duration_since(self.origin))
    }

    fn long_poll(&self, source: &Source, started: Instant, ns: u64) {
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            let seq = recent.next_seq;
            recent.next_seq += 1;
            if recent.polls.len() == RECENT_LONG_POLLS {
                recent.polls.pop_front();
            }
            recent.polls.push_back(LongPoll {
                seq,
                kind: source.kind,
                name: Arc::clone(&source.name),
                started: started.saturating_duration_since(self.origin),
                duration: Duration::from_nanos(ns),
            });
        }
        self.maybe_warn(source, ns);
    }

    /// Logs a warning unless one was logged less than [`WARN_EVERY`] ago, as
    /// asyncio's debug mode logs a slow callback.
    fn maybe_warn(&self, source: &Source, ns: u64) {
        let now = self.since_origin(Instant::now()).max(1);
        let last = self.last_warning_ns.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= duration_ns(WARN_EVERY);
        if !due
            || self
                .last_warning_ns
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.unwarned.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let others = self.unwarned.swap(0, Ordering::Relaxed);
        tracing::warn!(
            kind = source.kind.label(),
            name = &*source.name,
            poll_ms = ns as f64 / 1e6,
            long_polls_not_logged = others,
            "one poll of {} {:?} took {:.1} ms: nothing else on its worker thread ran meanwhile",
            source.kind.label(),
            &*source.name,
            ns as f64 / 1e6,
        );
    }
}

/// The figures of one route or task at one moment, cumulative since the watch
/// started.
#[derive(Debug, Clone)]
pub struct SourceSnapshot {
    pub kind: SourceKind,
    pub name: String,
    /// Every poll's duration in ns ([`new_histogram`]'s form); its length is the
    /// number of polls.
    pub histogram: Histogram<u64>,
    pub max: Duration,
    /// When the longest poll ended, since the watch started.
    pub max_ended: Duration,
    pub over_threshold: u64,
    /// Every poll's duration added up.
    pub sum: Duration,
}

/// Everything a watch has recorded, at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub threshold: Duration,
    /// When the snapshot was taken, since the watch started: the time base of
    /// every `started` and `max_ended` in it.
    pub now: Duration,
    /// Sorted by kind, then name.
    pub sources: Vec<SourceSnapshot>,
    /// The most recent long polls (at most [`RECENT_LONG_POLLS`]), oldest first.
    pub long_polls: Vec<LongPoll>,
    /// Long polls ever recorded (the next one's `seq`).
    pub long_polls_total: u64,
}

/// Times polls and keeps their figures per route and per task. One per process
/// is the usual; tests make several.
pub struct PollWatch {
    /// Routes, then tasks, by name (looked up by `&str`, without allocating).
    sources: RwLock<[HashMap<Box<str>, &'static Source>; 2]>,
    log: Arc<LongPollLog>,
}

impl PollWatch {
    /// A watch counting polls of at least [`DEFAULT_THRESHOLD`] as long.
    pub fn new() -> Arc<PollWatch> {
        PollWatch::with_threshold(DEFAULT_THRESHOLD)
    }

    /// A watch counting polls of at least `threshold` as long.
    pub fn with_threshold(threshold: Duration) -> Arc<PollWatch> {
        Arc::new(PollWatch {
            sources: RwLock::new(Default::default()),
            log: Arc::new(LongPollLog {
                origin: Instant::now(),
                threshold_ns: duration_ns(threshold).max(1),
                recent: Mutex::new(Recent {
                    polls: VecDeque::with_capacity(RECENT_LONG_POLLS),
                    next_seq: 0,
                }),
                last_warning_ns: AtomicU64::new(0),
                unwarned: AtomicU64::new(0),
            }),
        })
    }

    /// The threshold of a long poll.
    pub fn threshold(&self) -> Duration {
        Duration::from_nanos(self.log.threshold_ns)
    }

    /// The tower layer timing every poll of each request's future under the route
    /// axum matched. Add it with `Router::layer` so it sees the matched path.
    pub fn layer(self: &Arc<Self>) -> PollTimingLayer {
        PollTimingLayer::new(Arc::clone(self))
    }

    /// `future`, timed under the task name `name`; spawn it however you like.
    pub fn task<F: Future>(&self, name: &str, future: F) -> Timed<F> {
        Timed::new(future, self.source(SourceKind::Task, name))
    }

    /// `tokio::spawn` of `future`, timed under the task name `name`.
    pub fn spawn<F>(&self, name: &str, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(self.task(name, future))
    }

    /// The figures of `name`, made on first use. A source is never freed (it is
    /// leaked, so timed futures hold a plain reference): there are at most
    /// [`MAX_SOURCES_PER_KIND`] of each kind per watch, and a watch usually
    /// lives as long as its process.
    pub fn source(&self, kind: SourceKind, name: &str) -> &'static Source {
        if let Some(source) =
            self.sources.read().unwrap_or_else(PoisonError::into_inner)[kind.index()].get(name)
        {
            return source;
        }
        let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
        let of_kind = &mut sources[kind.index()];
        let name = if of_kind.len() >= MAX_SOURCES_PER_KIND && !of_kind.contains_key(name) {
            "(other)"
        } else {
            name
        };
        of_kind.entry(name.into()).or_insert_with(|| {
            Box::leak(Box::new(Source {
                kind,
                name: Arc::from(name),
                shards: Default::default(),
                log: Arc::clone(&self.log),
            }))
        })
    }

    /// Everything recorded so far.
    pub fn snapshot(&self) -> Snapshot {
        let sources: Vec<&'static Source> = self
            .sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flat_map(|of_kind| of_kind.values().copied())
            .collect();
        let mut sources: Vec<SourceSnapshot> = sources.iter().map(|s| s.snapshot()).collect();
        sources.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        let recent = self
            .log
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Read last, so no poll in the snapshot started or ended after it.
        let now = Instant::now().saturating_duration_since(self.log.origin);
        Snapshot {
            threshold: self.threshold(),
            now,
            sources,
            long_polls: recent.polls.iter().cloned().collect(),
            long_polls_total: recent.next_seq,
        }
    }

    /// The figures in Prometheus text format, each sample carrying `labels`
    /// besides its `route` or `task` (see [`crate::render_prometheus`]).
    pub fn prometheus(&self, labels: &[(&str, String)]) -> String {
        let snapshot = self.snapshot();
        crate::render_prometheus(&[(labels.to_vec(), &snapshot)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_are_counted_logged_in_order_and_bounded() {
        let watch = PollWatch::with_threshold(Duration::from_millis(1));
        let source = watch.source(SourceKind::Task, "t");
        let t0 = Instant::now();
        source.record(t0, t0 + Duration::from_micros(10));
        for i in 0..(RECENT_LONG_POLLS as u64 + 10) {
            source.record(t0, t0 + Duration::from_millis(2 + i % 3));
        }
        let s = watch.snapshot();
        let only = &s.sources[0];
        assert_eq!(only.histogram.len(), RECENT_LONG_POLLS as u64 + 11);
        assert_eq!(only.over_threshold, RECENT_LONG_POLLS as u64 + 10);
        assert_eq!(only.max, Duration::from_millis(4));
        assert_eq!(s.long_polls.len(), RECENT_LONG_POLLS);
        assert_eq!(s.long_polls_total, RECENT_LONG_POLLS as u64 + 10);
        assert_eq!(s.long_polls[0].seq, 10, "the oldest ones made room");
        assert!(s.long_polls.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    }

    #[test]
    fn the_same_name_is_one_source_and_names_past_the_cap_are_folded() {
        let watch = PollWatch::new();
        let a = watch.source(SourceKind::Route, "/a");
        assert!(std::ptr::eq(a, watch.source(SourceKind::Route, "/a")));
        assert!(!std::ptr::eq(a, watch.source(SourceKind::Task, "/a")));
        for i in 0..MAX_SOURCES_PER_KIND + 5 {
            watch.source(SourceKind::Task, &format!("task-{i}"));
        }
        // Tasks past the cap do not crowd out routes.
        watch.source(SourceKind::Route, "/b");
        let s = watch.snapshot();
        let tasks = s.sources.iter().filter(|s| s.kind == SourceKind::Task);
        assert_eq!(tasks.count(), MAX_SOURCES_PER_KIND + 1);
        assert!(s
            .sources
            .iter()
            .any(|s| s.name == "(other)" && s.kind == SourceKind::Task));
        assert!(s
            .sources
            .iter()
            .any(|s| s.name == "/b" && s.kind == SourceKind::Route));
    }
}
