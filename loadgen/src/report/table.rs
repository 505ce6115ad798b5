//! The comparison table of a run, one row per variant, best first: which columns
//! and which order depend on the scenario. `summary.md` and `report.html` both show
//! it. A cell knows when its figure is weak: a percentile the samples cannot bound
//! (p99.9 of a few hundred requests is about their maximum) is marked, and one that
//! is only a lower bound (requests given up on) reads `≥`.

use std::fmt::Write;

use super::format::format_us;
use super::polls::longest_poll_cell;
use super::run::{RunReport, VariantReport};
use super::settings::Scenario;
use super::stream::StreamReport;
use super::verdict::is_lower_bound;
use crate::stats::{Interval, Percentiles};

/// Columns of the responsiveness scenario's table: the capacity from the sweep,
/// then every figure at the overload point (the sweep's highest step that ran).
const RESPONSIVENESS_COLUMNS: [&str; 21] = [
    "variant",
    "capacity",
    "overload step",
    "responsive",
    "probe p99 [95% CI]",
    "probe n",
    "probe p50",
    "probe p99.9",
    "probe max",
    "new conn p50",
    "new conn p99",
    "server lag max",
    "longest poll",
    "idle p99",
    "heavy done/s",
    "efficiency",
    "heavy p50",
    "heavy p99",
    "503",
    "failed",
    "recovery p99",
];

/// Columns of the jobs scenario's table.
const JOBS_COLUMNS: [&str; 17] = [
    "variant",
    "responsive",
    "probe p99 [95% CI]",
    "probe n",
    "probe p50",
    "probe max",
    "server lag max",
    "longest poll",
    "submit p99",
    "queue wait p50",
    "run p50",
    "end-to-end p50",
    "end-to-end p99",
    "done",
    "rejected",
    "failed",
    "lost",
];

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    /// Too few samples to bound this percentile: read it as about the largest
    /// sample, not as a figure to compare.
    pub weak: bool,
}

impl Cell {
    pub(super) fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            weak: false,
        }
    }
}

/// A percentile of `stream` (`q`, read by `value` from `p`, its interval by `ci`).
fn percentile(
    stream: &StreamReport,
    q: f64,
    value: fn(&Percentiles) -> f64,
    ci: fn(&Percentiles) -> Option<Interval>,
) -> Cell {
    let p = &stream.latency.corrected;
    let bound = if is_lower_bound(stream, q) { "≥" } else { "" };
    Cell {
        text: format!("{bound}{}", format_us(value(p))),
        weak: p.count > 0 && ci(p).is_none(),
    }
}

/// The probe p99 with its interval: `4.47ms [4.10ms–4.93ms]`.
fn headline(stream: &StreamReport) -> Cell {
    let p = &stream.latency.corrected;
    let mut cell = percentile(stream, 0.99, |p| p.p99_us, |p| p.p99_ci);
    if let Some(ci) = p.p99_ci {
        let _ = write!(
            cell.text,
            " [{}–{}]",
            format_us(ci.low_us),
            format_us(ci.high_us)
        );
    }
    cell
}

fn p50(s: &StreamReport) -> Cell {
    percentile(s, 0.5, |p| p.p50_us, |p| p.p50_ci)
}

fn p99(s: &StreamReport) -> Cell {
    percentile(s, 0.99, |p| p.p99_us, |p| p.p99_ci)
}

fn p99_9(s: &StreamReport) -> Cell {
    percentile(s, 0.999, |p| p.p99_9_us, |p| p.p99_9_ci)
}

fn max(s: &StreamReport) -> Cell {
    let bound = if is_lower_bound(s, 1.0) { "≥" } else { "" };
    Cell::plain(format!("{bound}{}", format_us(s.latency.corrected.max_us)))
}

/// The probe's corrected p99 in the loaded phase, if it ran.
pub fn loaded_probe_p99(v: &VariantReport) -> Option<f64> {
    v.phase("loaded")
        .and_then(|p| p.stream("probe"))
        .map(|s| s.latency.corrected.p99_us)
}

impl RunReport {
    /// The variants, best first: by responsive capacity (highest first; the
    /// responsiveness scenario), then by probe p99 at the overload point; variants
    /// without figures last.
    pub fn ranked(&self) -> Vec<&VariantReport> {
        let by_capacity = self.scenario.heavy_requests();
        let capacity = |v: &VariantReport| match &v.sweep {
            Some(s) if by_capacity => s.capacity,
            _ => -1.0,
        };
        let p99 = |v: &VariantReport| loaded_probe_p99(v).unwrap_or(f64::INFINITY);
        let mut ranked: Vec<&VariantReport> = self.variants.iter().collect();
        ranked.sort_by(|a, b| {
            capacity(b)
                .total_cmp(&capacity(a))
                .then(p99(a).total_cmp(&p99(b)))
        });
        ranked
    }

    /// The load sweep as a table: per variant its capacity and, per step, the
    /// probe p99 (✓: the step kept the server responsive and keeping up, ✗: it did
    /// not) and the share of the heavy work offered that was answered. `None`
    /// without a sweep of more than one step.
    pub fn sweep_table(&self) -> Option<Vec<Vec<Cell>>> {
        let loads = &self.settings.loads;
        if loads.len() < 2 || self.variants.iter().all(|v| v.sweep.is_none()) {
            return None;
        }
        let mut header = vec![Cell::plain("variant"), Cell::plain("capacity")];
        header.extend(loads.iter().map(|l| Cell::plain(format!("{l}×"))));
        let mut rows = vec![header];
        for v in self.ranked() {
            let Some(sweep) = &v.sweep else { continue };
            let mut row = vec![Cell::plain(v.name.clone()), capacity_cell(v)];
            row.extend(sweep.steps.iter().map(|step| {
                if step.skipped {
                    return Cell::plain("skipped (frozen)");
                }
                let Some(probe) = &step.probe else {
                    return Cell::plain("–");
                };
                let bound = if step.probe_lower_bound { "≥" } else { "" };
                let mark = if step.passes() { "✓" } else { "✗" };
                Cell {
                    text: format!(
                        "{bound}{} {mark} {:.0}%",
                        format_us(probe.p99_us),
                        step.answered_share * 100.0
                    ),
                    weak: probe.count > 0 && probe.p99_ci.is_none(),
                }
            }));
            rows.push(row);
        }
        Some(rows)
    }

    /// New connections through the sweep: per variant and step, the p50 and p99 of
    /// the `fresh` probe (a new connection per request), then the share of them
    /// that waited longer than half the variant's job (the second population: new
    /// clients that landed behind a job) and the sample count. `None` without a
    /// sweep or such a probe.
    pub fn fresh_table(&self) -> Option<Vec<Vec<Cell>>> {
        let loads = &self.settings.loads;
        let has_fresh = self
            .variants
            .iter()
            .flat_map(|v| &v.phases)
            .any(|p| p.stream("fresh").is_some());
        if loads.len() < 2 || !has_fresh {
            return None;
        }
        let mut header = vec![Cell::plain("variant"), Cell::plain("idle")];
        header.extend(loads.iter().map(|l| Cell::plain(format!("{l}×"))));
        let mut rows = vec![header];
        for v in self.ranked() {
            let half_job_ns = v.heavy.as_ref().map(|h| (h.cost_ms * 500_000.0) as u64);
            let cell = |s: Option<&StreamReport>| match s {
                Some(s) => {
                    let (a, b) = (p50(s), p99(s));
                    let slow = match half_job_ns.and_then(|ns| s.count_above(ns)) {
                        Some((above, n)) if n > 0 => {
                            format!(", {} slow (n {n})", share(above, n))
                        }
                        _ => String::new(),
                    };
                    Cell {
                        text: format!("{} / {}{slow}", a.text, b.text),
                        weak: b.weak,
                    }
                }
                None => Cell::plain("–"),
            };
            let mut row = vec![
                Cell::plain(v.name.clone()),
                cell(v.phase("idle").and_then(|p| p.stream("fresh"))),
            ];
            row.extend(self.settings.steps().map(|step| {
                if v.skipped_steps.contains(&step.name) {
                    Cell::plain("skipped")
                } else {
                    cell(v.phase(&step.name).and_then(|p| p.stream("fresh")))
                }
            }));
            rows.push(row);
        }
        Some(rows)
    }

    /// What [`RunReport::sweep_table`] shows, under its title in every rendering.
    pub const SWEEP_CAPTION: &'static str = "Probe p99 per step (✓: responsive and at least 90 % of the heavy work answered; ✗: not), then the share of the heavy work offered that was answered.";

    /// What [`RunReport::fresh_table`] shows, under its title in every rendering.
    pub fn fresh_caption(&self) -> String {
        format!(
            "Per step, p50 / p99 of GET /health on a new connection each (the fresh probe, {}/s), from its due time to the response, connect included; then the share that waited longer than half a job (new clients that landed behind one) and the sample count.",
            self.settings.fresh_rate
        )
    }

    /// [`RunReport::sweep_table`] in Markdown.
    pub fn sweep_markdown(&self) -> Option<String> {
        markdown_rows(&self.sweep_table()?)
    }

    /// [`RunReport::polls_table`] in Markdown.
    pub fn polls_markdown(&self) -> Option<String> {
        markdown_rows(&self.polls_table()?)
    }

    /// [`RunReport::fresh_table`] in Markdown.
    pub fn fresh_markdown(&self) -> Option<String> {
        markdown_rows(&self.fresh_table()?)
    }
}

/// `part` of `whole` as a percentage that never rounds a non-zero share to 0 %.
fn share(part: u64, whole: u64) -> String {
    let pct = part as f64 * 100.0 / whole as f64;
    match part {
        0 => "0%".into(),
        _ if pct < 1.0 => format!("{pct:.1}%"),
        _ => format!("{pct:.0}%"),
    }
}

/// Rows of cells (the first the header) as a Markdown table; weak cells get a `*`.
fn markdown_rows(rows: &[Vec<Cell>]) -> Option<String> {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .map(|c| {
                if c.weak {
                    format!("{}*", c.text)
                } else {
                    c.text.clone()
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let _ = writeln!(out, "|{}", "---|".repeat(row.len()));
        }
    }
    Some(out)
}

impl RunReport {
    /// The columns of [`RunReport::rows`].
    pub fn header(&self) -> &'static [&'static str] {
        match self.scenario {
            Scenario::Responsiveness | Scenario::Upstream => &RESPONSIVENESS_COLUMNS,
            Scenario::Jobs => &JOBS_COLUMNS,
        }
    }

    /// The table as rows of cells, best variant first: each row starts with the
    /// variant's name; a variant without figures has its error instead.
    pub fn rows(&self) -> Vec<Vec<Cell>> {
        self.ranked()
            .into_iter()
            .map(|v| {
                let cells = match self.scenario {
                    Scenario::Responsiveness | Scenario::Upstream => responsiveness_cells(v),
                    Scenario::Jobs => jobs_cells(v),
                };
                let mut row = vec![Cell::plain(v.name.clone())];
                match cells {
                    Some(cells) => row.extend(cells),
                    None => row.push(Cell::plain(
                        v.error
                            .clone()
                            .unwrap_or_else(|| v.status.name().to_owned()),
                    )),
                }
                row
            })
            .collect()
    }

    /// The comparison table in Markdown; weak figures carry a `*` explained below
    /// the table.
    pub fn table(&self) -> String {
        let header = self.header();
        let mut out = format!("| {} |\n", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        let mut any_weak = false;
        for row in self.rows() {
            let mut cells: Vec<String> = row
                .iter()
                .map(|c| {
                    any_weak |= c.weak;
                    if c.weak {
                        format!("{}*", c.text)
                    } else {
                        c.text.clone()
                    }
                })
                .collect();
            cells.resize(header.len(), String::new());
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        if any_weak {
            out.push_str(WEAK_NOTE);
        }
        out
    }
}

/// What the `*` of a weak figure means.
pub const WEAK_NOTE: &str = "\n\\* too few samples for a 95 % upper bound on this percentile: it is about the largest sample, not a figure to compare. ≥: a lower bound (requests given up on count at the time they were given up).\n";

/// The responsive capacity: `1.00× (100/s)`, or below the sweep's lowest step.
fn capacity_cell(v: &VariantReport) -> Cell {
    Cell::plain(match &v.sweep {
        Some(s) if s.capacity > 0.0 => format!("{:.2}× ({:.0}/s)", s.capacity, s.capacity_per_s),
        Some(s) => format!("< {}×", s.steps.first().map_or(0.0, |step| step.load)),
        None => "–".to_owned(),
    })
}

fn lag_cell(lag_max_us: Option<f64>) -> Cell {
    Cell::plain(lag_max_us.map_or_else(|| "–".into(), format_us))
}

/// The responsiveness columns after the name.
fn responsiveness_cells(v: &VariantReport) -> Option<Vec<Cell>> {
    let f = v.figures.as_ref()?;
    let stream = |phase: &str, name: &str| v.phase(phase)?.stream(name);
    let (idle, loaded, recovery) = (
        stream("idle", "probe")?,
        stream("loaded", "probe")?,
        stream("recovery", "probe")?,
    );
    let heavy = stream("loaded", "heavy")?;
    Some(vec![
        capacity_cell(v),
        Cell::plain(
            v.overload_load()
                .map_or_else(|| "–".to_owned(), |l| format!("{l}×")),
        ),
        Cell::plain(v.verdict.map_or("–", |verdict| verdict.name())),
        headline(loaded),
        Cell::plain(loaded.latency.corrected.count.to_string()),
        p50(loaded),
        p99_9(loaded),
        max(loaded),
        stream("loaded", "fresh").map_or_else(|| Cell::plain("–"), p50),
        stream("loaded", "fresh").map_or_else(|| Cell::plain("–"), p99),
        lag_cell(f.server_lag_max_us),
        longest_poll_cell(v.phase("loaded")),
        p99(idle),
        Cell::plain(format!("{:.1}", f.heavy_completions_per_s)),
        Cell::plain(format!("{:.0}%", f.heavy_efficiency * 100.0)),
        p50(heavy),
        p99(heavy),
        Cell::plain(f.heavy_rejected.to_string()),
        Cell::plain(f.heavy_failed.to_string()),
        p99(recovery),
    ])
}

/// The jobs columns after the name: the probe while background jobs run, the jobs'
/// own times and counts.
fn jobs_cells(v: &VariantReport) -> Option<Vec<Cell>> {
    let p = v.phase("loaded")?;
    let (probe, submit, jobs, figures) = (
        p.stream("probe")?,
        p.stream("submit")?,
        p.stream("jobs")?,
        p.jobs.as_ref()?,
    );
    Some(vec![
        Cell::plain(v.verdict.map_or("–", |verdict| verdict.name())),
        headline(probe),
        Cell::plain(probe.latency.corrected.count.to_string()),
        p50(probe),
        max(probe),
        lag_cell(p.server_telemetry.as_ref().and_then(|t| t.lag_max_us)),
        longest_poll_cell(Some(p)),
        p99(submit),
        Cell::plain(format_us(figures.queue_wait.p50_us)),
        Cell::plain(format_us(figures.run.p50_us)),
        p50(jobs),
        p99(jobs),
        Cell::plain(figures.done.to_string()),
        Cell::plain(figures.rejected.to_string()),
        Cell::plain((figures.failed + figures.submit_errors).to_string()),
        Cell::plain(figures.lost.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_share_is_never_shown_as_nothing() {
        assert_eq!(share(0, 600), "0%");
        assert_eq!(share(1, 600), "0.2%");
        assert_eq!(share(6, 600), "1%");
        assert_eq!(share(300, 600), "50%");
    }
}
