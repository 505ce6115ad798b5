//! One test per variant showing its defining property, with large ratios instead of
//! absolute times: a probe (`/health` on a fresh connection) sent while heavy jobs run
//! waits at least half a job where the strategy blocks the event loop; where it does
//! not, no probe waits half a job and 99 % of them wait less than a tenth of one
//! (the slowest alone can meet a scheduling hiccup of the shared machine: one CI
//! run saw 56 ms against a 473 ms job).
//!
//! The two multi-worker variants, whose defining property is where a new connection
//! waits while one process is stuck, have their own file: `multi_worker.rs`.
//!
//! The tests share a lock so that only one of them loads the machine at a time.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{get, timed_get, Server};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Length of one heavy job, in CPU time.
const JOB: Duration = Duration::from_millis(300);
/// Every wait in these tests ends by this, whatever happens.
const LIMIT: Duration = Duration::from_secs(60);

/// What happened while `jobs` heavy jobs ran: their responses and the probes' times.
struct Observed {
    /// The jobs that ran (200).
    jobs: Vec<Value>,
    /// The jobs refused with 503.
    refused: Vec<support::Response>,
    slowest_probe: Duration,
    probes: usize,
    /// Every probe's time, sorted.
    probe_times: Vec<Duration>,
}

impl Observed {
    /// The shortest compute time among the jobs (the reference length).
    fn shortest_job(&self) -> Duration {
        let us = self
            .jobs
            .iter()
            .map(|j| j["compute_us"].as_u64().unwrap())
            .min()
            .unwrap();
        Duration::from_micros(us)
    }

    /// The 99th percentile of the probes' times.
    fn probe_p99(&self) -> Duration {
        let rank = (self.probe_times.len() * 99).div_ceil(100).max(1);
        self.probe_times[rank - 1]
    }

    /// Shown with `--nocapture`: how far each run is from its threshold.
    fn print_margin(&self, variant: &str) {
        eprintln!(
            "{variant}: slowest probe / job = {:.3} over {} probes",
            self.slowest_probe.as_secs_f64() / self.shortest_job().as_secs_f64(),
            self.probes
        );
    }
}

/// Starts `jobs` heavy jobs of [`JOB`] at once, each on its own connection, and sends
/// probes one after another until all of them have answered.
fn probe_during_jobs(server: &Server, jobs: usize) -> Observed {
    let units = server.units_for(JOB);
    let addr = server.addr;
    let start = Instant::now();
    let heavy: Vec<_> = (0..jobs)
        .map(|_| std::thread::spawn(move || get(addr, &format!("/work/cpu?units={units}"))))
        .collect();
    let mut probe_times = Vec::new();
    while !heavy.iter().all(|h| h.is_finished()) && start.elapsed() < LIMIT {
        let (response, took) = timed_get(addr, "/health");
        assert_eq!(response.status, 200);
        probe_times.push(took);
    }
    probe_times.sort();
    let slowest_probe = probe_times.last().copied().unwrap_or_default();
    let probes = probe_times.len();
    let mut jobs = Vec::new();
    let mut refused = Vec::new();
    for h in heavy {
        let response = h.join().unwrap();
        match response.status {
            200 => jobs.push(response.json()),
            503 => refused.push(response),
            _ => panic!("heavy request answered {response:?}"),
        }
    }
    Observed {
        jobs,
        refused,
        slowest_probe,
        probes,
        probe_times,
    }
}

fn assert_blocks(variant: &str, args: &[&str], jobs: usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(variant, args);
    let seen = probe_during_jobs(&server, jobs);
    seen.print_margin(variant);
    assert!(seen.refused.is_empty(), "{variant}: {:?}", seen.refused);
    assert!(
        seen.slowest_probe >= seen.shortest_job() / 2,
        "{variant}: slowest of {} probes took {:?}, a job {:?}; expected the probe to wait",
        seen.probes,
        seen.slowest_probe,
        seen.shortest_job()
    );
}

fn assert_stays_responsive(variant: &str, args: &[&str], jobs: usize) -> Observed {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(variant, args);
    let seen = probe_during_jobs(&server, jobs);
    seen.print_margin(variant);
    assert!(seen.refused.is_empty(), "{variant}: {:?}", seen.refused);
    assert!(seen.probes >= 3, "{variant}: only {} probes", seen.probes);
    assert!(
        seen.slowest_probe < seen.shortest_job() / 2,
        "{variant}: slowest of {} probes took {:?}, a job {:?}; expected under half",
        seen.probes,
        seen.slowest_probe,
        seen.shortest_job()
    );
    assert!(
        seen.probe_p99() < seen.shortest_job() / 10,
        "{variant}: p99 of {} probes took {:?}, a job {:?}; expected under a tenth",
        seen.probes,
        seen.probe_p99(),
        seen.shortest_job()
    );
    seen
}

#[test]
fn current_thread_probe_waits_for_the_job() {
    assert_blocks("current-thread", &[], 1);
}

#[test]
fn blocking_in_async_probe_waits_once_every_worker_is_busy() {
    assert_blocks("blocking-in-async", &["--workers", "2"], 2);
}

#[test]
fn spawn_blocking_stays_responsive() {
    assert_stays_responsive("spawn-blocking", &["--workers", "2"], 2);
}

#[test]
fn block_in_place_stays_responsive() {
    assert_stays_responsive("block-in-place", &["--workers", "2"], 2);
}

#[test]
fn rayon_stays_responsive() {
    assert_stays_responsive("rayon", &["--workers", "2"], 2);
}

#[test]
fn cooperative_stays_responsive() {
    assert_stays_responsive("cooperative", &["--workers", "2"], 2);
}

#[test]
fn sequential_queue_stays_responsive_and_runs_jobs_one_at_a_time() {
    let seen = assert_stays_responsive("sequential-queue", &["--workers", "2"], 2);
    // Submitted together, run one after the other: one of them waited about a whole
    // job before starting.
    let waited = seen
        .jobs
        .iter()
        .map(|j| Duration::from_micros(j["queue_us"].as_u64().unwrap()))
        .max()
        .unwrap();
    assert!(
        waited >= seen.shortest_job() / 2,
        "second job waited only {waited:?} for a {:?} job",
        seen.shortest_job()
    );
}

#[test]
fn sequential_queue_refuses_with_503_when_full() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start("sequential-queue", &["--queue-capacity", "1"]);
    let units = server.units_for(JOB);
    let addr = server.addr;
    let requests: Vec<_> = (0..5)
        .map(|_| std::thread::spawn(move || get(addr, &format!("/work/cpu?units={units}"))))
        .collect();
    let responses: Vec<_> = requests.into_iter().map(|h| h.join().unwrap()).collect();
    let accepted = responses.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(accepted + refused.len(), 5, "{responses:?}");
    // One running plus one queued fit; five submitted together cannot all.
    assert!(accepted >= 1 && !refused.is_empty(), "{responses:?}");
    for r in refused {
        let retry: u64 = r
            .header("retry-after")
            .expect("503 without Retry-After")
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn bounded_pool_refuses_beyond_its_budget_and_keeps_the_probe_ten_times_faster_than_blocking_in_async(
) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // bounded-pool with a budget of one job: with T pool threads (one per core),
    // T jobs run and at most one more waits; the rest are refused.
    let budget = format!("{}ms", JOB.as_millis());
    let server = Server::start(
        "bounded-pool",
        &["--workers", "2", "--queue-budget", &budget],
    );
    let threads = server.info()["strategy_settings"]["pool_threads"]
        .as_u64()
        .unwrap() as usize;
    let jobs = (3 * threads).max(12);
    let seen = probe_during_jobs(&server, jobs);
    seen.print_margin("bounded-pool");
    assert!(
        (threads..=threads + 1).contains(&seen.jobs.len()),
        "{} of {jobs} jobs ran on {threads} threads with a budget of one job",
        seen.jobs.len()
    );
    assert_eq!(seen.jobs.len() + seen.refused.len(), jobs);
    // The same jobs on blocking-in-async, two at a time on its event loop
    // threads: the probe waits behind them.
    let blocked = {
        let server = Server::start("blocking-in-async", &["--workers", "2"]);
        probe_during_jobs(&server, jobs)
    };
    for r in &seen.refused {
        let retry: u64 = r
            .header("retry-after")
            .expect("503 without Retry-After")
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("queue is full"));
    }
    // The slowest probe, not the p99: probes go one after another, so behind a
    // blocked event loop only one of them waits per job while many pass between
    // jobs (the test's own coordinated omission); the one that waited is the
    // figure that shows the block.
    assert!(
        seen.slowest_probe * 10 <= blocked.slowest_probe,
        "slowest probe {:?} on bounded-pool, {:?} on blocking-in-async: expected 10x apart",
        seen.slowest_probe,
        blocked.slowest_probe
    );
    // Admitted jobs started within about the budget (one job), counted in jobs as
    // they actually ran: at idle priority the pool yields to everything else on
    // the machine, this test's own probe loop included, so a job can take longer
    // than its calibrated 300 ms.
    let longest = seen
        .jobs
        .iter()
        .map(|j| Duration::from_micros(j["compute_us"].as_u64().unwrap()))
        .max()
        .unwrap();
    for job in &seen.jobs {
        let waited = Duration::from_micros(job["queue_us"].as_u64().unwrap());
        assert!(
            waited < longest * 2,
            "a job waited {waited:?}, the longest ran {longest:?}"
        );
    }
    // Once the work is done there is room again.
    let units = server.units_for(Duration::from_millis(10));
    assert_eq!(server.get(&format!("/work/cpu?units={units}")).status, 200);
}

#[test]
fn bounded_pool_refuses_a_background_job_at_once_when_full() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(
        "bounded-pool",
        &["--workers", "2", "--queue-budget", "10ms"],
    );
    let threads = server.info()["strategy_settings"]["pool_threads"]
        .as_u64()
        .unwrap() as usize;
    let units = server.units_for(JOB);
    let body = format!(r#"{{"kind": "cpu", "units": {units}}}"#);
    let statuses: Vec<u16> = (0..threads + 4)
        .map(|_| support::post_json(server.addr, "/jobs", &body).status)
        .collect();
    // A 10 ms budget: one job per thread is admitted, then 503s, each before a 202
    // could promise anything.
    assert_eq!(statuses[0], 202, "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 503),
        "{statuses:?}"
    );
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert!(accepted <= threads + 1, "{statuses:?}");
    // A refused job left nothing behind: the backlog holds the accepted ones only.
    let backlog = server.get("/backlog").json();
    let held = backlog["queued"].as_u64().unwrap()
        + backlog["running"].as_u64().unwrap()
        + backlog["finished"].as_u64().unwrap();
    assert_eq!(held as usize, accepted, "{backlog}");
}
