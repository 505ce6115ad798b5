//! Sizing the heavy job of a server that does not describe its kernel (no
//! `/info` with `ns_per_unit`): its service time is measured on the idle server.
//!
//! With `{units}` in the heavy path, the size is searched for geometrically (one
//! request per size, growing until a request takes a quarter of the wanted job
//! time, where HTTP's own cost is small beside the work), the units are scaled
//! linearly to the wanted time, and then, after one warm-up request, a few
//! requests are timed one after another on one kept-alive connection: their
//! median is the job's cost. If the median is more than [`RESCALE_BEYOND`] off
//! the wanted time (a kernel that is not linear at small sizes), the units are
//! scaled once more and timed again. Without `{units}`, the fixed request is
//! timed the same way. What was measured is kept in the report
//! ([`MeasuredSize`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::{Connection, PreparedRequest};
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

/// Times heavy requests on one connection.
struct Timer {
    addr: SocketAddr,
    connection: Option<Connection>,
    sent: usize,
}

impl Timer {
    /// Milliseconds one `GET path` took, answered with a 2xx.
    async fn time(&mut self, path: &str) -> anyhow::Result<f64> {
        let request = PreparedRequest::get(path, &self.addr.to_string())?;
        self.sent += 1;
        for attempt in 0..2 {
            let mut connection = match self.connection.take() {
                Some(c) if c.is_open() => c,
                _ => Connection::open(self.addr)
                    .await
                    .with_context(|| format!("cannot connect to {}", self.addr))?,
            };
            let started = Instant::now();
            let mut body = Vec::new();
            let result =
                tokio::time::timeout(REQUEST_TIMEOUT, connection.send(&request, Some(&mut body)))
                    .await;
            let took = started.elapsed();
            match result {
                Ok(Ok(status)) if status.is_success() => {
                    self.connection = Some(connection);
                    return Ok(took.as_secs_f64() * 1e3);
                }
                Ok(Ok(status)) => anyhow::bail!(
                    "GET {path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
                // The server may have closed a kept-alive connection: once more on
                // a new one.
                Ok(Err(_)) if attempt == 0 => continue,
                Ok(Err(e)) => anyhow::bail!("GET {path}: {e}"),
                Err(_) => anyhow::bail!("GET {path}: no answer within {REQUEST_TIMEOUT:?}"),
            }
        }
        unreachable!("the loop returns on its second attempt")
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
        addr,
        connection: None,
        sent: 0,
    };
    let mut units = 0;
    let mut times;
    if server.sized() {
        units = 1u64;
        loop {
            let took = timer.time(&server.heavy_path(units)).await?;
            if took >= wanted / 4.0 {
                units = scale(units, took, wanted);
                break;
            }
            anyhow::ensure!(
                timer.sent < MAX_SEARCH,
                "the heavy request still took {took:.2} ms at {units} units after {MAX_SEARCH} tries; does {} grow with {{units}}?",
                server.heavy_path
            );
            let factor = (wanted / 2.0 / took.max(1e-3)).clamp(2.0, 100.0);
            units = ((units as f64 * factor).ceil() as u64).max(units + 1);
        }
        times = timer.sample(&server.heavy_path(units)).await?;
        if (median(&times) - wanted).abs() > RESCALE_BEYOND * wanted {
            units = scale(units, median(&times), wanted);
            times = timer.sample(&server.heavy_path(units)).await?;
        }
    } else {
        times = timer.sample(&server.heavy_path).await?;
    }
    let measured = MeasuredSize {
        samples: times.len(),
        median_ms: median(&times),
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        search_requests: timer.sent - times.len(),
    };
    Ok(HeavySize::of(
        units,
        measured.median_ms,
        cores,
        settings,
        Some(measured),
    ))
}

/// Units that take `wanted` ms if `units` took `took` ms (linear, at least 1).
fn scale(units: u64, took: f64, wanted: f64) -> u64 {
    ((units as f64 * wanted / took.max(1e-3)).round() as u64).max(1)
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
        assert_eq!(scale(10, 100.0, 1.0), 1);
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }
}
