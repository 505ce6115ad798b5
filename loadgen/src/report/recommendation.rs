//! "Which strategy to use", computed from a run's own figures: the variants that
//! met every criterion of the scenario at its overload point, best first, each
//! with the figures that put it there, and the others with what they missed.
//! Nothing is written in advance: a run where the expected winner loses says so,
//! and a run where nothing qualifies says that.
//!
//! The criteria, at the sweep's highest step (the overload point), which the
//! variant must have reached:
//! - every scenario: responsive (the 95 % interval of the probe p99 within the
//!   objective);
//! - CPU work (`responsiveness`): at least 90 % of what the cores can finish done
//!   (efficiency), and no heavy request failed (timed out, errored, never sent):
//!   excess work refused at once with 503 is fine, work left to time out is not;
//! - I/O work (`upstream`): kept up, at least 90 % of the calls offered done, and
//!   none failed;
//! - background jobs (`jobs`): no job lost or failed, at least 90 % of those
//!   submitted done.
//!
//! Ranked by work done, in whole percent so that differences below a percent
//! count as ties (CPU: efficiency; I/O: the share of the calls offered done, at
//! most 100 %; jobs: the share of the jobs submitted done), then by probe p99.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::format::format_us;
use super::run::{RunReport, VariantReport, VariantStatus};
use super::settings::Scenario;
use super::verdict::Verdict;

/// The sentences of the section, shared by `summary.md` and `report.html`.
pub const INTRO: &str = "Computed from this run's figures, not written in advance.";
pub const NONE_MET: &str = "No variant met every criterion in this run.";
pub const RECOMMENDED: &str = "Recommended, best first:";
pub const OTHERS: &str = "Not recommended here, closest first:";
pub const TIE: &str = "Not distinguishable from the one above: as much work done, and their probe p99 intervals overlap.";

/// Share of the work a recommended variant must get done.
pub const MIN_DONE_SHARE: f64 = 0.9;

/// The recommendation of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// What a variant had to meet, in words.
    pub criteria: String,
    /// The variants that met every criterion, best first.
    pub recommended: Vec<Assessment>,
    /// The others, closest first: those that kept the server responsive before
    /// those that did not, then fewest criteria missed, then most work done.
    pub not_recommended: Vec<Assessment>,
}

/// How one variant fared against the criteria.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub variant: String,
    /// The figures the criteria were judged on, quoted.
    pub figures: String,
    /// The criteria it missed; empty when recommended.
    pub missed: Vec<String>,
    /// Whether it kept the server responsive at the overload point (the first
    /// criterion, and the one the others are worth nothing without).
    pub responsive: bool,
    /// The ranking key, higher is better (not shown).
    #[serde(skip)]
    score: f64,
    /// Probe p99 under load, for ties (not shown).
    #[serde(skip)]
    probe_p99_us: f64,
    /// Its 95 % interval, to tell a real difference from a tie (not shown).
    #[serde(skip)]
    probe_p99_ci: Option<(f64, f64)>,
    /// Whether the measurements cannot tell it from the one ranked above it: the
    /// same work done and overlapping probe p99 intervals.
    #[serde(default)]
    pub tied_with_previous: bool,
}

impl Recommendation {
    /// Judges every variant of `report` against its scenario's criteria.
    pub fn derive(report: &RunReport) -> Recommendation {
        let s = &report.settings;
        let criteria = match report.scenario {
            Scenario::Responsiveness => format!(
                "at the overload point ({}× what the cores can finish): responsive (probe p99 within {} ms, judged by its 95 % interval), at least {:.0} % of what the cores can finish done, and no heavy request failed (refused at once with 503 is fine; timed out is not)",
                s.overload, s.objective_ms, MIN_DONE_SHARE * 100.0
            ),
            Scenario::Upstream => format!(
                "at the highest load ({}× what one blocking thread per core finishes): responsive (probe p99 within {} ms, judged by its 95 % interval), at least {:.0} % of the upstream calls offered done, and none failed",
                s.overload, s.objective_ms, MIN_DONE_SHARE * 100.0
            ),
            Scenario::Jobs => format!(
                "while background jobs run: responsive (probe p99 within {} ms, judged by its 95 % interval), no job lost or failed, and at least {:.0} % of the jobs submitted done",
                s.objective_ms,
                MIN_DONE_SHARE * 100.0
            ),
        };
        let mut recommended = Vec::new();
        let mut not_recommended = Vec::new();
        for v in &report.variants {
            let a = assess(v, report);
            if a.missed.is_empty() {
                recommended.push(a);
            } else {
                not_recommended.push(a);
            }
        }
        let better = |a: &Assessment, b: &Assessment| {
            b.score
                .total_cmp(&a.score)
                .then(a.probe_p99_us.total_cmp(&b.probe_p99_us))
        };
        recommended.sort_by(better);
        for i in 1..recommended.len() {
            let (above, this) = (&recommended[i - 1], &recommended[i]);
            let overlap = match (above.probe_p99_ci, this.probe_p99_ci) {
                (Some((a_low, a_high)), Some((b_low, b_high))) => {
                    a_low <= b_high && b_low <= a_high
                }
                _ => true,
            };
            recommended[i].tied_with_previous = overlap && above.score == this.score;
        }
        not_recommended.sort_by(|a, b| {
            b.responsive
                .cmp(&a.responsive)
                .then(a.missed.len().cmp(&b.missed.len()))
                .then_with(|| better(a, b))
        });
        Recommendation {
            criteria,
            recommended,
            not_recommended,
        }
    }

    /// The section as Markdown, headed `## Which strategy to use`.
    pub fn markdown(&self) -> String {
        let mut out = String::from("## Which strategy to use\n\n");
        let _ = writeln!(out, "{INTRO} Criteria: {}.\n", self.criteria);
        if self.recommended.is_empty() {
            let _ = writeln!(out, "{NONE_MET}");
        } else {
            let _ = writeln!(out, "{RECOMMENDED}");
            for (i, a) in self.recommended.iter().enumerate() {
                let tie = if a.tied_with_previous {
                    format!(" {TIE}")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "{}. **{}**: {}.{tie}", i + 1, a.variant, a.figures);
            }
        }
        if !self.not_recommended.is_empty() {
            let _ = writeln!(out, "\n{OTHERS}");
            for a in &self.not_recommended {
                let _ = writeln!(
                    out,
                    "- **{}**: {} ({}).",
                    a.variant,
                    a.missed.join("; "),
                    a.figures
                );
            }
        }
        out
    }
}

/// One variant against the criteria of `report`'s scenario.
fn assess(v: &VariantReport, report: &RunReport) -> Assessment {
    let s = &report.settings;
    let mut a = Assessment {
        variant: v.name.clone(),
        figures: String::new(),
        missed: Vec::new(),
        responsive: false,
        score: f64::NEG_INFINITY,
        probe_p99_us: f64::INFINITY,
        probe_p99_ci: None,
        tied_with_previous: false,
    };
    if v.status != VariantStatus::Ok {
        a.missed
            .push(format!("did not finish ({})", v.status.name()));
        return a;
    }
    let Some(loaded) = v.phase("loaded") else {
        a.missed.push("no loaded phase".into());
        return a;
    };
    let top = loaded.load.unwrap_or(s.overload);
    if top < s.overload {
        a.missed.push(format!(
            "stopped at {top}× (a step with no probe answered), short of {}×",
            s.overload
        ));
    }
    let mut quoted = Vec::new();
    if let Some(probe) = loaded.stream("probe") {
        let p = &probe.latency.corrected;
        a.probe_p99_us = p.p99_us;
        a.probe_p99_ci = p.p99_ci.map(|ci| (ci.low_us, ci.high_us));
        let interval = p.p99_ci.map_or_else(
            || " [too few samples to bound]".to_owned(),
            |ci| format!(" [{}–{}]", format_us(ci.low_us), format_us(ci.high_us)),
        );
        quoted.push(format!("probe p99 {}{interval}", format_us(p.p99_us)));
        match Verdict::of(p, s.objective_ms * 1e3) {
            Verdict::Responsive => a.responsive = top >= s.overload,
            Verdict::Unresponsive => a
                .missed
                .push(format!("probe p99 beyond {} ms", s.objective_ms)),
            Verdict::Undecided => a.missed.push(format!(
                "probe p99 not shown within {} ms (its interval straddles it or is unbounded)",
                s.objective_ms
            )),
        }
    } else {
        a.missed.push("no probe under load".into());
    }
    match report.scenario {
        Scenario::Responsiveness | Scenario::Upstream => {
            let (Some(figures), Some(heavy)) = (&v.figures, &v.heavy) else {
                a.missed.push("no heavy figures".into());
                return a;
            };
            let cpu = report.scenario == Scenario::Responsiveness;
            // CPU: done over what the cores can finish; I/O: over what was offered.
            let share = if cpu {
                figures.heavy_efficiency
            } else {
                figures.heavy_completions_per_s / (top * heavy.ideal_per_s).max(f64::MIN_POSITIVE)
            };
            // Whole percent: a variant is not better for 200.4 calls/s against 200.0.
            a.score = (if cpu { share } else { share.min(1.0) } * 100.0).round();
            quoted.push(if cpu {
                format!("efficiency {:.0} %", share * 100.0)
            } else {
                format!(
                    "{:.1} calls/s done of {:.1} offered ({:.0} %)",
                    figures.heavy_completions_per_s,
                    top * heavy.ideal_per_s,
                    share * 100.0
                )
            });
            quoted.push(format!(
                "heavy p99 {} (503s included)",
                format_us(figures.heavy_latency.p99_us)
            ));
            quoted.push(format!(
                "{} failed, {} refused (503)",
                figures.heavy_failed, figures.heavy_rejected
            ));
            if share < MIN_DONE_SHARE {
                a.missed.push(if cpu {
                    format!("efficiency under {:.0} %", MIN_DONE_SHARE * 100.0)
                } else {
                    format!(
                        "did not keep up (under {:.0} % done)",
                        MIN_DONE_SHARE * 100.0
                    )
                });
            }
            if figures.heavy_failed > 0 {
                a.missed
                    .push(format!("{} heavy requests failed", figures.heavy_failed));
            }
        }
        Scenario::Jobs => {
            let (Some(jobs), Some(end_to_end)) = (&loaded.jobs, loaded.stream("jobs")) else {
                a.missed.push("no job figures".into());
                return a;
            };
            let p99 = end_to_end.latency.corrected.p99_us;
            let share = jobs.done as f64 / jobs.submitted.max(1) as f64;
            a.score = (share * 100.0).round();
            quoted.push(format!(
                "{} of {} jobs done, {} lost, {} failed, end-to-end p99 {}",
                jobs.done,
                jobs.submitted,
                jobs.lost,
                jobs.failed,
                format_us(p99)
            ));
            if jobs.lost + jobs.failed > 0 {
                a.missed
                    .push(format!("{} jobs lost or failed", jobs.lost + jobs.failed));
            }
            if share < MIN_DONE_SHARE {
                a.missed.push(format!(
                    "under {:.0} % of the jobs done",
                    MIN_DONE_SHARE * 100.0
                ));
            }
        }
    }
    a.figures = quoted.join(", ");
    a
}
