//! A repeated run (`loadgen run --repeat N`): N rounds of the whole matrix, the
//! order of the variants rotated each round so that slow drift of the machine hits
//! every variant alike. Each round is a run folder of its own; this is what the
//! rounds say together: per variant, the verdict of every round and the median and
//! range of the headline figures, with each round's interval.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::format::format_us;
use super::run::{RunReport, VariantReport};
use super::settings::Scenario;
use super::stream::StreamReport;
use super::table::loaded_probe_p99;
use super::verdict::{is_lower_bound, Verdict};
use crate::stats::Interval;

/// What the rounds of a repeated run say together (`repeat.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepeatReport {
    pub scenario: Scenario,
    pub rounds: usize,
    /// The round folders, in order.
    pub round_dirs: Vec<String>,
    pub variants: Vec<RepeatedVariant>,
}

/// One variant over every round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepeatedVariant {
    pub name: String,
    /// The verdict of each round (`None`: the loaded phase did not run).
    pub verdicts: Vec<Option<Verdict>>,
    /// Probe p99 under load, in µs, over the rounds that measured it.
    pub probe_p99_us: Option<Spread>,
    /// Each round's probe p99 under load (`None`: that round did not measure it).
    pub probe_p99_by_round: Vec<Option<f64>>,
    /// Each round's 95 % interval of that p99.
    pub probe_p99_ci: Vec<Option<Interval>>,
    /// Each round: whether that p99 is only a lower bound (probes given up on).
    #[serde(default)]
    pub probe_p99_lower_bound: Vec<bool>,
    /// Heavy efficiency (responsiveness scenario).
    pub heavy_efficiency: Option<Spread>,
    /// Responsive capacity of the load sweep, as a multiple of what the cores can
    /// finish.
    #[serde(default)]
    pub capacity: Option<Spread>,
}

/// A figure over the rounds that measured it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        Some(Spread {
            median: median(&values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            values,
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `variants` rotated left by `round` places: round 0 keeps the order, round 1
/// starts with the second variant, and so on.
pub fn rotated<T: Clone>(variants: &[T], round: usize) -> Vec<T> {
    let mut order = variants.to_vec();
    if !order.is_empty() {
        let by = round % order.len();
        order.rotate_left(by);
    }
    order
}

impl RepeatReport {
    /// What `rounds` (with their folders' names) say together, variant by variant in
    /// the first round's order.
    pub fn of(rounds: &[RunReport], round_dirs: Vec<String>) -> RepeatReport {
        let mut names: Vec<&str> = Vec::new();
        for r in rounds {
            for v in &r.variants {
                if !names.contains(&v.name.as_str()) {
                    names.push(&v.name);
                }
            }
        }
        let variants = names
            .into_iter()
            .map(|name| {
                let each: Vec<Option<&VariantReport>> = rounds
                    .iter()
                    .map(|r| r.variants.iter().find(|v| v.name == name))
                    .collect();
                fn probe(v: &VariantReport) -> Option<&StreamReport> {
                    v.phase("loaded")?.stream("probe")
                }
                let by_round: Vec<Option<f64>> =
                    each.iter().map(|v| v.and_then(loaded_probe_p99)).collect();
                RepeatedVariant {
                    name: name.to_owned(),
                    verdicts: each.iter().map(|v| v.and_then(|v| v.verdict)).collect(),
                    probe_p99_us: Spread::of(by_round.iter().flatten().copied().collect()),
                    probe_p99_by_round: by_round,
                    probe_p99_ci: each
                        .iter()
                        .map(|v| v.and_then(probe).and_then(|p| p.latency.corrected.p99_ci))
                        .collect(),
                    probe_p99_lower_bound: each
                        .iter()
                        .map(|v| v.and_then(probe).is_some_and(|p| is_lower_bound(p, 0.99)))
                        .collect(),
                    capacity: Spread::of(
                        each.iter()
                            .flatten()
                            .filter_map(|v| v.sweep.as_ref().map(|s| s.capacity))
                            .collect(),
                    ),
                    heavy_efficiency: Spread::of(
                        each.iter()
                            .flatten()
                            .filter_map(|v| v.figures.as_ref().map(|f| f.heavy_efficiency))
                            .collect(),
                    ),
                }
            })
            .collect();
        RepeatReport {
            scenario: rounds
                .first()
                .map_or_else(Scenario::default, |r| r.scenario),
            rounds: rounds.len(),
            round_dirs,
            variants,
        }
    }

    /// The summary of the rounds in Markdown, by median capacity, then median
    /// probe p99.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "# {} rounds, variant order rotated each round\n\nRounds: {}.\n\n",
            self.rounds,
            self.round_dirs.join(", ")
        );
        out.push_str("Capacity: the responsive capacity of each round's load sweep. Responsive: in how many rounds the probe p99's 95 % interval at the overload point lay within the objective (no: beyond; ?: undecided). Probe p99 at the overload point: median [min–max] over the rounds, then each round's figure with its interval (≥: a lower bound, probes given up on; *: too few samples to bound it).\n\n");
        out.push_str("| variant | capacity median [range] | responsive | probe p99 median [range] | each round [95% CI] | heavy efficiency median [range] |\n|---|---|---|---|---|---|\n");
        let median_p99 =
            |v: &RepeatedVariant| v.probe_p99_us.as_ref().map_or(f64::INFINITY, |p| p.median);
        let median_capacity = |v: &RepeatedVariant| v.capacity.as_ref().map_or(-1.0, |c| c.median);
        let mut ranked: Vec<&RepeatedVariant> = self.variants.iter().collect();
        ranked.sort_by(|a, b| {
            median_capacity(b)
                .total_cmp(&median_capacity(a))
                .then(median_p99(a).total_cmp(&median_p99(b)))
        });
        for v in ranked {
            let count = |wanted: Verdict| v.verdicts.iter().filter(|x| **x == Some(wanted)).count();
            let (yes, no, undecided) = (
                count(Verdict::Responsive),
                count(Verdict::Unresponsive),
                count(Verdict::Undecided),
            );
            let verdict: Vec<String> = [("yes", yes), ("no", no), ("?", undecided)]
                .into_iter()
                .filter(|(_, k)| *k > 0)
                .map(|(name, k)| format!("{name} {k}/{}", self.rounds))
                .collect();
            let verdict = if verdict.is_empty() {
                "–".to_owned()
            } else {
                verdict.join(", ")
            };
            let bound = |round: usize| {
                let lower = v.probe_p99_lower_bound.get(round).copied();
                if lower.unwrap_or(false) {
                    "≥"
                } else {
                    ""
                }
            };
            let rounds: Vec<String> = v
                .probe_p99_by_round
                .iter()
                .zip(&v.probe_p99_ci)
                .enumerate()
                .map(|(round, (value, ci))| match (value, ci) {
                    (Some(value), Some(ci)) => format!(
                        "{}{} [{}–{}]",
                        bound(round),
                        format_us(*value),
                        format_us(ci.low_us),
                        format_us(ci.high_us)
                    ),
                    (Some(value), None) => format!("{}{}*", bound(round), format_us(*value)),
                    (None, _) => "–".to_owned(),
                })
                .collect();
            let any_bound = if v.probe_p99_lower_bound.iter().any(|b| *b) {
                "≥"
            } else {
                ""
            };
            let spread = v.probe_p99_us.as_ref().map_or_else(
                || "–".to_owned(),
                |p| {
                    format!(
                        "{any_bound}{} [{}–{}]",
                        format_us(p.median),
                        format_us(p.min),
                        format_us(p.max)
                    )
                },
            );
            let efficiency = v.heavy_efficiency.as_ref().map_or_else(
                || "–".to_owned(),
                |e| {
                    format!(
                        "{:.0}% [{:.0}–{:.0}%]",
                        e.median * 100.0,
                        e.min * 100.0,
                        e.max * 100.0
                    )
                },
            );
            let capacity = v.capacity.as_ref().map_or_else(
                || "–".to_owned(),
                |c| format!("{:.2}× [{:.2}–{:.2}×]", c.median, c.min, c.max),
            );
            let _ = writeln!(
                out,
                "| {} | {capacity} | {verdict} | {spread} | {} | {efficiency} |",
                v.name,
                rounds.join("; ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_moves_every_variant_through_every_position() {
        let names = ["a", "b", "c"];
        assert_eq!(rotated(&names, 0), ["a", "b", "c"]);
        assert_eq!(rotated(&names, 1), ["b", "c", "a"]);
        assert_eq!(rotated(&names, 2), ["c", "a", "b"]);
        assert_eq!(rotated(&names, 3), ["a", "b", "c"]);
        let firsts: Vec<&str> = (0..3).map(|r| rotated(&names, r)[0]).collect();
        assert_eq!(firsts, ["a", "b", "c"]);
    }

    #[test]
    fn medians_and_ranges() {
        let s = Spread::of(vec![3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert!(Spread::of(Vec::new()).is_none());
    }
}
