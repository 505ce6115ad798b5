//! Reading a saved report back: a run folder or its `report.json` (from `loadgen
//! run`), or a `bench --json` file, with one schema check for both.

use std::path::{Path, PathBuf};

use super::{BenchReport, Report, RunReport, SCHEMA_VERSION};

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
        Report::Run(serde_json::from_value(value).map_err(not_a_report)?)
    } else {
        Report::Bench(serde_json::from_value(value).map_err(not_a_report)?)
    })
}

/// The run reports at `path`: one run folder or report.json, or a folder of run
/// folders (repeated runs, e.g. for `compare`), in name order.
pub fn load_runs(path: &Path) -> anyhow::Result<Vec<RunReport>> {
    if path.is_dir() && !path.join("report.json").exists() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("report.json").exists() && !p.ends_with("latest"))
            .collect();
        dirs.sort();
        anyhow::ensure!(!dirs.is_empty(), "{} holds no run report", path.display());
        return dirs.iter().map(|d| load_run(d)).collect();
    }
    Ok(vec![load_run(path)?])
}
