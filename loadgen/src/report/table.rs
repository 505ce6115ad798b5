//! The comparison table of a run, one row per variant, best first: which columns
//! and which order depend on the scenario. `summary.md` and `report.html` both show
//! it.

use std::fmt::Write;

use super::format::format_us;
use super::run::{RunReport, VariantReport};
use super::settings::Scenario;

/// Columns of the responsiveness scenario's table.
const RESPONSIVENESS_COLUMNS: [&str; 15] = [
    "variant",
    "probe p50",
    "probe p99",
    "probe p99.9",
    "probe max",
    "server lag max",
    "idle p99",
    "inflation",
    "heavy done/s",
    "efficiency",
    "heavy p50",
    "heavy p99",
    "503",
    "failed",
    "recovery p99",
];

/// Columns of the jobs scenario's table.
const JOBS_COLUMNS: [&str; 14] = [
    "variant",
    "probe p50",
    "probe p99",
    "probe max",
    "server lag max",
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

/// The probe's corrected p99 in the loaded phase, if it ran.
pub fn loaded_probe_p99(v: &VariantReport) -> Option<f64> {
    v.phase("loaded")
        .and_then(|p| p.stream("probe"))
        .map(|s| s.latency.corrected.p99_us)
}

impl RunReport {
    /// The variants, best first: by probe inflation (responsiveness) or by loaded
    /// probe p99 (jobs); variants without figures last.
    pub fn ranked(&self) -> Vec<&VariantReport> {
        let key = |v: &VariantReport| {
            match self.scenario {
                Scenario::Responsiveness => v.figures.as_ref().map(|f| f.probe_inflation),
                Scenario::Jobs => loaded_probe_p99(v),
            }
            .unwrap_or(f64::INFINITY)
        };
        let mut ranked: Vec<&VariantReport> = self.variants.iter().collect();
        ranked.sort_by(|a, b| key(a).total_cmp(&key(b)));
        ranked
    }

    /// The columns of [`RunReport::rows`].
    pub fn header(&self) -> &'static [&'static str] {
        match self.scenario {
            Scenario::Responsiveness => &RESPONSIVENESS_COLUMNS,
            Scenario::Jobs => &JOBS_COLUMNS,
        }
    }

    /// The table as rows of cells, best variant first: each row starts with the
    /// variant's name; a variant without figures has its error instead.
    pub fn rows(&self) -> Vec<Vec<String>> {
        self.ranked()
            .into_iter()
            .map(|v| {
                let cells = match self.scenario {
                    Scenario::Responsiveness => responsiveness_cells(v),
                    Scenario::Jobs => jobs_cells(v),
                };
                let mut row = vec![v.name.clone()];
                match cells {
                    Some(cells) => row.extend(cells),
                    None => row.push(
                        v.error
                            .clone()
                            .unwrap_or_else(|| v.status.name().to_owned()),
                    ),
                }
                row
            })
            .collect()
    }

    /// The comparison table in Markdown.
    pub fn table(&self) -> String {
        let header = self.header();
        let mut out = format!("| {} |\n", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in self.rows() {
            let mut cells = row;
            cells.resize(header.len(), String::new());
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }
}

fn lag_cell(lag_max_us: Option<f64>) -> String {
    lag_max_us.map_or_else(|| "–".into(), format_us)
}

/// The responsiveness columns after the name, from the derived figures.
fn responsiveness_cells(v: &VariantReport) -> Option<Vec<String>> {
    let f = v.figures.as_ref()?;
    Some(vec![
        format_us(f.probe_loaded.p50_us),
        format_us(f.probe_loaded.p99_us),
        format_us(f.probe_loaded.p99_9_us),
        format_us(f.probe_loaded.max_us),
        lag_cell(f.server_lag_max_us),
        format_us(f.probe_idle.p99_us),
        format!("{:.1}×", f.probe_inflation),
        format!("{:.1}", f.heavy_completions_per_s),
        format!("{:.0}%", f.heavy_efficiency * 100.0),
        format_us(f.heavy_latency.p50_us),
        format_us(f.heavy_latency.p99_us),
        f.heavy_rejected.to_string(),
        f.heavy_failed.to_string(),
        format_us(f.probe_recovery.p99_us),
    ])
}

/// The jobs columns after the name: the probe while background jobs run, the jobs'
/// own times and counts.
fn jobs_cells(v: &VariantReport) -> Option<Vec<String>> {
    let p = v.phase("loaded")?;
    let (probe, submit, jobs, figures) = (
        p.stream("probe")?,
        p.stream("submit")?,
        p.stream("jobs")?,
        p.jobs.as_ref()?,
    );
    Some(vec![
        format_us(probe.latency.corrected.p50_us),
        format_us(probe.latency.corrected.p99_us),
        format_us(probe.latency.corrected.max_us),
        lag_cell(p.server_telemetry.as_ref().and_then(|t| t.lag_max_us)),
        format_us(submit.latency.corrected.p99_us),
        format_us(figures.queue_wait.p50_us),
        format_us(figures.run.p50_us),
        format_us(jobs.latency.corrected.p50_us),
        format_us(jobs.latency.corrected.p99_us),
        figures.done.to_string(),
        figures.rejected.to_string(),
        (figures.failed + figures.submit_errors).to_string(),
        figures.lost.to_string(),
    ])
}
