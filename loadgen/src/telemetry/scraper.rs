//! Samples a server while a phase runs: once per interval it reads the client's and
//! the server's CPU time from the kernel, then fetches the server's
//! `/metrics.json` on a connection of its own. A scrape that fails is counted by
//! kind and the run goes on; a server too blocked to answer its scrape in time is
//! itself part of the picture.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use servers::telemetry::MetricsReport;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::client;
use crate::cpu;
use crate::live::{LiveFeed, SamplePublisher};

/// The path scraped.
pub const METRICS_PATH: &str = "/metrics.json";

/// What to sample and how often.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    /// Where the server's figures are fetched: its address and [`METRICS_PATH`]
    /// (or the path of `bench --scrape URL`); `None`: not fetched (a server
    /// without telemetry).
    pub metrics: Option<(SocketAddr, String)>,
    /// The server process whose CPU (with its children's) is read from /proc.
    pub server_pid: Option<u32>,
    pub every: Duration,
}

/// Why a scrape brought back no figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeFailure {
    /// No answer before the next sample was due.
    Timeout,
    /// The connection failed or broke.
    Connection,
    /// An answer other than 200.
    Status(u16),
    /// A 200 whose body is not a metrics report.
    Unreadable,
    /// A body larger than loadgen keeps ([`client::MAX_KEPT_BODY_BYTES`]).
    TooLarge,
}

impl ScrapeFailure {
    /// The name failures are counted under.
    pub fn kind(self) -> String {
        match self {
            ScrapeFailure::Timeout => "timeout".into(),
            ScrapeFailure::Connection => "connection".into(),
            ScrapeFailure::Status(code) => format!("status {code}"),
            ScrapeFailure::Unreadable => "unreadable".into(),
            ScrapeFailure::TooLarge => "too large".into(),
        }
    }
}

/// One sample. CPU times are cumulative; the series turns them into rates.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the sample was taken (the CPU read, the scrape sent).
    pub at: SystemTime,
    pub client_cpu: Duration,
    pub server_cpu: Option<Duration>,
    /// `None` when not scraping.
    pub scrape: Option<Result<MetricsReport, ScrapeFailure>>,
    /// How long the scrape took to answer (or to fail).
    pub scrape_took: Duration,
}

/// A sampling task running beside a phase.
pub struct Scraper {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<Sample>>,
}

impl Scraper {
    /// Starts sampling now, and then every `target.every`; with `live`, also
    /// publishing each measured interval's figures to the dashboard as its
    /// sample comes in.
    pub fn start(target: ScrapeTarget, live: Option<LiveFeed>) -> Scraper {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut publisher = live.map(SamplePublisher::new);
            let mut ticks = tokio::time::interval(target.every);
            // A late tick (a slow scrape) shifts the schedule instead of bunching up.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => samples.push(sample(&target).await),
                    _ = &mut stopped => break,
                }
                if let Some(publisher) = &mut publisher {
                    publisher.sampled(&samples);
                }
            }
            // One last sample, so the series reaches the end of the phase.
            samples.push(sample(&target).await);
            if let Some(publisher) = &mut publisher {
                publisher.sampled(&samples);
            }
            samples
        });
        Scraper { stop, task }
    }

    /// Stops sampling and returns every sample, oldest first.
    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// Takes one sample of `target`.
async fn sample(target: &ScrapeTarget) -> Sample {
    let at = SystemTime::now();
    let client_cpu = cpu::own_cpu_time();
    let server_cpu = target.server_pid.map(cpu::process_tree_cpu_time);
    let started = Instant::now();
    let scrape = match &target.metrics {
        // Answered within most of an interval, so the next sample is on time.
        Some((addr, path)) => Some(scrape(*addr, path, target.every.mul_f64(0.9)).await),
        None => None,
    };
    Sample {
        at,
        client_cpu,
        server_cpu,
        scrape,
        scrape_took: started.elapsed(),
    }
}

/// `GET path` on a fresh connection: a reference server's `/metrics.json`, or
/// any server's Prometheus text with the names [`super::prometheus`] reads.
pub async fn scrape(
    addr: SocketAddr,
    path: &str,
    within: Duration,
) -> Result<MetricsReport, ScrapeFailure> {
    // The outer timeout decides; the inner one only has to be longer.
    let fetched = tokio::time::timeout(within, client::get(addr, path, within * 2)).await;
    let (status, body) = match fetched {
        Err(_) => return Err(ScrapeFailure::Timeout),
        Ok(Err(error)) => {
            let too_large = matches!(
                error.downcast_ref::<client::SendError>(),
                Some(client::SendError::TooLarge(_))
            );
            return Err(if too_large {
                ScrapeFailure::TooLarge
            } else {
                ScrapeFailure::Connection
            });
        }
        Ok(Ok(answer)) => answer,
    };
    if status != http::StatusCode::OK {
        return Err(ScrapeFailure::Status(status.as_u16()));
    }
    if let Ok(report) = serde_json::from_slice(&body) {
        return Ok(report);
    }
    let text = std::str::from_utf8(&body).map_err(|_| ScrapeFailure::Unreadable)?;
    super::prometheus::parse(text, SystemTime::now()).map_err(|_| ScrapeFailure::Unreadable)
}
