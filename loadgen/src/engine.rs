//! The measuring core: runs a [`Plan`] and returns what each stream recorded.
//!
//! Each connection is one task that owns one HTTP/1.1 connection. Open-loop streams
//! take their requests from a [`Pacer`]; closed-loop streams send back to back. Every
//! response is recorded into its stream's current-interval [`Recorded`]; once per
//! interval the engine moves that into the run's total and hands it to the observer
//! (the interval log, the progress bar). Warm-up requests are sent but not recorded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Connection, Failure, PreparedRequest, Slot};
use crate::interrupt::Interrupt;
use crate::pacer::{Pacer, Schedule};
use crate::recorder::{Counts, Recorded, Sample};
use crate::scenario::{Load, Plan, StreamSpec};
use crate::stats::Percentiles;

/// Pause after a failed connect in a closed loop, so a dead server is not hammered
/// in a busy loop.
const CLOSED_LOOP_CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// How often the observer's `progress` is called.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Time between setting up connections and the first due request.
const START_DELAY: Duration = Duration::from_millis(5);
/// At the end, how long free connections get to pick up requests released just
/// before it, so that `unsent` counts a real backlog, not a race at the boundary.
const END_GRACE: Duration = Duration::from_millis(20);

/// One closed interval of one stream.
#[derive(Debug)]
pub struct IntervalRecord<'a> {
    pub stream: &'a str,
    /// Start of the interval, from the start of measurement.
    pub start: Duration,
    pub length: Duration,
    pub recorded: &'a Recorded,
}

/// Figures for a live display.
#[derive(Debug, Clone)]
pub struct Live {
    /// Time since the run started, warm-up included.
    pub elapsed: Duration,
    /// Warm-up plus duration.
    pub planned: Duration,
    pub warming_up: bool,
    /// Per stream: name, responses and errors so far in the measured part.
    pub streams: Vec<(String, u64, u64)>,
}

/// Receives intervals and progress while a run goes on. Both methods default to
/// doing nothing.
pub trait Observer: Send {
    /// Called once, when the warm-up ends and measurement starts.
    fn measuring(&mut self, _since: SystemTime) {}
    fn interval(&mut self, _record: &IntervalRecord<'_>) {}
    fn progress(&mut self, _live: &Live) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

/// What one stream measured.
#[derive(Debug, Clone)]
pub struct StreamOutcome {
    pub spec: StreamSpec,
    /// Everything recorded in the measured part of the run.
    pub total: Recorded,
    /// One entry per interval, in order.
    pub intervals: Vec<IntervalOutcome>,
    /// Open loop: requests that fell due in the measured part but were never sent
    /// because no connection became free before the end. Their corrected latency
    /// is in the total as a lower bound (from the due time to the stop).
    pub unsent: u64,
    /// Outcomes that arrived inside the measured window (not during the drain):
    /// the basis of throughput.
    pub in_window: Counts,
}

/// One interval of one stream, summarised: the full histograms went to the
/// observer and were dropped, so memory does not grow with the run's length beyond
/// these few numbers per interval.
#[derive(Debug, Clone)]
pub struct IntervalOutcome {
    pub start: Duration,
    pub length: Duration,
    pub counts: Counts,
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Wall-clock time the run (warm-up included) started.
    pub started_at: SystemTime,
    /// Wall-clock time measurement started (after the warm-up).
    pub measure_started_at: SystemTime,
    /// Length of the measured part: the duration, or less when interrupted. Responses
    /// to requests sent in it may arrive a little later and are still recorded.
    pub measured: Duration,
    /// True when the run was stopped early by Ctrl-C/SIGTERM.
    pub interrupted: bool,
    pub addr: SocketAddr,
    pub streams: Vec<StreamOutcome>,
}

/// The per-stream state every connection task of the stream shares.
struct StreamShared {
    spec: StreamSpec,
    request: PreparedRequest,
    measure_start: Instant,
    timeout: Duration,
    current: Mutex<Recorded>,
    /// Open loop: request numbers taken by connections so far.
    claimed: AtomicU64,
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
    fn new(
        spec: &StreamSpec,
        plan: &Plan,
        start: Instant,
        measure_start: Instant,
    ) -> anyhow::Result<Self> {
        let request = spec
            .request(&plan.target.authority)
            .with_context(|| format!("stream {}", spec.name))?;
        Ok(StreamShared {
            spec: spec.clone(),
            request,
            measure_start,
            timeout: plan.timing.timeout,
            current: Mutex::new(Recorded::default()),
            claimed: AtomicU64::new(0),
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
        let result = slot
            .exchange(&self.request, sent + self.timeout, None)
            .await;
        marker.due.store(0, Ordering::Relaxed);
        let done = Instant::now();
        self.record(Sample {
            due,
            sent,
            done,
            result,
        });
        (result, done)
    }

    /// Records every request still in flight as abandoned at `now` (their tasks
    /// have been stopped).
    fn abandon_in_flight(&self, now: Instant) {
        let markers = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for marker in markers.iter() {
            let due = marker.due.swap(0, Ordering::Relaxed);
            if due == 0 {
                continue;
            }
            let at = |ns: u64| self.start + Duration::from_nanos(ns - 1);
            self.record(Sample {
                due: at(due),
                sent: at(marker.sent.load(Ordering::Relaxed).max(1)),
                done: now,
                result: Err(Failure::Abandoned),
            });
        }
    }

    fn record(&self, sample: Sample) {
        if sample.due < self.measure_start {
            return; // warm-up
        }
        let open_loop = matches!(self.spec.load, Load::Open { .. });
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&sample, open_loop);
    }

    fn take_interval(&self) -> Recorded {
        std::mem::take(&mut *self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Connection task of an open-loop stream: take a due request, send it, record it.
async fn open_loop_connection(
    shared: Arc<StreamShared>,
    mut slot: Slot,
    schedule: Schedule,
    permits: Arc<Semaphore>,
) {
    let marker = shared.marker();
    while let Ok(permit) = permits.acquire().await {
        permit.forget();
        let k = shared.claimed.fetch_add(1, Ordering::Relaxed);
        // The outcome is recorded; an open loop sends the next request regardless.
        let _ = shared
            .exchange(&mut slot, Some(schedule.due(k)), &marker)
            .await;
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

/// Opens `n` connections at once; `None` where a connection failed (the task will
/// retry, and count the failure, when it has a request to send).
async fn open_connections(
    addr: SocketAddr,
    n: usize,
    timeout: Duration,
) -> Vec<Option<Connection>> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(async move {
            tokio::time::timeout(timeout, Connection::open(addr))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    set.join_all().await
}

/// Checks that the server accepts connections at all, so an unreachable server is a
/// clear error before the run rather than a run full of connect errors.
async fn preflight(plan: &Plan) -> anyhow::Result<SocketAddr> {
    let addrs = plan.target.resolve().await?;
    let mut last_error = None;
    for addr in addrs {
        match tokio::time::timeout(plan.timing.timeout, tokio::net::TcpStream::connect(addr)).await
        {
            Ok(Ok(_)) => return Ok(addr),
            Ok(Err(e)) => last_error = Some(e.to_string()),
            Err(_) => last_error = Some(format!("no answer within {:?}", plan.timing.timeout)),
        }
    }
    anyhow::bail!(
        "cannot connect to {} ({}); is the server running?",
        plan.target.url,
        last_error.unwrap_or_default()
    )
}

/// Runs `plan` to the end (or until `interrupt` fires) and returns what was measured.
pub async fn run(
    plan: &Plan,
    observer: &mut dyn Observer,
    interrupt: &Interrupt,
) -> anyhow::Result<RunOutcome> {
    let addr = preflight(plan).await?;
    let timing = plan.timing;

    // Connections are opened before the clock starts, as wrk2 does, so the first
    // requests do not pay for the handshakes.
    let mut prepared = Vec::new();
    for spec in &plan.streams {
        prepared.push(open_connections(addr, spec.load.connections(), timing.timeout).await);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let started_at = SystemTime::now();
    let start = Instant::now() + START_DELAY;
    let measure_start = start + timing.warmup;
    let end = measure_start + timing.duration;

    let mut tasks = JoinSet::new();
    let mut streams = Vec::new();
    for (spec, connections) in plan.streams.iter().zip(prepared) {
        let shared = Arc::new(StreamShared::new(spec, plan, start, measure_start)?);
        let pacer = match spec.load {
            Load::Open { rate, .. } => {
                let schedule = Schedule::new(start, rate);
                let total = schedule.due_before(timing.warmup + timing.duration);
                let pacer = Pacer::start(schedule, total, Arc::clone(&stop))?;
                for connection in connections {
                    tasks.spawn(open_loop_connection(
                        Arc::clone(&shared),
                        Slot::new(addr, connection),
                        schedule,
                        Arc::clone(&pacer.permits),
                    ));
                }
                Some((pacer, schedule))
            }
            Load::Closed { .. } => {
                for connection in connections {
                    tasks.spawn(closed_loop_connection(
                        Arc::clone(&shared),
                        Slot::new(addr, connection),
                        end,
                        Arc::clone(&stop),
                    ));
                }
                None
            }
        };
        streams.push((shared, pacer, Vec::new(), Recorded::default()));
    }

    // The clock: roll intervals over, report progress, stop at the end or on Ctrl-C.
    let planned = timing.warmup + timing.duration;
    let mut interval_start = measure_start;
    let mut next_progress = Instant::now();
    let mut interrupted = false;
    let mut measuring = false;
    let stopped = loop {
        let now = Instant::now();
        if now >= end {
            break end;
        }
        if !measuring && now >= measure_start {
            observer.measuring(SystemTime::now() - now.duration_since(measure_start));
            measuring = true;
        }
        if now >= next_progress {
            observer.progress(&live(&streams, start, planned, measure_start));
            next_progress = now + PROGRESS_EVERY;
        }
        let mut wake = (interval_start + timing.interval)
            .min(next_progress)
            .min(end);
        if !measuring {
            wake = wake.min(measure_start);
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = interrupt.wait() => {
                interrupted = true;
                break Instant::now();
            }
        }
        let now = Instant::now();
        if now >= interval_start + timing.interval {
            // Whole intervals only; the partial last one is closed after the drain.
            roll_over(
                &mut streams,
                &mut interval_start,
                now,
                measure_start,
                observer,
            );
        }
    };

    if !interrupted {
        let grace_end = Instant::now() + END_GRACE;
        while Instant::now() < grace_end && streams.iter().any(|s| backlog(s) > 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    if !measuring {
        observer.measuring(SystemTime::now());
    }
    // Close the last interval of the measured window here, so that completions
    // during the drain land in an interval of their own and throughput counts only
    // what completed inside the window.
    let window_end = Instant::now();
    if window_end > interval_start && window_end > measure_start {
        roll_over(
            &mut streams,
            &mut interval_start,
            window_end,
            measure_start,
            observer,
        );
    }
    let in_window: Vec<Counts> = streams
        .iter()
        .map(|(_, _, intervals, _)| {
            intervals.iter().fold(Counts::default(), |mut sum, i| {
                sum.add(&i.counts);
                sum
            })
        })
        .collect();

    // Stop sending. Requests in flight finish (or time out) and are recorded.
    stop.store(true, Ordering::Relaxed);
    for (_, pacer, _, _) in &streams {
        if let Some((pacer, _)) = pacer {
            pacer.permits.close();
        }
    }
    // Requests in flight may complete during the drain; those still unanswered
    // then are abandoned (and recorded as such), so the run always ends.
    let drained = tokio::time::timeout(timing.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let now = Instant::now();
        for (shared, _, _, _) in &streams {
            shared.abandon_in_flight(now);
        }
    }
    let finished = Instant::now();
    if finished > interval_start + Duration::from_millis(1) {
        roll_over(
            &mut streams,
            &mut interval_start,
            finished,
            measure_start,
            observer,
        );
    }

    let measured = stopped.saturating_duration_since(measure_start);
    let mut outcomes = Vec::new();
    for ((shared, pacer, intervals, mut total), in_window) in streams.into_iter().zip(in_window) {
        let unsent = match pacer {
            Some((pacer, schedule)) => {
                // When interrupted, only what fell due before the stop counts.
                let due = if interrupted {
                    schedule.due_before(stopped.saturating_duration_since(start))
                } else {
                    pacer.total()
                };
                tokio::task::spawn_blocking(move || pacer.join()).await?;
                let first_measured = schedule.due_before(timing.warmup);
                let claimed = shared.claimed.load(Ordering::Relaxed).max(first_measured);
                for k in claimed..due {
                    total.record_unsent(schedule.due(k), stopped);
                }
                due.saturating_sub(claimed)
            }
            None => 0,
        };
        outcomes.push(StreamOutcome {
            spec: shared.spec.clone(),
            total,
            intervals,
            unsent,
            in_window,
        });
    }
    Ok(RunOutcome {
        started_at,
        measure_started_at: started_at + START_DELAY + timing.warmup,
        measured,
        interrupted,
        addr,
        streams: outcomes,
    })
}

type StreamState = (
    Arc<StreamShared>,
    Option<(Pacer, Schedule)>,
    Vec<IntervalOutcome>,
    Recorded,
);

/// Requests of an open-loop stream due by the end and not yet taken by a
/// connection (whether or not the pacer has released them yet).
fn backlog((shared, pacer, _, _): &StreamState) -> u64 {
    pacer.as_ref().map_or(0, |(pacer, _)| {
        pacer
            .total()
            .saturating_sub(shared.claimed.load(Ordering::Relaxed))
    })
}

/// Closes the interval `[interval_start, now)` of every stream.
fn roll_over(
    streams: &mut [StreamState],
    interval_start: &mut Instant,
    now: Instant,
    measure_start: Instant,
    observer: &mut dyn Observer,
) {
    let start = interval_start.saturating_duration_since(measure_start);
    let length = now.saturating_duration_since(*interval_start);
    for (shared, _, intervals, total) in streams.iter_mut() {
        let recorded = shared.take_interval();
        total.merge(&recorded);
        observer.interval(&IntervalRecord {
            stream: &shared.spec.name,
            start,
            length,
            recorded: &recorded,
        });
        intervals.push(IntervalOutcome {
            start,
            length,
            counts: recorded.counts,
            corrected: Percentiles::of(&recorded.corrected),
            uncorrected: Percentiles::of(&recorded.uncorrected),
        });
    }
    *interval_start = now;
}

fn live(
    streams: &[StreamState],
    start: Instant,
    planned: Duration,
    measure_start: Instant,
) -> Live {
    let now = Instant::now();
    Live {
        elapsed: now.saturating_duration_since(start),
        planned,
        warming_up: now < measure_start,
        streams: streams
            .iter()
            .map(|(shared, _, _, total)| {
                let current = shared
                    .current
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .counts;
                (
                    shared.spec.name.clone(),
                    total.counts.responses + current.responses,
                    total.counts.errors() + current.errors(),
                )
            })
            .collect(),
    }
}
