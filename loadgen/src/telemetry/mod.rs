//! The server side of a run: the servers' own telemetry (`/metrics.json`: event-loop
//! lag, runtime and queue figures) and the CPU use of client and server, sampled
//! once per interval beside the load ([`scraper`]) and turned into a per-interval
//! series for the report ([`series`]), with which route or task blocked the
//! event loop ([`polls`]).

pub mod polls;
pub mod prometheus;
pub mod scraper;
pub mod series;

pub use polls::{LongPollMark, PhasePolls, SourcePhasePolls};
pub use scraper::{ScrapeTarget, Scraper};
pub use series::{ProcessTraffic, ServerFigures, ServerInterval, ServerTelemetry};
