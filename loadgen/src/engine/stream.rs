//! One stream while it runs: the state its connection tasks share (the prepared
//! request, the current interval's recording, what each task has in flight), the
//! connection tasks themselves, and the engine's own bookkeeping of the stream
//! ([`StreamRun`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use super::IntervalOutcome;
use crate::client::{Failure, Slot};
use crate::open_loop::OpenLoop;
use crate::pacer::Pacer;
use crate::plan::{Load, Plan, RequestMix, StreamSpec, Timing};
use crate::recorder::{Counts, Recorded, Sample};
use crate::stats::EncodedHistograms;

/// Pause after a failed connect in a closed loop, so a dead server is not hammered
/// in a busy loop.
const CLOSED_LOOP_CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// The per-stream state every connection task of the stream shares.
pub(super) struct StreamShared {
    pub(super) spec: StreamSpec,
    requests: RequestMix,
    /// Turns taken of a mix of requests (unused for a single one).
    turns: AtomicU64,
    measure_start: Instant,
    timeout: Duration,
    /// Whether each closed interval keeps its histograms (encoded).
    keep_interval_histograms: bool,
    current: Mutex<Recorded>,
    /// The run's start, the zero of [`InFlight`] times.
    start: Instant,
    /// One per connection task: the request it has in flight, if any.
    in_flight: Mutex<Vec<Arc<InFlight>>>,
}

/// The request a connection task has in flight, as two plain stores per request,
/// so the engine can account for it if it has to give up waiting: nanoseconds
/// after the run's start plus one (zero: nothing in flight).
#[derive(Default)]
struct InFlight {
    due: AtomicU64,
    sent: AtomicU64,
}

impl StreamShared {
    pub(super) fn new(
        spec: &StreamSpec,
        plan: &Plan,
        start: Instant,
        measure_start: Instant,
    ) -> anyhow::Result<Self> {
        let requests = spec
            .requests(&plan.target.authority)
            .with_context(|| format!("stream {}", spec.name))?;
        Ok(StreamShared {
            spec: spec.clone(),
            requests,
            turns: AtomicU64::new(0),
            measure_start,
            timeout: plan.timing.timeout,
            keep_interval_histograms: plan.timing.keep_interval_histograms,
            current: Mutex::new(Recorded::default()),
            start,
            in_flight: Mutex::new(Vec::new()),
        })
    }

    /// A new in-flight marker for one connection task.
    fn marker(&self) -> Arc<InFlight> {
        let marker = Arc::new(InFlight::default());
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&marker));
        marker
    }

    fn since_start(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64 + 1
    }

    /// Sends one request on `slot` and records the outcome; returns it with the
    /// time it completed. `due` is the open-loop due time; a closed loop has none,
    /// its requests are due when sent.
    async fn exchange(
        &self,
        slot: &mut Slot,
        due: Option<Instant>,
        marker: &InFlight,
    ) -> (Result<http::StatusCode, Failure>, Instant) {
        let sent = Instant::now();
        let due = due.unwrap_or(sent);
        marker.due.store(self.since_start(due), Ordering::Relaxed);
        marker.sent.store(self.since_start(sent), Ordering::Relaxed);
        let request = if self.requests.is_mixed() {
            self.requests
                .pick(self.turns.fetch_add(1, Ordering::Relaxed))
        } else {
            self.requests.pick(0)
        };
        let result = slot.exchange(request, sent + self.timeout, None).await;
        marker.due.store(0, Ordering::Relaxed);
        let done = Instant::now();
        let connected_in = slot.take_connect_time();
        // From the moment the request could be written (after any connect) to its
        // response's first byte; answered requests only.
        let first_byte = slot
            .first_byte()
            .filter(|_| result.is_ok())
            .map(|at| at.saturating_duration_since(sent + connected_in.unwrap_or_default()));
        if self.spec.fresh_connections {
            slot.disconnect();
        }
        self.record(
            Sample {
                due,
                sent,
                done,
                result,
            },
            // A refused connect took no handshake worth a connect time; one cut off
            // by the timeout counts what it had taken (a lower bound).
            connected_in.filter(|_| self.spec.fresh_connections && result != Err(Failure::Connect)),
            first_byte,
        );
        (result, done)
    }

    /// Records every request still in flight as abandoned at `now` (their tasks
    /// have been stopped).
    pub(super) fn abandon_in_flight(&self, now: Instant) {
        let markers = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for marker in markers.iter() {
            let due = marker.due.swap(0, Ordering::Relaxed);
            if due == 0 {
                continue;
            }
            let at = |ns: u64| self.start + Duration::from_nanos(ns - 1);
            self.record(
                Sample {
                    due: at(due),
                    sent: at(marker.sent.load(Ordering::Relaxed).max(1)),
                    done: now,
                    result: Err(Failure::Abandoned),
                },
                None,
                None,
            );
        }
    }

    /// Records one request, with the time its new connection took to connect and
    /// the time to its response's first byte.
    fn record(&self, sample: Sample, connected_in: Option<Duration>, first_byte: Option<Duration>) {
        if sample.due < self.measure_start {
            return; // warm-up
        }
        let open_loop = matches!(self.spec.load, Load::Open { .. });
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.record(&sample, open_loop);
        if let Some(took) = connected_in {
            current.record_connect(took);
        }
        if let Some(took) = first_byte {
            current.record_first_byte(took);
        }
    }

    /// Takes the current interval's recording, leaving an empty one.
    pub(super) fn take_interval(&self) -> Recorded {
        std::mem::take(&mut *self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Counts of the current interval so far.
    pub(super) fn current_counts(&self) -> Counts {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counts
    }
}

/// The engine's view of one stream while the run goes on.
pub(super) struct StreamRun {
    pub(super) shared: Arc<StreamShared>,
    /// Open loop: the driver handing out due requests, and its pacing thread.
    pub(super) open_loop: Option<(Arc<OpenLoop>, Pacer)>,
    /// The intervals closed so far.
    pub(super) intervals: Vec<IntervalOutcome>,
    /// Everything recorded in the intervals closed so far.
    pub(super) total: Recorded,
}

impl StreamRun {
    /// Starts the stream's connection tasks, one per slot, in `tasks`; an open loop's schedule spans the
    /// warm-up and the duration of `timing`.
    pub(super) fn start(
        shared: StreamShared,
        slots: Vec<Slot>,
        timing: Timing,
        end: Instant,
        stop: &Arc<AtomicBool>,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<StreamRun> {
        let shared = Arc::new(shared);
        let open_loop = match shared.spec.load {
            Load::Open { .. } => {
                let schedule = shared
                    .spec
                    .schedule(shared.start, timing.warmup)
                    .expect("an open loop has a schedule");
                let total = schedule.due_before(timing.warmup + timing.duration);
                let (open_loop, pacer) = OpenLoop::start(
                    schedule,
                    total,
                    shared.measure_start,
                    timing.release_tick,
                    Arc::clone(stop),
                )?;
                for slot in slots {
                    tasks.spawn(open_loop_connection(
                        Arc::clone(&shared),
                        slot,
                        Arc::clone(&open_loop),
                    ));
                }
                Some((open_loop, pacer))
            }
            Load::Closed { .. } => {
                for slot in slots {
                    tasks.spawn(closed_loop_connection(
                        Arc::clone(&shared),
                        slot,
                        end,
                        Arc::clone(stop),
                    ));
                }
                None
            }
        };
        Ok(StreamRun {
            shared,
            open_loop,
            intervals: Vec::new(),
            total: Recorded::default(),
        })
    }

    /// Requests of an open-loop stream due by the end and not yet taken by a
    /// connection (whether or not the pacer has released them yet).
    pub(super) fn backlog(&self) -> u64 {
        self.open_loop.as_ref().map_or(0, |(open_loop, _)| {
            open_loop.total().saturating_sub(open_loop.claimed())
        })
    }

    /// Closes the interval `[start, start + length)`: its recording joins the total
    /// and its summary the series; the recording itself is returned.
    pub(super) fn close_interval(&mut self, start: Duration, length: Duration) -> Recorded {
        let recorded = self.shared.take_interval();
        self.total.merge(&recorded);
        let mut interval = IntervalOutcome::of(start, length, &recorded);
        interval.due = self.due_between(start, start + length);
        if self.shared.keep_interval_histograms {
            interval.histograms = Some(EncodedHistograms::of(
                &recorded.corrected,
                &recorded.uncorrected,
            ));
        }
        self.intervals.push(interval);
        recorded
    }

    /// Open loop: how many requests the schedule made due between `from` and `to`
    /// (from the start of measurement), none past the last.
    fn due_between(&self, from: Duration, to: Duration) -> Option<u64> {
        let (open_loop, _) = self.open_loop.as_ref()?;
        let warmup = self
            .shared
            .measure_start
            .saturating_duration_since(self.shared.start);
        let schedule = open_loop.schedule();
        let by = |at: Duration| schedule.due_before(warmup + at).min(open_loop.total());
        Some(by(to).saturating_sub(by(from)))
    }
}

/// Connection task of an open-loop stream: take a due request, send it, record it.
async fn open_loop_connection(shared: Arc<StreamShared>, mut slot: Slot, open_loop: Arc<OpenLoop>) {
    let marker = shared.marker();
    while let Some((_, due)) = open_loop.next().await {
        // The outcome is recorded; an open loop sends the next request regardless.
        let _ = shared.exchange(&mut slot, Some(due), &marker).await;
    }
}

/// Connection task of a closed-loop stream: send, wait for the response, repeat.
async fn closed_loop_connection(
    shared: Arc<StreamShared>,
    mut slot: Slot,
    end: Instant,
    stop: Arc<AtomicBool>,
) {
    let marker = shared.marker();
    // Not before the run's start (with --start-at, the agreed instant).
    tokio::time::sleep_until(shared.start.into()).await;
    let mut now = Instant::now();
    while !stop.load(Ordering::Relaxed) && now < end {
        let (result, done) = shared.exchange(&mut slot, None, &marker).await;
        now = done;
        if result == Err(Failure::Connect) {
            tokio::time::sleep(CLOSED_LOOP_CONNECT_BACKOFF).await;
            now = Instant::now();
        }
    }
}
