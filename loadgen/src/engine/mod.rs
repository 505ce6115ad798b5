//! The measuring core: runs a [`Plan`] and returns what each stream recorded.
//!
//! Each connection is one task that owns one HTTP/1.1 connection ([`stream`]);
//! over HTTP/2, each of a connection's concurrent streams is a task of its own.
//! Open-loop streams take their requests from an [`OpenLoop`]; closed-loop streams
//! send back to back. Every response is recorded into its stream's current-interval
//! [`Recorded`]; once per interval the engine moves that into the run's total and
//! hands it to the observer (the interval log, the progress bar). Warm-up requests
//! are sent but not recorded.

mod stream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use http::Method;
use tokio::task::JoinSet;

use crate::client::{Connection, Endpoint, Http2Connection, Slot};
use crate::clock_sync::ClockStatus;
use crate::interrupt::Interrupt;
use crate::open_loop::{OpenLoop, START_DELAY};
use crate::plan::{Load, Plan, StreamSpec};
use crate::recorder::{Counts, Recorded};
use crate::stages::Stage;
use crate::stats::{new_histogram, EncodedHistograms, Percentiles};
use crate::target::Protocol;
use stream::{StreamRun, StreamShared};

/// How often the observer's `progress` is called.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// At the end, how long free connections get to pick up requests released just
/// before it, so that `unsent` counts a real backlog, not a race at the boundary.
const END_GRACE: Duration = Duration::from_millis(20);

/// With `--start-at`: how long before it the connections are opened. Opening
/// thousands over TLS takes a while; a start missed by it is reported.
const CONNECT_LEAD: Duration = Duration::from_secs(2);

/// With `--start-at`: how long before it the streams' tasks start (they wait for
/// the instant itself): more than a timer's wake-up delay, so the first request
/// is due at the instant, not a wake-up late.
const STREAMS_LEAD: Duration = Duration::from_millis(50);

/// One closed interval of one stream: its summary (as the report will have
/// it) and its histograms.
#[derive(Debug)]
pub struct IntervalRecord<'a> {
    pub stream: &'a str,
    pub interval: &'a IntervalOutcome,
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

/// Which stream an outcome belongs to, as reports name it.
#[derive(Debug, Clone)]
pub struct StreamLabel {
    pub name: String,
    pub method: Method,
    /// Path and query (or a pattern such as `/jobs/{id}`).
    pub path: String,
    pub load: Load,
    /// Open loop: the stages its rate followed (none: constant).
    pub stages: Vec<Stage>,
}

impl StreamLabel {
    /// The label of a request stream.
    pub fn of(spec: &StreamSpec) -> StreamLabel {
        StreamLabel {
            name: spec.name.clone(),
            method: spec.method.clone(),
            path: spec.path.clone(),
            load: spec.load,
            stages: spec.stages.clone(),
        }
    }
}

/// What one stream measured.
#[derive(Debug, Clone)]
pub struct StreamOutcome {
    pub stream: StreamLabel,
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
    /// Open loop: how late the pacer itself released the measured requests (the
    /// client machine's delay, before any connection took them).
    pub pacer_lateness: Option<Percentiles>,
    /// Open loop: requests due in the measured part (what the target rate asked).
    pub due: Option<u64>,
    /// How long the connections opened before the clock took to set up (TCP
    /// connect plus any TLS handshake): kept apart from request latency.
    pub setup: Option<Percentiles>,
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
    /// Open loop: requests the schedule made due in the interval.
    pub due: Option<u64>,
    /// The interval's histograms, encoded, when the plan keeps them
    /// ([`crate::plan::Timing::keep_interval_histograms`]).
    pub histograms: Option<EncodedHistograms>,
    /// False for the drain's interval (what completed after the measured
    /// window), as the observer was told.
    pub in_window: bool,
}

impl IntervalOutcome {
    /// The summary of `recorded`, the interval `[start, start + length)` from the
    /// start of measurement.
    pub fn of(start: Duration, length: Duration, recorded: &Recorded) -> IntervalOutcome {
        IntervalOutcome {
            start,
            length,
            counts: recorded.counts,
            corrected: Percentiles::of(&recorded.corrected),
            uncorrected: Percentiles::of(&recorded.uncorrected),
            due: None,
            histograms: None,
            in_window: true,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Wall-clock time the run (warm-up included) started.
    pub started_at: SystemTime,
    /// Wall-clock time measurement started (after the warm-up).
    pub measure_started_at: SystemTime,
    /// With `--start-at`: how long after it the first request was due.
    pub start_late: Option<Duration>,
    /// With `--start-at`: the kernel's view of the clock at the start.
    pub start_clock: Option<ClockStatus>,
    /// Length of the measured part: the duration, or less when interrupted. Responses
    /// to requests sent in it may arrive a little later and are still recorded.
    pub measured: Duration,
    /// True when the run was stopped early by Ctrl-C/SIGTERM.
    pub interrupted: bool,
    /// Where the requests went.
    pub addr: Endpoint,
    pub streams: Vec<StreamOutcome>,
}

/// Opens the connections of a stream that keeps them, all at once, and returns
/// its slots (one per connection, or per concurrent stream over HTTP/2) and how
/// long each connection that opened took to set up (connect, TLS handshake, and
/// the HTTP/2 preface). A slot whose connection failed to open retries, and counts
/// the failure, when it has a request to send.
async fn open_slots(
    addr: &Endpoint,
    protocol: Protocol,
    connections: usize,
    timeout: Duration,
) -> (Vec<Slot>, Histogram<u64>) {
    let mut set = JoinSet::new();
    for _ in 0..connections {
        let addr = addr.clone();
        set.spawn(async move {
            let began = Instant::now();
            match protocol {
                Protocol::Http1 => {
                    let connection = tokio::time::timeout(timeout, Connection::open(addr.clone()))
                        .await
                        .ok()
                        .and_then(Result::ok);
                    let opened = connection.is_some().then(|| began.elapsed());
                    (vec![Slot::new(addr, connection)], opened)
                }
                Protocol::Http2 {
                    streams_per_connection,
                } => {
                    let connection = Http2Connection::new(addr);
                    let opened = tokio::time::timeout(timeout, connection.connect())
                        .await
                        .is_ok_and(|r| r.is_ok())
                        .then(|| began.elapsed());
                    let mut slots = Vec::with_capacity(streams_per_connection);
                    for _ in 0..streams_per_connection {
                        let lane = match opened {
                            Some(_) => connection.lane(None).await.ok(),
                            None => None,
                        };
                        slots.push(Slot::http2(Arc::clone(&connection), lane));
                    }
                    (slots, opened)
                }
            }
        });
    }
    let mut setup = new_histogram();
    let mut slots = Vec::new();
    for (opened, took) in set.join_all().await {
        if let Some(took) = took {
            setup.saturating_record(took.as_nanos() as u64);
        }
        slots.extend(opened);
    }
    (slots, setup)
}

/// The slots of a stream that opens a new connection per request: nothing opened
/// ahead.
fn fresh_slots(addr: &Endpoint, connections: usize) -> Vec<Slot> {
    (0..connections)
        .map(|_| Slot::new(addr.clone(), None))
        .collect()
}

/// Checks that the server accepts connections at all, so an unreachable server is a
/// clear error before the run rather than a run full of connect errors.
async fn preflight(plan: &Plan) -> anyhow::Result<Endpoint> {
    let endpoints: Vec<Endpoint> = match &plan.target.unix {
        Some(path) => vec![Endpoint::Unix(path.clone())],
        None => plan
            .target
            .resolve()
            .await?
            .into_iter()
            .map(|addr| match &plan.target.tls {
                Some(tls) => Endpoint::Tls(addr, tls.clone()),
                None => Endpoint::Tcp(addr),
            })
            .collect(),
    };
    if let Protocol::Http2 { .. } = plan.target.protocol {
        return preflight_http2(plan, endpoints).await;
    }
    let mut last_error = None;
    // Kept apart: when one address refuses the certificate and a later one fails
    // otherwise, the certificate is still the thing to tell the user about.
    let mut certificate_error = None;
    for addr in endpoints {
        match tokio::time::timeout(plan.timing.timeout, Connection::open(addr.clone())).await {
            Ok(Ok(_)) => return Ok(addr),
            Ok(Err(e)) => {
                let error = e.to_string();
                if error.contains("certificate") {
                    certificate_error = Some(error.clone());
                }
                last_error = Some(error);
            }
            Err(_) => last_error = Some(format!("no answer within {:?}", plan.timing.timeout)),
        }
    }
    let checks_certificates = plan.target.tls.as_ref().is_some_and(|t| !t.is_insecure());
    if let (true, Some(error)) = (checks_certificates, certificate_error) {
        anyhow::bail!(
            "cannot connect to {}: {error}; for a self-signed certificate pass --insecure",
            plan.target.url
        )
    }
    let error = last_error.unwrap_or_default();
    anyhow::bail!(
        "cannot connect to {} ({error}); is the server running?",
        plan.target.url
    )
}

/// [`preflight`] over HTTP/2: the server must answer a PING, so that a server
/// that speaks only HTTP/1.1 is named before the run.
async fn preflight_http2(plan: &Plan, endpoints: Vec<Endpoint>) -> anyhow::Result<Endpoint> {
    let mut last_error = String::new();
    for addr in endpoints {
        match tokio::time::timeout(plan.timing.timeout, Http2Connection::check(&addr)).await {
            Ok(Ok(())) => return Ok(addr),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = format!("no HTTP/2 answer within {:?}", plan.timing.timeout),
        }
    }
    let hint = if plan.target.tls.is_some() {
        "does it offer h2 over TLS?"
    } else {
        "does it speak h2c (HTTP/2 without TLS, prior knowledge)?"
    };
    anyhow::bail!(
        "cannot speak HTTP/2 to {} ({last_error}); {hint}",
        plan.target.url
    )
}

/// The run's moments: when the first request is due, when measurement starts
/// (after the warm-up) and when it ends.
#[derive(Debug, Clone, Copy)]
struct Clock {
    started_at: SystemTime,
    /// The wall-clock time of `start`.
    first_due_at: SystemTime,
    start: Instant,
    measure_start: Instant,
    end: Instant,
}

impl Clock {
    /// The first request is due in [`START_DELAY`], or at `--start-at` if that
    /// is later (mapped from the wall clock onto the monotonic one once, here).
    fn new(plan: &Plan) -> Clock {
        let started_at = SystemTime::now();
        let now = Instant::now();
        let soonest = started_at + START_DELAY;
        let first_due_at = plan.timing.start_at.map_or(soonest, |at| at.max(soonest));
        let start = now
            + first_due_at
                .duration_since(started_at)
                .unwrap_or(START_DELAY);
        let measure_start = start + plan.timing.warmup;
        Clock {
            started_at,
            first_due_at,
            start,
            measure_start,
            end: measure_start + plan.timing.duration,
        }
    }

    /// With `--start-at`: how long after it the first request was due (zero when
    /// the connections were open in time).
    fn start_late(&self, plan: &Plan) -> Option<Duration> {
        let at = plan.timing.start_at?;
        Some(self.first_due_at.duration_since(at).unwrap_or_default())
    }
}

/// With `--start-at`, waits until `lead` before it (at once if that has passed),
/// or fails if interrupted first.
pub async fn wait_for_start(
    plan: &Plan,
    lead: Duration,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    let Some(at) = plan.timing.start_at else {
        return Ok(());
    };
    let wait = (at - lead)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::select! {
        () = tokio::time::sleep(wait) => Ok(()),
        () = interrupt.wait() => anyhow::bail!("interrupted while waiting for --start-at"),
    }
}

/// Rolls the streams' intervals over and tells the observer.
struct Intervals<'a> {
    /// Start of the interval now being recorded.
    start: Instant,
    measure_start: Instant,
    /// Intervals closed so far.
    closed: u32,
    observer: &'a mut dyn Observer,
}

impl Intervals<'_> {
    /// Where the interval being recorded is due to end: on a fixed grid from the
    /// start of measurement, so a late wake-up lengthens one interval and never
    /// shifts the ones after it (agents merged interval by interval stay in step).
    fn next_boundary(&self, interval: Duration) -> Instant {
        self.measure_start + interval * (self.closed + 1)
    }

    /// Closes the interval `[self.start, now)` of every stream.
    fn roll_over(&mut self, streams: &mut [StreamRun], now: Instant, in_window: bool) {
        let start = self.start.saturating_duration_since(self.measure_start);
        let length = now.saturating_duration_since(self.start);
        for stream in streams.iter_mut() {
            let recorded = stream.close_interval(start, length);
            let closed = stream
                .intervals
                .last_mut()
                .expect("an interval was just closed");
            closed.in_window = in_window;
            self.observer.interval(&IntervalRecord {
                stream: &stream.shared.spec.name,
                interval: closed,
                recorded: &recorded,
            });
        }
        self.start = now;
        self.closed += 1;
    }
}

/// Runs `plan` to the end (or until `interrupt` fires) and returns what was measured.
pub async fn run(
    plan: &Plan,
    observer: &mut dyn Observer,
    interrupt: &Interrupt,
) -> anyhow::Result<RunOutcome> {
    let addr = preflight(plan).await?;
    let timing = plan.timing;
    // With --start-at, connections open shortly before it (a server may close
    // connections left idle for long), and the streams start just before it.
    wait_for_start(plan, CONNECT_LEAD, interrupt).await?;

    // Connections are opened before the clock starts, as wrk2 does, so the first
    // requests do not pay for the handshakes.
    let mut prepared = Vec::new();
    let mut setups = Vec::new();
    for spec in &plan.streams {
        if spec.fresh_connections {
            prepared.push(fresh_slots(&addr, spec.load.connections()));
            setups.push(None);
        } else {
            let (slots, setup) = open_slots(
                &addr,
                plan.target.protocol,
                spec.load.connections(),
                timing.timeout,
            )
            .await;
            prepared.push(slots);
            setups.push((!setup.is_empty()).then(|| Percentiles::of(&setup)));
        }
    }

    wait_for_start(plan, STREAMS_LEAD, interrupt).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let clock = Clock::new(plan);
    let start_clock = timing.start_at.and_then(|_| ClockStatus::read());
    let mut tasks = JoinSet::new();
    let mut streams = Vec::new();
    for (spec, slots) in plan.streams.iter().zip(prepared) {
        let shared = StreamShared::new(spec, plan, clock.start, clock.measure_start)?;
        streams.push(StreamRun::start(
            shared, slots, timing, clock.end, &stop, &mut tasks,
        )?);
    }

    let mut intervals = Intervals {
        start: clock.measure_start,
        measure_start: clock.measure_start,
        closed: 0,
        observer,
    };
    let (stopped, interrupted) =
        measure(&mut streams, plan, &clock, &mut intervals, interrupt).await;
    // Close the last interval of the measured window here, so that completions
    // during the drain land in an interval of their own and throughput counts only
    // what completed inside the window.
    let window_end = Instant::now();
    if window_end > intervals.start && window_end > clock.measure_start {
        intervals.roll_over(&mut streams, window_end, true);
    }
    let in_window: Vec<Counts> = streams
        .iter()
        .map(|s| {
            s.intervals.iter().fold(Counts::default(), |mut sum, i| {
                sum.add(&i.counts);
                sum
            })
        })
        .collect();

    // Stop sending. Requests in flight finish (or time out) and are recorded.
    stop.store(true, Ordering::Relaxed);
    for (open_loop, _) in streams.iter().filter_map(|s| s.open_loop.as_ref()) {
        open_loop.close();
    }
    drain(&mut tasks, &streams, timing.drain).await;
    let finished = Instant::now();
    if finished > intervals.start + Duration::from_millis(1) {
        intervals.roll_over(&mut streams, finished, false);
    }

    let mut outcomes = Vec::new();
    for ((stream, in_window), setup) in streams.into_iter().zip(in_window).zip(setups) {
        let mut outcome =
            finish_stream(stream, in_window, plan, &clock, stopped, interrupted).await?;
        outcome.setup = setup;
        outcomes.push(outcome);
    }
    Ok(RunOutcome {
        started_at: clock.started_at,
        measure_started_at: clock.first_due_at + timing.warmup,
        start_late: clock.start_late(plan),
        start_clock,
        measured: stopped.saturating_duration_since(clock.measure_start),
        interrupted,
        addr,
        streams: outcomes,
    })
}

/// The clock of the measured run: rolls intervals over, reports progress, and
/// returns when the run ends (at its end, or on Ctrl-C) with that moment and
/// whether it was interrupted. Afterwards the observer has been told that
/// measurement started, even if the run stopped before.
async fn measure(
    streams: &mut [StreamRun],
    plan: &Plan,
    clock: &Clock,
    intervals: &mut Intervals<'_>,
    interrupt: &Interrupt,
) -> (Instant, bool) {
    let timing = plan.timing;
    let planned = timing.warmup + timing.duration;
    let mut next_progress = Instant::now();
    let mut measuring = false;
    let (stopped, interrupted) = loop {
        let now = Instant::now();
        if now >= clock.end {
            break (clock.end, false);
        }
        if !measuring && now >= clock.measure_start {
            intervals
                .observer
                .measuring(SystemTime::now() - now.duration_since(clock.measure_start));
            measuring = true;
        }
        if now >= next_progress {
            intervals.observer.progress(&live(streams, clock, planned));
            next_progress = now + PROGRESS_EVERY;
        }
        let boundary = intervals.next_boundary(timing.interval);
        let mut wake = boundary.min(next_progress).min(clock.end);
        if !measuring {
            wake = wake.min(clock.measure_start);
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = interrupt.wait() => break (Instant::now(), true),
        }
        let now = Instant::now();
        // Whole intervals only: the one ending at the end (or cut short by it) is
        // closed at the end of the window, the drain's after the drain.
        if now >= boundary && boundary < clock.end {
            intervals.roll_over(streams, now, true);
        }
    };
    if !interrupted {
        let grace_end = Instant::now() + END_GRACE;
        while Instant::now() < grace_end && streams.iter().any(|s| s.backlog() > 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    if !measuring {
        intervals.observer.measuring(SystemTime::now());
    }
    (stopped, interrupted)
}

/// Lets requests in flight complete for up to `drain`; those still unanswered then
/// are abandoned (and recorded as such), so the run always ends.
async fn drain(tasks: &mut JoinSet<()>, streams: &[StreamRun], drain: Duration) {
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let now = Instant::now();
        for stream in streams {
            stream.shared.abandon_in_flight(now);
        }
    }
}

/// The outcome of one stream once its tasks have ended: an open loop's requests that
/// fell due in the measured part but were never taken enter its total as unsent,
/// their corrected latency counted to the stop as a lower bound.
async fn finish_stream(
    stream: StreamRun,
    in_window: Counts,
    plan: &Plan,
    clock: &Clock,
    stopped: Instant,
    interrupted: bool,
) -> anyhow::Result<StreamOutcome> {
    let StreamRun {
        shared,
        open_loop,
        intervals,
        mut total,
    } = stream;
    let (unsent, pacer_lateness, due) = match open_loop {
        Some((open_loop, pacer)) => {
            let (unsent, lateness, due) = unsent(
                &open_loop,
                pacer,
                &mut total,
                plan,
                clock,
                stopped,
                interrupted,
            )
            .await?;
            (unsent, Some(lateness), Some(due))
        }
        None => (0, None, None),
    };
    Ok(StreamOutcome {
        stream: StreamLabel::of(&shared.spec),
        total,
        intervals,
        unsent,
        in_window,
        pacer_lateness,
        due,
        setup: None,
    })
}

/// Records an open loop's unsent requests into `total` and counts them; returns
/// that count with the pacer's own lateness and the requests due in the measured
/// part.
async fn unsent(
    open_loop: &OpenLoop,
    pacer: crate::pacer::Pacer,
    total: &mut Recorded,
    plan: &Plan,
    clock: &Clock,
    stopped: Instant,
    interrupted: bool,
) -> anyhow::Result<(u64, Percentiles, u64)> {
    let schedule = open_loop.schedule();
    // When interrupted, only what fell due before the stop counts.
    let due = if interrupted {
        schedule.due_before(stopped.saturating_duration_since(clock.start))
    } else {
        open_loop.total()
    };
    let (_, lateness) = pacer.join().await;
    let first_measured = schedule.due_before(plan.timing.warmup);
    let claimed = open_loop.claimed().max(first_measured);
    for k in claimed..due {
        total.record_unsent(schedule.due(k), stopped);
    }
    Ok((
        due.saturating_sub(claimed),
        Percentiles::of(&lateness),
        due.saturating_sub(first_measured),
    ))
}

fn live(streams: &[StreamRun], clock: &Clock, planned: Duration) -> Live {
    let now = Instant::now();
    Live {
        elapsed: now.saturating_duration_since(clock.start),
        planned,
        warming_up: now < clock.measure_start,
        streams: streams
            .iter()
            .map(|s| {
                let current = s.shared.current_counts();
                (
                    s.shared.spec.name.clone(),
                    s.total.counts.responses + current.responses,
                    s.total.counts.errors() + current.errors(),
                )
            })
            .collect(),
    }
}
