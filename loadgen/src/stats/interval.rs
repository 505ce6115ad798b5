//! Distribution-free confidence intervals for quantiles, from the order statistics
//! of a recorded histogram: no resampling, no assumption about the shape of the
//! latency distribution.
//!
//! Of n samples, the number that fall at or below the true q-quantile is
//! Binomial(n, q). So the k-th smallest sample lies below the quantile with
//! probability P(B ≥ k), and the interval between the l-th and the u-th smallest
//! holds it with probability P(l ≤ B < u). With l and u chosen so that each tail is
//! at most (1 − confidence) / 2, [x₍ₗ₎, x₍ᵤ₎] is a confidence interval for the
//! quantile. When u would have to exceed n, the samples cannot bound the quantile
//! from above: p99 of 100 samples is only their largest value, and may be anything
//! beyond it.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A confidence interval for a latency quantile, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low_us: f64,
    pub high_us: f64,
}

/// The confidence every reported interval has.
pub const CONFIDENCE: f64 = 0.95;

/// The ranks (1-based, into the sorted samples) of the confidence interval for the
/// `q`-quantile of `n` samples: `(l, u)`, where `l` may be 0 (no lower bound: below
/// every sample) and `u` may be `n + 1` (no upper bound: beyond every sample).
pub fn ranks(n: u64, q: f64, confidence: f64) -> (u64, u64) {
    let tail = (1.0 - confidence) / 2.0;
    let cdf = BinomialCdf::new(n, q);
    // l: the largest k with P(B ≤ k − 1) ≤ tail. Below the window P is 0, so the
    // search starts at its first value (the cost does not grow with n).
    let mut l = cdf.first.max(0) as u64;
    while l < n && cdf.at(l as i64) <= tail {
        l += 1;
    }
    // u: the smallest k with P(B ≤ k − 1) ≥ 1 − tail.
    let mut u = l.max(1);
    while u <= n && cdf.at(u as i64 - 1) < 1.0 - tail {
        u += 1;
    }
    (l, u)
}

/// The 95 % interval for the `q`-quantile of `h` (recorded in nanoseconds), or
/// `None` when the samples cannot bound it from above (too few of them). Without a
/// lower bound, the interval starts at zero.
pub fn quantile_interval(h: &Histogram<u64>, q: f64) -> Option<Interval> {
    let n = h.len();
    if n == 0 {
        return None;
    }
    let (l, u) = ranks(n, q, CONFIDENCE);
    if u > n {
        return None;
    }
    let us = |ns: u64| ns as f64 / 1_000.0;
    // The lower end as the lowest value its bucket stands for, the upper end as
    // the highest: the interval errs wide, never narrow.
    Some(Interval {
        low_us: if l == 0 {
            0.0
        } else {
            us(h.lowest_equivalent(value_at_rank(h, l)))
        },
        high_us: us(value_at_rank(h, u)),
    })
}

/// The `rank`-th smallest recorded value (1-based), as the highest value its
/// bucket stands for (the way HdrHistogram reports percentiles).
pub fn value_at_rank(h: &Histogram<u64>, rank: u64) -> u64 {
    let mut seen = 0;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        if seen >= rank {
            return h.highest_equivalent(v.value_iterated_to());
        }
    }
    h.highest_equivalent(h.max())
}

/// The Binomial(n, q) distribution function, computed over a window of about ±10
/// standard deviations around the mode (the mass outside is below 1e-20), so its
/// cost does not grow with n.
struct BinomialCdf {
    /// The first k of the window; below it the function is 0.
    first: i64,
    /// P(B ≤ first + i), for each k of the window.
    cumulative: Vec<f64>,
}

impl BinomialCdf {
    fn new(n: u64, q: f64) -> BinomialCdf {
        let (nf, q) = (n as f64, q.clamp(0.0, 1.0));
        if q <= 0.0 || q >= 1.0 || n == 0 {
            // All the mass at 0 or at n.
            let at = if q >= 1.0 { n as i64 } else { 0 };
            return BinomialCdf {
                first: at,
                cumulative: vec![1.0],
            };
        }
        let sd = (nf * q * (1.0 - q)).sqrt();
        let mode = ((nf + 1.0) * q).floor().min(nf);
        let width = (10.0 * sd).ceil() + 10.0;
        let first = (mode - width).max(0.0) as u64;
        let last = ((mode + width).min(nf)) as u64;
        let mode = mode as u64;
        // Weights relative to the mode, by the ratio of neighbouring terms:
        // P(k + 1) / P(k) = (n − k) / (k + 1) · q / (1 − q).
        let odds = q / (1.0 - q);
        let len = (last - first + 1) as usize;
        let mut weights = vec![0.0; len];
        weights[(mode - first) as usize] = 1.0;
        for k in mode..last {
            let i = (k - first) as usize;
            weights[i + 1] = weights[i] * (nf - k as f64) / (k as f64 + 1.0) * odds;
        }
        for k in (first..mode).rev() {
            let i = (k - first) as usize;
            // P(k) = P(k + 1) · (k + 1) / (n − k) / odds.
            weights[i] = weights[i + 1] * (k as f64 + 1.0) / (nf - k as f64) / odds;
        }
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                sum += w / total;
                sum
            })
            .collect();
        BinomialCdf {
            first: first as i64,
            cumulative,
        }
    }

    /// P(B ≤ k).
    fn at(&self, k: i64) -> f64 {
        if k < self.first {
            0.0
        } else {
            let i = (k - self.first) as usize;
            self.cumulative.get(i).copied().unwrap_or(1.0).min(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    /// P(B ≤ k) as one minus every term above k, summed down from n (where the
    /// terms of these q ≥ 0.5 cases do not underflow), for checking the windowed
    /// version.
    fn exact_cdf(n: u64, q: f64, k: u64) -> f64 {
        let mut p = q.powi(n as i32);
        let mut above = 0.0;
        for j in (k + 1..=n).rev() {
            above += p;
            // P(j − 1) = P(j) · j / (n − j + 1) · (1 − q) / q.
            p *= j as f64 / (n - j + 1) as f64 * (1.0 - q) / q;
        }
        1.0 - above
    }

    #[test]
    fn the_windowed_distribution_function_matches_the_exact_one() {
        for (n, q) in [(20u64, 0.5), (100, 0.99), (300, 0.9), (1000, 0.999)] {
            let cdf = BinomialCdf::new(n, q);
            for k in 0..=n {
                let (a, b) = (cdf.at(k as i64), exact_cdf(n, q, k));
                assert!((a - b).abs() < 1e-9, "n {n} q {q} k {k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn ranks_match_the_textbook_values() {
        // The median of 100 samples: the 40th to 61st smallest (each tail ≤ 2.5 %;
        // the classic table value for n = 100).
        assert_eq!(ranks(100, 0.5, 0.95), (40, 61));
        // p99 of 100 samples cannot be bounded from above.
        assert_eq!(ranks(100, 0.99, 0.95).1, 101);
        // p99 of 2000: about n·q ± 2 standard deviations (4.45).
        let (l, u) = ranks(2_000, 0.99, 0.95);
        assert!(
            (1_970..=1_973).contains(&l) && (1_988..=1_990).contains(&u),
            "{l} {u}"
        );
    }

    #[test]
    fn the_interval_covers_the_true_quantile_about_95_percent_of_the_time() {
        // Samples from a known distribution (uniform on 1..=10_000 µs, p99 = 9_900
        // µs), by a fixed pseudo-random sequence: the interval must hold the true
        // p99 in about 95 % of 400 trials, and never be empty.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let trials = 400;
        let mut covered = 0;
        for _ in 0..trials {
            let mut h = new_histogram();
            for _ in 0..1_000 {
                h.record((next() % 10_000 + 1) * 1_000).unwrap();
            }
            let i = quantile_interval(&h, 0.99).expect("1000 samples bound p99");
            assert!(i.low_us <= i.high_us);
            if i.low_us <= 9_900.0 * 1.001 && i.high_us >= 9_900.0 * 0.999 {
                covered += 1;
            }
        }
        let share = covered as f64 / trials as f64;
        assert!((0.92..=0.99).contains(&share), "covered {share}");
    }

    #[test]
    fn a_histogram_with_known_order_statistics_gives_those_values() {
        // 1, 2, …, 100 ms: the k-th smallest is k ms.
        let mut h = new_histogram();
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000).unwrap();
        }
        for rank in [1, 40, 61, 100] {
            let v = value_at_rank(&h, rank) as f64 / 1e6;
            assert!(
                (v - rank as f64).abs() / (rank as f64) < 0.001,
                "{rank}: {v}"
            );
        }
        let median = quantile_interval(&h, 0.5).unwrap();
        assert!((median.low_us / 1e3 - 40.0).abs() < 0.05, "{median:?}");
        assert!((median.high_us / 1e3 - 61.0).abs() < 0.07, "{median:?}");
        assert_eq!(quantile_interval(&h, 0.99), None, "too few samples for p99");
    }
}
