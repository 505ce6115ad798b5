//! The server's telemetry on the live page: each sample the scraper takes
//! becomes a frame as it comes, computed as the report's series will compute
//! it ([`interval_between`], each interval against the last good scrape before
//! it), so the live and the frozen page draw the same points.

use servers::telemetry::MetricsReport;

use super::{Frame, LiveFeed};
use crate::telemetry::scraper::Sample;
use crate::telemetry::series::interval_between;

/// Publishes the intervals between a phase's samples once its measurement has
/// started, the ones taken before that moment included.
pub struct SamplePublisher {
    feed: LiveFeed,
    /// The first sample whose interval to the next is not published yet.
    next: usize,
    /// The last good report before sample `next + 1`.
    last_good: Option<MetricsReport>,
}

impl SamplePublisher {
    pub fn new(feed: LiveFeed) -> SamplePublisher {
        SamplePublisher {
            feed,
            next: 0,
            last_good: None,
        }
    }

    /// Publishes every interval of `samples` (oldest first, the newest just
    /// taken) not published yet, once the feed knows where measurement
    /// started. The engine says so a little after the instant it started, so
    /// a sample can come first: it waits here until then. Intervals that end
    /// before the measurement (the warm-up's) are passed over.
    pub fn sampled(&mut self, samples: &[Sample]) {
        let Some((measured_from, offset_s)) = self.feed.axis() else {
            return;
        };
        if self.next == 0 {
            if let Some(Some(Ok(report))) = samples.first().map(|s| &s.scrape) {
                self.last_good = Some(report.clone());
            }
        }
        while self.next + 1 < samples.len() {
            let (a, b) = (&samples[self.next], &samples[self.next + 1]);
            let mut good = self.last_good.as_ref();
            let interval = interval_between(a, b, &mut good, measured_from);
            if let Some(Ok(report)) = &b.scrape {
                if interval.is_some() {
                    self.last_good = Some(report.clone());
                }
            }
            self.next += 1;
            if let Some(interval) = interval.filter(|i| i.ends_in_measurement()) {
                self.feed.publish(&Frame::server(&interval, offset_s));
            }
        }
    }
}
