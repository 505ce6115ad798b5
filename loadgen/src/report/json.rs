//! A report as pretty-printed JSON, for machines (`bench --json`, a run's
//! `report.json`). [`super::load`] reads it back.

use std::path::{Path, PathBuf};

use super::{Exporter, Report};

/// Writes the whole report to the path given.
pub struct Json;

impl Exporter for Json {
    fn files(&self, report: &Report, path: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        let mut text = match report {
            Report::Run(run) => serde_json::to_vec_pretty(run)?,
            Report::Bench(bench) => serde_json::to_vec_pretty(bench)?,
        };
        text.push(b'\n');
        Ok(vec![(path.to_owned(), text)])
    }
}
