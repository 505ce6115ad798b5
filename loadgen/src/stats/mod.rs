//! Latency histograms and their summaries.
//!
//! Every latency is recorded in nanoseconds (the unit HdrHistogram's log tools
//! assume) into a histogram tracking 1 µs to one hour at three significant digits.
//! Histograms are only ever merged (exactly), never averaged.

pub mod interval;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use interval::{quantile_interval, Interval, CONFIDENCE};

// One histogram form for both crates, so the servers' lag histograms and the
// client's latency histograms read and merge the same way.
pub use servers::telemetry::histogram::{decode, encode, new_histogram, HIGHEST_NS};

/// A pair of histograms (recorded in nanoseconds) as HdrHistogram V2 + DEFLATE,
/// base64-encoded: what a report carries so percentiles can be computed again and
/// histograms added exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedHistograms {
    /// From the due time (coordinated-omission corrected).
    pub corrected: String,
    /// From the actual send.
    pub uncorrected: String,
}

impl EncodedHistograms {
    /// Both histograms encoded.
    pub fn of(corrected: &Histogram<u64>, uncorrected: &Histogram<u64>) -> EncodedHistograms {
        EncodedHistograms {
            corrected: encode(corrected),
            uncorrected: encode(uncorrected),
        }
    }

    /// Both histograms decoded: (corrected, uncorrected).
    pub fn decode(&self) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
        Ok((decode(&self.corrected)?, decode(&self.uncorrected)?))
    }
}

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
    /// 95 % confidence intervals of p50, p90, p99 and p99.9 from the order
    /// statistics ([`interval`]); `None` where the samples are too few to bound the
    /// percentile from above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ci: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ci: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ci: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_9_ci: Option<Interval>,
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
            p50_ci: quantile_interval(h, 0.5),
            p90_ci: quantile_interval(h, 0.9),
            p99_ci: quantile_interval(h, 0.99),
            p99_9_ci: quantile_interval(h, 0.999),
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
        let ci = p.p99_ci.expect("1000 samples bound p99");
        assert!(ci.low_us <= p.p99_us && p.p99_us <= ci.high_us, "{ci:?}");
        assert_eq!(p.p99_9_ci, None, "1000 samples cannot bound p99.9");
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }
}
