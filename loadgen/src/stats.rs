//! Latency histograms and their summaries.
//!
//! Every latency is recorded in nanoseconds (the unit HdrHistogram's log tools
//! assume) into a histogram tracking 1 µs to one hour at three significant digits.
//! Histograms are only ever merged (exactly), never averaged.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

// One histogram form for both crates, so the servers' lag histograms and the
// client's latency histograms read and merge the same way.
pub use servers::telemetry::histogram::{decode, encode, new_histogram, HIGHEST_NS};

/// The figures people read off a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p99_9_us: f64,
    pub p99_99_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    /// Summarises `h` (recorded in nanoseconds). An empty histogram gives zeros.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Percentiles {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1_000.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p99_9_us: us(h.value_at_quantile(0.999)),
            p99_99_us: us(h.value_at_quantile(0.9999)),
            // The highest equivalent value: the max is never rounded down.
            max_us: us(h.highest_equivalent(h.max())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_histograms() {
        let mut h = new_histogram();
        for v in [1_500u64, 20_000, 20_000, 3_000_000, HIGHEST_NS] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn percentiles_read_the_distribution() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1_000).unwrap(); // 1..=1000 µs
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50_us - 500.0).abs() <= 1.0, "{p:?}");
        assert!((p.p99_us - 990.0).abs() <= 1.0, "{p:?}");
        assert!(p.max_us >= 1000.0);
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }
}
