//! The report as pretty-printed JSON, for machines (`--json`).

use std::path::{Path, PathBuf};

use super::{BenchReport, Exporter};

/// Writes the whole [`BenchReport`].
pub struct Json;

impl Exporter for Json {
    fn files(&self, report: &BenchReport, path: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        let mut text = serde_json::to_vec_pretty(report)?;
        text.push(b'\n');
        Ok(vec![(path.to_owned(), text)])
    }
}

/// Reads a report written by [`Json`], refusing other schema versions.
pub fn read(path: &Path) -> anyhow::Result<BenchReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let report: BenchReport = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a loadgen report: {e}", path.display()))?;
    anyhow::ensure!(
        report.schema_version == super::SCHEMA_VERSION,
        "{} has schema version {}, this loadgen reads {}",
        path.display(),
        report.schema_version,
        super::SCHEMA_VERSION
    );
    Ok(report)
}
