//! `loadgen selftest`: the harness measures servers whose behaviour is known exactly
//! and shows expected against measured, so a user can see how far to trust it on
//! their machine. About 30 seconds; exit 0 when every check passes, 99 otherwise.
//!
//! 1. Floor: the idle loopback round trip of `/health` (the smallest latency this
//!    tool can report here).
//! 2. Fixed delay: a server answering after exactly D; p50 must be D plus the floor.
//! 3. Stall: a server that stops answering for S once, at rate R. Corrected
//!    measurement must count about R·S/2 requests above S/2 with a max near S; the
//!    uncorrected view cannot (only the requests in flight see the stall).
//! 4. Pacing: achieved against target rate, send lateness and client CPU per
//!    request at several rates. Send lateness is judged against this machine's own
//!    timer jitter (how late a 1 ms sleep wakes, measured just before), so a
//!    machine that wakes threads late does not make the tool fail, while a pacer
//!    that adds lateness of its own does.
//! 5. Memory: resident memory after a run ten times longer stays about the same.

mod reference;

use std::fmt::Write;
use std::time::{Duration, Instant};

use reference::ReferenceServer;
use servers::variant::Variant;

use crate::cpu::own_cpu_time;
use crate::engine::{self, NoObserver, RunOutcome};
use crate::interrupt::Interrupt;
use crate::jitter;
use crate::plan::{Load, Plan, Timing};
use crate::report::format::format_us;
use crate::server_process::{Launch, ServerProcess};
use crate::stats::Percentiles;

/// The delay of the fixed-delay server.
const DELAY: Duration = Duration::from_millis(20);
/// The stall, and the rate it is measured at.
const STALL: Duration = Duration::from_secs(1);
const STALL_RATE: f64 = 100.0;
const STALL_CONNECTIONS: usize = 4;
/// Rates of the pacing check; up to the second one they must hold.
const PACING_RATES: [f64; 4] = [100.0, 1_000.0, 5_000.0, 20_000.0];
const MODERATE_RATES: usize = 2;
/// Sleeps of the timer-jitter measurement (about a second).
const JITTER_SAMPLES: usize = 1_000;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Reported, not judged.
    Info,
}

/// One line of the self-test table.
#[derive(Debug, Clone)]
pub struct Row {
    pub check: String,
    pub expected: String,
    pub measured: String,
    pub verdict: Verdict,
}

fn row(
    check: impl Into<String>,
    expected: impl Into<String>,
    measured: impl Into<String>,
    verdict: Verdict,
) -> Row {
    Row {
        check: check.into(),
        expected: expected.into(),
        measured: measured.into(),
        verdict,
    }
}

fn pass_if(ok: bool) -> Verdict {
    if ok {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

/// Runs one stream against `url`.
async fn measure(
    url: &str,
    load: Load,
    duration: Duration,
    warmup: Duration,
) -> anyhow::Result<RunOutcome> {
    let timing = Timing {
        duration,
        warmup,
        drain: Duration::from_secs(6),
        release_tick: Duration::ZERO,
        ..Timing::default()
    };
    let plan = Plan::get(url, "selftest", load, timing)?;
    engine::run(&plan, &mut NoObserver, &Interrupt::never()).await
}

fn open(rate: f64, connections: usize) -> Load {
    Load::Open { rate, connections }
}

/// Resident memory of this process, in KiB.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Every check, in order.
pub async fn run_checks(
    lateness_allowance: Duration,
    note: &dyn Fn(&str),
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    // A separate server process for the floor, pacing and CPU figures, so this
    // process's CPU time is the client's alone.
    let log = if cfg!(unix) {
        "/dev/null"
    } else {
        "selftest-server.log"
    };
    let server = ServerProcess::start(
        &crate::matrix::Configuration::plain(Variant::CurrentThread),
        &Launch::default(),
        std::path::Path::new(log),
    )
    .await?;
    let health = format!("http://{}/health", server.addr);

    note("selftest: floor (idle /health round trip)");
    let floor = measure(
        &health,
        open(200.0, 4),
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
    .await?;
    let f = &floor.streams[0];
    let fp = Percentiles::of(&f.total.corrected);
    rows.push(row(
        "floor: /health round trip at 200/s",
        "no errors",
        format!(
            "p50 {}, p99 {}, {} errors",
            format_us(fp.p50_us),
            format_us(fp.p99_us),
            f.total.counts.errors()
        ),
        pass_if(f.total.counts.errors() == 0),
    ));

    note("selftest: fixed delay");
    let delayed = ReferenceServer::start(DELAY)?;
    let outcome = measure(
        &delayed.url("/delay"),
        open(50.0, 8),
        Duration::from_secs(3),
        Duration::from_millis(500),
    )
    .await?;
    let p50 = Percentiles::of(&outcome.streams[0].total.corrected).p50_us;
    let expected = DELAY.as_micros() as f64 + fp.p50_us;
    // The server's timer rounds its sleep up to the next millisecond (a steady
    // +1 ms here); the rest of the allowance is for a noisy machine.
    let (low, high) = (DELAY.as_micros() as f64, expected + 3_000.0);
    rows.push(row(
        format!("fixed delay {}ms: p50", DELAY.as_millis()),
        format!(
            "{} + floor {} = {} (+3ms: server timer rounding, noise)",
            format_us(DELAY.as_micros() as f64),
            format_us(fp.p50_us),
            format_us(expected)
        ),
        format_us(p50),
        pass_if(p50 >= low && p50 <= high),
    ));
    drop(delayed);

    note("selftest: stall");
    let stalled = ReferenceServer::start(DELAY)?;
    let duration = Duration::from_secs(4);
    stalled.stall_later(Duration::from_millis(1_500), STALL);
    let outcome = measure(
        &stalled.url("/health"),
        open(STALL_RATE, STALL_CONNECTIONS),
        duration,
        Duration::ZERO,
    )
    .await?;
    let s = &outcome.streams[0].total;
    let half = (STALL / 2).as_nanos() as u64;
    let corrected_over = s.corrected.count_between(half, u64::MAX);
    let uncorrected_over = s.uncorrected.count_between(half, u64::MAX);
    let expected_over = STALL_RATE * STALL.as_secs_f64() / 2.0;
    rows.push(row(
        "stall 1s at 100/s: corrected count above 500ms",
        format!("R·S/2 = {expected_over:.0} (±30%)"),
        corrected_over.to_string(),
        pass_if((corrected_over as f64 - expected_over).abs() <= 0.3 * expected_over),
    ));
    let max_ms = s.corrected.max() as f64 / 1e6;
    rows.push(row(
        "stall: corrected max",
        format!("S = {}ms (0.85–1.25 S)", STALL.as_millis()),
        format!("{max_ms:.0}ms"),
        pass_if((850.0..=1_250.0).contains(&max_ms)),
    ));
    rows.push(row(
        "stall: uncorrected count above 500ms",
        format!("at most the {STALL_CONNECTIONS} requests in flight"),
        uncorrected_over.to_string(),
        pass_if(uncorrected_over <= STALL_CONNECTIONS as u64),
    ));
    drop(stalled);

    note("selftest: this machine's timer jitter (1 ms sleeps)");
    let jitter = tokio::task::spawn_blocking(|| jitter::measure(JITTER_SAMPLES)).await??;
    rows.push(row(
        "machine: how late a 1 ms sleep wakes",
        "reported: no pacer can do better",
        format!(
            "p50 {} p99 {} max {} ({} sleeps)",
            format_us(jitter.p50_us),
            format_us(jitter.p99_us),
            format_us(jitter.max_us),
            jitter.count
        ),
        Verdict::Info,
    ));
    // What the pacer may add to the machine's own lateness: the hop from the
    // pacing thread to a connection task, and noise.
    let limit_us = jitter.p99_us + lateness_allowance.as_micros() as f64;

    note("selftest: pacing");
    for (i, rate) in PACING_RATES.into_iter().enumerate() {
        let (duration, warmup) = (Duration::from_secs(2), Duration::from_millis(300));
        let cpu = own_cpu_time();
        let outcome = measure(&health, open(rate, 16), duration, warmup).await?;
        // Client CPU over every request sent, warm-up included (the server is
        // another process).
        let cpu_per_request = own_cpu_time().saturating_sub(cpu).as_secs_f64() * 1e6
            / (rate * (duration + warmup).as_secs_f64());
        let s = &outcome.streams[0];
        let achieved = s.total.counts.sent as f64 / outcome.measured.as_secs_f64();
        let lateness = Percentiles::of(&s.total.lateness);
        let pacer = s.pacer_lateness.unwrap_or_default();
        let share = achieved / rate;
        let moderate = i < MODERATE_RATES;
        rows.push(row(
            format!("pacing at {rate:.0}/s"),
            if moderate {
                format!(
                    "≥99% of target, send lateness p99 ≤ machine p99 {} + {} = {}",
                    format_us(jitter.p99_us),
                    format_us(lateness_allowance.as_micros() as f64),
                    format_us(limit_us)
                )
            } else {
                "reported".to_owned()
            },
            format!(
                "{achieved:.0}/s ({:.1}%), send lateness p50 {} p99 {} max {} (pacer's own p99 {}), client CPU {cpu_per_request:.0} µs/request",
                share * 100.0,
                format_us(lateness.p50_us),
                format_us(lateness.p99_us),
                format_us(lateness.max_us),
                format_us(pacer.p99_us)
            ),
            if moderate {
                pass_if(share >= 0.99 && lateness.p99_us <= limit_us)
            } else {
                Verdict::Info
            },
        ));
    }

    note("selftest: memory (a run, then one ten times longer)");
    measure(
        &health,
        open(2_000.0, 8),
        Duration::from_secs(1),
        Duration::ZERO,
    )
    .await?;
    let short = resident_kib();
    let started = Instant::now();
    measure(
        &health,
        open(2_000.0, 8),
        Duration::from_secs(10),
        Duration::ZERO,
    )
    .await?;
    let long = resident_kib();
    rows.push(row(
        "memory: resident after 1s vs 10s at 2000/s",
        "about the same (≤ 1.25× + 4 MiB)",
        format!(
            "{:.1} MiB vs {:.1} MiB ({:.0}s)",
            short as f64 / 1024.0,
            long as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        ),
        pass_if(long as f64 <= short as f64 * 1.25 + 4_096.0),
    ));
    server.stop().await;
    Ok(rows)
}

/// The table, one line per check.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("| check | expected | measured | result |\n|---|---|---|---|\n");
    for r in rows {
        let verdict = match r.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Info => "info",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {verdict} |",
            r.check, r.expected, r.measured
        );
    }
    let failed = rows.iter().filter(|r| r.verdict == Verdict::Fail).count();
    let passed = rows.iter().filter(|r| r.verdict == Verdict::Pass).count();
    let _ = writeln!(out, "\n{passed} passed, {failed} failed");
    out
}
