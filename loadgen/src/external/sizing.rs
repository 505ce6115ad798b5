//! Sizing the heavy job of a server that does not describe its kernel (no
//! `/info` with `ns_per_unit`): its service time is measured on the idle server.
//!
//! With `{units}` in the heavy path, the request's fixed cost is measured first
//! (the fastest of a few one-unit requests: parsing, routing, a queue's round
//! trip), then the size is searched for geometrically, one request per size,
//! growing until the work beyond the fixed cost takes a quarter of the wanted
//! job time (confirmed by a second request, so one slow request does not stop
//! the search). The units are scaled linearly to the wanted time, and then, after
//! one warm-up request, a few requests are timed one after another on one
//! kept-alive connection: the job's cost is their median less the fixed cost.
//! While that is more than [`RESCALE_BEYOND`] off the wanted time (a kernel
//! that is not linear at small sizes), the units are scaled and timed again, a
//! few times at most. Without `{units}`, the fixed request is timed the same
//! way and its median is the cost. What was measured is kept in the report
//! ([`MeasuredSize`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::client::{PreparedRequest, Slot};
use crate::report::{HeavySize, MeasuredSize, Settings};

use super::ExternalServer;

/// Requests timed at the final size.
const SAMPLES: usize = 5;
/// Most requests of the search for a size.
const MAX_SEARCH: usize = 40;
/// Longest time one sizing request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A median this far off the wanted time (as a share of it) is scaled again.
const RESCALE_BEYOND: f64 = 0.25;
/// Most rounds of timing at a size.
const ROUNDS: usize = 3;
/// Units beyond which the search gives up: the path does not grow with them.
const MAX_UNITS: u64 = 1 << 40;
/// One-unit requests whose fastest is the fixed cost.
const OVERHEAD_SAMPLES: usize = 3;

/// Times heavy requests on one kept-alive connection (a [`Slot`]: it reopens a
/// connection the server closed and resends a request that never reached it).
struct Timer {
    host: String,
    slot: Slot,
    sent: usize,
}

impl Timer {
    /// Milliseconds one `GET path` took, answered with a 2xx.
    async fn time(&mut self, path: &str) -> anyhow::Result<f64> {
        let request = PreparedRequest::get(path, &self.host)?;
        self.sent += 1;
        let mut body = Vec::new();
        let started = Instant::now();
        let answer = self
            .slot
            .exchange(&request, started + REQUEST_TIMEOUT, Some(&mut body))
            .await;
        let took = started.elapsed();
        match answer {
            Ok(status) if status.is_success() => Ok(took.as_secs_f64() * 1e3),
            Ok(status) => anyhow::bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
            Err(failure) => anyhow::bail!("GET {path}: {failure:?} (timeout {REQUEST_TIMEOUT:?})"),
        }
    }

    /// Times `path` [`SAMPLES`] times after one warm-up request; sorted.
    async fn sample(&mut self, path: &str) -> anyhow::Result<Vec<f64>> {
        self.time(path).await?;
        let mut times = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            times.push(self.time(path).await?);
        }
        times.sort_by(f64::total_cmp);
        Ok(times)
    }
}

/// Measures the heavy job of `server` at `addr` for `settings`, on `cores` cores.
pub async fn measure(
    server: &ExternalServer,
    addr: SocketAddr,
    settings: &Settings,
    cores: usize,
) -> anyhow::Result<HeavySize> {
    let wanted = settings.heavy_ms;
    let mut timer = Timer {
        host: addr.to_string(),
        slot: Slot::new(addr, None),
        sent: 0,
    };
    if !server.sized() {
        let times = timer.sample(&server.heavy_path).await?;
        let measured = MeasuredSize::of(&times, 0.0, timer.sent);
        return Ok(HeavySize::of(
            0,
            measured.median_ms,
            cores,
            settings,
            Some(measured),
        ));
    }
    let one = server.heavy_path(1);
    timer.time(&one).await?;
    let mut overhead = f64::INFINITY;
    for _ in 0..OVERHEAD_SAMPLES {
        overhead = overhead.min(timer.time(&one).await?);
    }
    let mut units = 1u64;
    let work = loop {
        let path = server.heavy_path(units);
        let mut work = timer.time(&path).await? - overhead;
        if work >= wanted / 4.0 {
            work = work.min(timer.time(&path).await? - overhead);
            if work >= wanted / 4.0 {
                break work;
            }
        }
        anyhow::ensure!(
            timer.sent < MAX_SEARCH,
            "the heavy request still took {:.2} ms at {units} units after {MAX_SEARCH} requests; does {} grow with {{units}}?",
            work + overhead,
            server.heavy_path
        );
        let factor = (wanted / 2.0 / work.max(1e-3)).clamp(2.0, 100.0);
        units = ((units as f64 * factor).ceil() as u64).max(units.saturating_add(1));
        anyhow::ensure!(
            units <= MAX_UNITS,
            "the heavy request still took {:.2} ms at {units} units; does {} grow with {{units}}?",
            work + overhead,
            server.heavy_path
        );
    };
    // Linear from a timing of at least a quarter of the wanted time.
    units = ((units as f64 * wanted / work).round() as u64).max(1);
    let mut times = timer.sample(&server.heavy_path(units)).await?;
    // Scaled and timed again while off; the last timing is of the units kept.
    for _ in 1..ROUNDS {
        let work = median(&times) - overhead;
        if (work - wanted).abs() <= RESCALE_BEYOND * wanted {
            break;
        }
        units = scale(units, work, wanted);
        times = timer.sample(&server.heavy_path(units)).await?;
    }
    let measured = MeasuredSize::of(&times, overhead, timer.sent);
    // The work itself, not the round trip around it; never below a tenth of the
    // request (a fixed cost measured high on a noisy machine).
    let cost = (measured.median_ms - overhead).max(measured.median_ms / 10.0);
    Ok(HeavySize::of(units, cost, cores, settings, Some(measured)))
}

impl MeasuredSize {
    /// What `times` (sorted) say, with the fixed cost and the requests sent.
    fn of(times: &[f64], overhead_ms: f64, sent: usize) -> MeasuredSize {
        MeasuredSize {
            samples: times.len(),
            median_ms: median(times),
            min_ms: times[0],
            max_ms: times[times.len() - 1],
            overhead_ms,
            requests: sent,
        }
    }
}

/// Units that take `wanted` ms if `units` took `took` ms: linear, by a factor
/// of a quarter to four at most (a noisy timing near zero must not send the
/// next request a thousand times larger), and at least 1.
fn scale(units: u64, took: f64, wanted: f64) -> u64 {
    let factor = (wanted / took.max(1e-3)).clamp(0.25, 4.0);
    ((units as f64 * factor).round() as u64).max(1)
}

/// The median of sorted `times`.
fn median(times: &[f64]) -> f64 {
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_scale_linearly_and_never_reach_zero() {
        assert_eq!(scale(1000, 5.0, 20.0), 4000);
        assert_eq!(scale(1000, 10.0, 15.0), 1500);
        assert_eq!(
            scale(1000, 0.0, 20.0),
            4000,
            "a timing of nothing: four times, not more"
        );
        assert_eq!(scale(1000, 100.0, 1.0), 250);
        assert_eq!(scale(1, 100.0, 1.0), 1);
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }
}
