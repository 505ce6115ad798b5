//! Whether a variant kept the server responsive: its probe p99 under load against
//! the run's objective, judged by the p99's 95 % interval rather than by the point
//! figure, so a verdict does not flip with sampling noise; and which figures are
//! only lower bounds (requests given up on) or rest on too few samples.

use serde::{Deserialize, Serialize};

use super::stream::StreamReport;
use crate::stats::Percentiles;

/// The verdict on one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The whole interval of the probe p99 under load is within the objective.
    Responsive,
    /// The whole interval is beyond the objective.
    Unresponsive,
    /// The interval straddles the objective, or the samples are too few to bound
    /// the p99: more samples would decide.
    Undecided,
}

impl Verdict {
    /// `probe` (its loaded phase) against `objective_us`.
    pub fn of(probe: &Percentiles, objective_us: f64) -> Verdict {
        match probe.p99_ci {
            Some(ci) if ci.high_us <= objective_us => Verdict::Responsive,
            Some(ci) if ci.low_us > objective_us => Verdict::Unresponsive,
            _ => Verdict::Undecided,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Responsive => "yes",
            Verdict::Unresponsive => "no",
            Verdict::Undecided => "undecided",
        }
    }
}

/// Whether the `q`-quantile of `stream`'s corrected latency is only a lower bound:
/// more of its requests were given up on (timed out, abandoned at the end, or
/// never sent) than lie above that quantile, so the quantile may be one of them,
/// counted at the moment it was given up.
pub fn is_lower_bound(stream: &StreamReport, q: f64) -> bool {
    let given_up = stream.counts.timeouts + stream.counts.abandoned + stream.unsent;
    let n = stream.latency.corrected.count as f64;
    n > 0.0 && given_up as f64 > (1.0 - q) * n
}
