//! The data model of both commands' results, how it is read back, and how it is
//! rendered: one format per file ([`json`], [`hgrm`] behind the small [`Exporter`]
//! trait, as hyperfine's exporters are; [`text`] and [`markdown`] summaries; the
//! interval log [`hlog`], written while a run goes on). Charts and checks read
//! these types; nothing here depends on a command.
//!
//! - [`bench`]: what `loadgen bench` measured ([`BenchReport`]);
//! - [`run`]: what `loadgen run` measured, variant by variant ([`RunReport`]), with
//!   its [`settings`], derived [`figures`], load [`sweep`] and comparison [`table`];
//! - [`stream`]: one stream's figures, shared by both.

pub mod bench;
pub mod figures;
pub mod format;
pub mod hgrm;
pub mod hlog;
pub mod jobs;
pub mod json;
pub mod load;
pub mod markdown;
pub mod merge;
pub mod polls;
pub mod recommendation;
pub mod repeat;
pub mod run;
pub mod settings;
pub mod stream;
pub mod sweep;
pub mod table;
pub mod text;
pub mod verdict;
pub mod warnings;

use std::path::{Path, PathBuf};

pub use bench::{BenchReport, NamedJobsFigures, RunConfig};
pub use figures::Figures;
pub use jobs::JobsFigures;
pub use recommendation::Recommendation;
pub use run::{PhaseReport, Placement, Resolution, RunReport, VariantReport, VariantStatus};
pub use settings::{HeavySize, MeasuredSize, PhaseSpec, Scenario, Settings};
pub use stream::{EncodedHistograms, IntervalReport, Latency, StreamMode, StreamReport};
pub use sweep::{StepFigures, Sweep};
pub use verdict::Verdict;

/// Bumped whenever a field of either report changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// A finished report of either command (built once per command, so the size
/// difference between the two does not matter).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Report {
    /// From `loadgen run`: variants, phases, streams.
    Run(RunReport),
    /// From `loadgen bench`: streams.
    Bench(BenchReport),
}

impl Report {
    /// Whether the run was cut short by Ctrl-C/SIGTERM.
    pub fn interrupted(&self) -> bool {
        match self {
            Report::Run(r) => r.interrupted,
            Report::Bench(b) => b.interrupted,
        }
    }

    /// Whether some part of the run could not be measured (a variant that did not
    /// start or crashed).
    pub fn has_failures(&self) -> bool {
        match self {
            Report::Run(r) => r.variants.iter().any(|v| v.status != VariantStatus::Ok),
            Report::Bench(_) => false,
        }
    }
}

/// One output format of a finished report.
pub trait Exporter {
    /// The files this format makes for `report` when asked to write `path`, as
    /// (file, contents) pairs.
    fn files(&self, report: &Report, path: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>>;

    /// Writes every file, each one atomically.
    fn write(&self, report: &Report, path: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (file, contents) in self.files(report, path)? {
            crate::files::write_atomically(&file, &contents)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
            written.push(file);
        }
        Ok(written)
    }
}

/// `path` for a one-stream run; `stem.STREAM.ext` beside it when there are several.
pub fn per_stream_path(path: &Path, stream: &str, streams: usize) -> PathBuf {
    if streams == 1 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{stream}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{stream}"),
    };
    path.with_file_name(name)
}
