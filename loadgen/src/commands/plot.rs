//! `loadgen plot DIR`: the charts, report.html and summary.md of a saved run,
//! rendered again from its `report.json` without running anything; for the folder
//! of a repeated run (`run --repeat N`), its summary.md and repeat.json from the
//! rounds' reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::CommandError;
use crate::cli::PlotArgs;
use crate::files::write_atomically;
use crate::report::load::{load_run, run_folders};
use crate::report::markdown;
use crate::report::repeat::RepeatReport;
use crate::report::Report;

/// Runs `loadgen plot`.
pub fn run(args: &PlotArgs) -> Result<ExitCode, CommandError> {
    let dir = &args.dir;
    let written = if dir.join("report.json").exists() || !dir.is_dir() {
        run_folder(dir)?
    } else {
        repeat_folder(dir)?
    };
    for file in written {
        println!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// One run: charts, report.html and summary.md.
fn run_folder(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let run = load_run(dir)?;
    let summary = dir.join("summary.md");
    write_atomically(&summary, markdown::summary(&run).as_bytes())?;
    let mut written = crate::charts::render(&Report::Run(run), dir)?;
    written.push(summary);
    Ok(written)
}

/// A repeated run: what its rounds (the sub-folders holding a report.json, in
/// natural order) say together.
fn repeat_folder(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let rounds = run_folders(dir)?;
    anyhow::ensure!(
        !rounds.is_empty(),
        "{} holds neither a report.json nor rounds of a repeated run",
        dir.display()
    );
    let reports = rounds
        .iter()
        .map(|r| load_run(r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let names = rounds
        .iter()
        .map(|r| {
            r.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let repeat = RepeatReport::of(&reports, names);
    let (summary, json) = (dir.join("summary.md"), dir.join("repeat.json"));
    write_atomically(&summary, repeat.summary().as_bytes())?;
    let mut text = serde_json::to_vec_pretty(&repeat)?;
    text.push(b'\n');
    write_atomically(&json, &text)?;
    Ok(vec![summary, json])
}
