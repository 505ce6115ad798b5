//! The heavy work every variant runs: a CPU kernel with a fixed cost per unit, a
//! blocking-I/O stand-in, and a real call to a slow upstream HTTP service.
//!
//! The kernel is a chain of dependent integer mixing rounds. Each round needs the
//! result of the one before, so the optimiser can neither remove nor vectorise it,
//! and it does the same amount of work whatever the clock says: under CPU contention
//! a job takes longer, it never does less. The state is carried between calls, so a
//! job cut into slices (the `cooperative` variant) yields the same checksum as the
//! job run in one go.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Mixing rounds in one unit of work (about a microsecond on a current x86 core in
/// an optimised build; the exact cost is measured at start-up by [`calibrate`]).
pub const ROUNDS_PER_UNIT: u32 = 256;

/// One round of splitmix64: two multiplications and three xor-shifts, each depending
/// on the previous value.
#[inline(always)]
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `units` units of the kernel starting from `state` and returns the new state.
#[inline(never)]
pub fn run_units(mut state: u64, units: u64) -> u64 {
    for _ in 0..units {
        for _ in 0..ROUNDS_PER_UNIT {
            state = mix(state);
        }
        // Keeps the compiler from reasoning across units.
        state = black_box(state);
    }
    state
}

/// The state a CPU job starts from, derived from its size so that different sizes
/// give different checksums.
pub fn initial_state(units: u64) -> u64 {
    units ^ 0x5EED_0FC0_FFEE
}

/// What a request asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `units` units of the CPU kernel.
    Cpu { units: u64 },
    /// A synchronous sleep: the stand-in for a blocking call (a synchronous HTTP
    /// request, a blocking database driver) made from a handler.
    Io { duration: Duration },
    /// One HTTP call to the upstream (`--upstream`) that waits `delay` there: the
    /// blocking network call of the original question. Run by [`Job::run`] with a
    /// synchronous client; `async-io` awaits an async client instead.
    Upstream { delay: Duration },
}

impl Work {
    /// How long the work holds a thread that runs it, on a free core: the CPU
    /// time of its units by `calibration`, or its wait. What admission control
    /// counts in its queue.
    pub fn estimated_cost(&self, calibration: &Calibration) -> Duration {
        match *self {
            Work::Cpu { units } => {
                Duration::from_nanos((units as f64 * calibration.ns_per_unit) as u64)
            }
            Work::Io { duration } => duration,
            Work::Upstream { delay } => delay,
        }
    }
}

/// One piece of work plus the moment its request reached the handler, so the time it
/// spent waiting for a thread can be reported.
#[derive(Debug, Clone)]
pub struct Job {
    pub work: Work,
    pub arrived: Instant,
    /// Told when the work begins, for a background job whose status is tracked.
    pub started: Option<Arc<Started>>,
    /// Set when the client that waits for the job has gone (`--skip-abandoned`):
    /// the work is then skipped if it has not begun.
    pub client_gone: Option<Arc<ClientGone>>,
}

/// Whether the client waiting for a job went away (its request's future was
/// dropped: hyper drops it when the connection closes). Read once, by whatever
/// thread is about to start the job.
#[derive(Debug, Default)]
pub struct ClientGone(std::sync::atomic::AtomicBool);

impl ClientGone {
    /// Whether the client has gone.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Held by the request waiting for a job; dropped before [`ClientWatch::stayed`]
/// (the request's future was dropped), it marks the job's client as gone.
pub struct ClientWatch(Option<Arc<ClientGone>>);

impl ClientWatch {
    /// A watch and the flag it sets, for the job.
    pub fn new() -> (ClientWatch, Arc<ClientGone>) {
        let flag = Arc::new(ClientGone::default());
        (ClientWatch(Some(Arc::clone(&flag))), flag)
    }

    /// The client got its answer: nothing to mark.
    pub fn stayed(mut self) {
        self.0 = None;
    }
}

impl Drop for ClientWatch {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// When a job's work began, set once by whichever thread starts it: how a
/// background job's status moves from `queued` to `running` whatever the strategy.
#[derive(Debug, Default)]
pub struct Started(OnceLock<SystemTime>);

impl Started {
    /// Marks the work as begun now (later calls change nothing).
    pub fn now(&self) {
        let _ = self.0.set(SystemTime::now());
    }

    /// When the work began, if it has.
    pub fn at(&self) -> Option<SystemTime> {
        self.0.get().copied()
    }
}

/// The error of a job skipped because its client had gone (`--skip-abandoned`).
pub const SKIPPED: &str = "skipped: the client had gone";

/// What a finished job reports back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// From the request reaching the handler to the work starting.
    pub queued: Duration,
    /// From the work starting to the work ending (wall-clock, so it includes any time
    /// the thread was descheduled).
    pub computed: Duration,
    /// Final kernel state for CPU work; `None` for I/O work.
    pub checksum: Option<u64>,
    /// Why the work failed (an upstream call that got no good answer); `None`
    /// when it did what was asked.
    pub error: Option<String>,
}

impl JobReport {
    /// Whether the job was skipped, not run (its client had gone): its times say
    /// nothing about what a job costs, so estimates leave it out.
    pub fn skipped(&self) -> bool {
        self.error.as_deref() == Some(SKIPPED)
    }

    /// The report as every endpoint shows it: times in microseconds, the checksum
    /// in hex (`null` for I/O work).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "queue_us": self.queued.as_micros() as u64,
            "compute_us": self.computed.as_micros() as u64,
            "checksum": self.checksum.map(|c| format!("{c:016x}")),
        })
    }
}

impl Job {
    /// Marks the job's work as begun: counted as running until the returned guard
    /// drops, and its background status (if any) moves to `running`. Called by
    /// whatever runs the work, whichever strategy that is.
    pub fn begin(&self) -> crate::telemetry::jobs::Running {
        if let Some(started) = &self.started {
            started.now();
        }
        crate::telemetry::JOBS.start()
    }

    /// A job whose request arrived now.
    pub fn new(work: Work) -> Self {
        Job {
            work,
            arrived: Instant::now(),
            started: None,
            client_gone: None,
        }
    }

    /// The report of this job's work, begun at `started` and ending now.
    pub fn report(
        &self,
        started: Instant,
        checksum: Option<u64>,
        error: Option<String>,
    ) -> JobReport {
        JobReport {
            queued: started.saturating_duration_since(self.arrived),
            computed: started.elapsed(),
            checksum,
            error,
        }
    }

    /// Whether the job's client has gone, so the work need not start (only with
    /// `--skip-abandoned`; counted).
    pub fn skip(&self) -> bool {
        let gone = self.client_gone.as_ref().is_some_and(|g| g.is_set());
        if gone {
            crate::telemetry::JOBS.skipped_abandoned();
        }
        gone
    }

    /// Runs the whole job on the calling thread, blocking it until done; skips it
    /// (an empty report nobody reads) if its client has gone (`--skip-abandoned`).
    pub fn run(self) -> JobReport {
        if self.skip() {
            return self.report(Instant::now(), None, Some(SKIPPED.into()));
        }
        let _running = self.begin();
        let started = Instant::now();
        let (checksum, error) = match self.work {
            Work::Cpu { units } => (Some(run_units(initial_state(units), units)), None),
            Work::Io { duration } => {
                std::thread::sleep(duration);
                (None, None)
            }
            Work::Upstream { delay } => (None, crate::upstream::client::call_blocking(delay).err()),
        };
        self.report(started, checksum, error)
    }
}

/// The measured cost of one unit of the kernel on this machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub ns_per_unit: f64,
}

impl Calibration {
    /// Units that take about `duration` of CPU time (at least one).
    pub fn units_for(&self, duration: Duration) -> u64 {
        ((duration.as_nanos() as f64 / self.ns_per_unit).round() as u64).max(1)
    }
}

/// Measures the kernel's cost per unit by running batches of about a millisecond for
/// `budget` and taking the fastest batch. Contention (another process, a
/// descheduled thread) only ever makes a batch slower, so the fastest one is the
/// best estimate of what a unit costs on a free core; a median drifts upward on a
/// busy machine and makes "efficiency" exceed 100%.
pub fn calibrate(budget: Duration) -> Calibration {
    // Size a batch so that it lasts about a millisecond.
    let mut batch = 16u64;
    loop {
        let t = Instant::now();
        black_box(run_units(black_box(1), batch));
        if t.elapsed() >= Duration::from_micros(500) || batch >= 1 << 24 {
            break;
        }
        batch *= 2;
    }
    let mut samples = Vec::new();
    let deadline = Instant::now() + budget;
    while samples.len() < 5 || (Instant::now() < deadline && samples.len() < 10_000) {
        let t = Instant::now();
        black_box(run_units(black_box(samples.len() as u64), batch));
        samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    Calibration {
        ns_per_unit: samples.into_iter().fold(f64::INFINITY, f64::min),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_deterministic_and_resumable() {
        let whole = run_units(initial_state(100), 100);
        let sliced = run_units(run_units(initial_state(100), 37), 63);
        assert_eq!(whole, sliced);
        assert_ne!(whole, run_units(initial_state(100), 99));
    }

    #[test]
    fn work_grows_with_units() {
        // Large ratio, not an absolute time: 50x the units takes well over 5x the time.
        let time = |units| {
            let t = Instant::now();
            black_box(run_units(1, units));
            t.elapsed()
        };
        let small = (0..5).map(|_| time(200)).min().unwrap();
        let large = (0..5).map(|_| time(10_000)).min().unwrap();
        assert!(large > small * 5, "small {small:?}, large {large:?}");
    }

    #[test]
    fn calibration_is_positive_and_converts_durations() {
        let c = calibrate(Duration::from_millis(20));
        assert!(c.ns_per_unit > 0.0);
        let units = c.units_for(Duration::from_millis(10));
        assert!(units >= 1);
        assert_eq!(
            Calibration {
                ns_per_unit: 1000.0
            }
            .units_for(Duration::from_millis(2)),
            2000
        );
    }
}
