//! Reading a saved report back: a run folder or its `report.json` (from `loadgen
//! run`), or a `bench --json` file, with one schema check for both; run reports
//! from before percentiles carried intervals get them from their histograms.

use std::path::{Path, PathBuf};

use super::{BenchReport, Figures, Report, RunReport, VariantStatus, SCHEMA_VERSION};
use crate::stats::{decode, Percentiles};

/// The report at `path`: a run folder (its `report.json`), a run's report.json, or
/// a `bench --json` file.
pub fn load(path: &Path) -> anyhow::Result<Report> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    parse(&file, &text)
}

/// The run report at `path` (a run folder or its report.json).
pub fn load_run(path: &Path) -> anyhow::Result<RunReport> {
    match load(path)? {
        Report::Run(run) => Ok(run),
        Report::Bench(_) => anyhow::bail!(
            "{} is a `loadgen bench` report; this needs a `loadgen run` report",
            path.display()
        ),
    }
}

/// The bench report at `path` (a `bench --json` file).
pub fn load_bench(path: &Path) -> anyhow::Result<BenchReport> {
    match load(path)? {
        Report::Bench(bench) => Ok(bench),
        Report::Run(_) => anyhow::bail!(
            "{} is a `loadgen run` report; this needs a `loadgen bench --json` file",
            path.display()
        ),
    }
}

fn parse(file: &Path, text: &str) -> anyhow::Result<Report> {
    let not_a_report =
        |e: serde_json::Error| anyhow::anyhow!("{} is not a loadgen report: {e}", file.display());
    let value: serde_json::Value = serde_json::from_str(text).map_err(not_a_report)?;
    let version = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64);
    anyhow::ensure!(
        version == Some(u64::from(SCHEMA_VERSION)),
        "{} has schema version {}, this loadgen reads {SCHEMA_VERSION}",
        file.display(),
        version.map_or_else(|| "none".to_owned(), |v| v.to_string()),
    );
    // Only a run report has variants.
    Ok(if value.get("variants").is_some() {
        let mut run: RunReport = serde_json::from_value(value).map_err(not_a_report)?;
        fill_intervals(&mut run)?;
        if !run.interrupted {
            run.recommendation = Some(crate::report::Recommendation::derive(&run));
        }
        Report::Run(run)
    } else {
        Report::Bench(serde_json::from_value(value).map_err(not_a_report)?)
    })
}

/// Reports written before percentiles carried intervals: every stream's figures
/// read again from its histograms (which every report holds in full), then the
/// variant's figures and verdict, so `compare` can judge old and new reports alike.
fn fill_intervals(run: &mut RunReport) -> anyhow::Result<()> {
    let old = run
        .variants
        .iter()
        .flat_map(|v| &v.phases)
        .flat_map(|p| &p.streams)
        .any(|s| s.latency.corrected.count > 0 && s.latency.corrected.p50_ci.is_none());
    if !old {
        return Ok(());
    }
    let objective_ms = run.settings.objective_ms;
    for v in &mut run.variants {
        for s in v.phases.iter_mut().flat_map(|p| &mut p.streams) {
            s.latency.corrected = Percentiles::of(&decode(&s.histograms.corrected)?);
            s.latency.uncorrected = Percentiles::of(&decode(&s.histograms.uncorrected)?);
        }
        if let (Some(_), Some(heavy)) = (&v.figures, &v.heavy) {
            v.figures = Figures::derive(&v.phases, heavy);
        }
        if v.verdict.is_none() && v.status == VariantStatus::Ok {
            v.verdict = v.judge(objective_ms);
        }
    }
    Ok(())
}

/// The run folders inside `dir` (those holding a report.json; not the `latest`
/// link), in natural order: `round-2` before `round-10`.
pub fn run_folders(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("report.json").exists() && !p.ends_with("latest"))
        .collect();
    let key = |p: &PathBuf| {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (stem, number) = name.split_at(name.len() - digits);
        (
            stem.to_owned(),
            number.parse::<u64>().unwrap_or(0),
            name.clone(),
        )
    };
    dirs.sort_by_key(key);
    Ok(dirs)
}

/// The run reports at `path`: one run folder or report.json, or a folder of run
/// folders (repeated runs, e.g. for `compare`), in [`run_folders`] order.
pub fn load_runs(path: &Path) -> anyhow::Result<Vec<RunReport>> {
    if path.is_dir() && !path.join("report.json").exists() {
        let dirs = run_folders(path)?;
        anyhow::ensure!(!dirs.is_empty(), "{} holds no run report", path.display());
        return dirs.iter().map(|d| load_run(d)).collect();
    }
    Ok(vec![load_run(path)?])
}

/// The reports one side of `compare` names: run reports (one run folder or
/// report.json, or a folder of run folders), or bench reports (one `bench --json`
/// file, or a folder of them).
pub enum Side {
    Runs(Vec<RunReport>),
    Benches(Vec<BenchReport>),
}

/// The reports at `path`, for one side of `compare`.
pub fn load_side(path: &Path) -> anyhow::Result<Side> {
    if path.is_file() || path.join("report.json").exists() {
        return Ok(match load(path)? {
            Report::Run(run) => Side::Runs(vec![run]),
            Report::Bench(bench) => Side::Benches(vec![bench]),
        });
    }
    if path.is_dir() && !run_folders(path)?.is_empty() {
        return load_runs(path).map(Side::Runs);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "{} holds no run folder and no bench report (*.json)",
        path.display()
    );
    files
        .iter()
        .map(|f| load_bench(f))
        .collect::<anyhow::Result<_>>()
        .map(Side::Benches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_sort_naturally_and_skip_latest() {
        let dir = std::env::temp_dir().join(format!("loadgen-folders-{}", std::process::id()));
        for name in ["round-10", "round-2", "round-1", "latest"] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("report.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(dir.join("charts")).unwrap();
        let names: Vec<String> = run_folders(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["round-1", "round-2", "round-10"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
