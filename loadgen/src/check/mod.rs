//! `loadgen check`: thresholds against a saved run report, exit 0 when all hold and
//! 99 when any fails (k6's convention), 1 when they cannot be checked. Also used by
//! `loadgen run --check`.

pub mod compare;
pub mod eval;
pub mod expr;

use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use serde::Deserialize;

use crate::cli::CheckArgs;
use crate::exit::{CommandError, EXIT_THRESHOLD_FAILED};
use crate::files::write_atomically;
use crate::matrix::MatrixReport;
pub use eval::{Outcome, Report};

/// A thresholds file: `thresholds = ["expr", ...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    thresholds: Vec<String>,
}

/// Reads the expressions of a thresholds file.
pub fn load_thresholds(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let file: ThresholdsFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(file.thresholds)
}

/// The report file at `path` (a run folder means its report.json) and its text.
fn read_report_text(path: &Path) -> anyhow::Result<(std::path::PathBuf, String)> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    Ok((file, text))
}

/// Reads the report at `path` for `check`: a run folder or its report.json, or a
/// `bench --json` file.
pub fn load_any_report(path: &Path) -> anyhow::Result<Report> {
    let (file, text) = read_report_text(path)?;
    if serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.get("variants").is_none()) {
        return Ok(Report::Bench(crate::report::json::read(&file)?));
    }
    Ok(Report::Run(parse_run_report(&file, &text)?))
}

/// Reads a run report from a run folder or a report.json path.
pub fn load_report(path: &Path) -> anyhow::Result<MatrixReport> {
    let (file, text) = read_report_text(path)?;
    parse_run_report(&file, &text)
}

fn parse_run_report(file: &Path, text: &str) -> anyhow::Result<MatrixReport> {
    let report: MatrixReport = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{} is not a loadgen run report: {e}", file.display()))?;
    anyhow::ensure!(
        report.schema_version == crate::matrix::SCHEMA_VERSION,
        "{} has schema version {}, this loadgen reads {}",
        file.display(),
        report.schema_version,
        crate::matrix::SCHEMA_VERSION
    );
    Ok(report)
}

/// Parses and evaluates every expression; any malformed or uncheckable one is an
/// error naming it.
pub fn evaluate_all(report: &Report, expressions: &[String]) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for text in expressions {
        let threshold =
            expr::parse(text).map_err(|e| anyhow::anyhow!("threshold {text:?}: {e}"))?;
        outcomes.extend(
            eval::evaluate(report, &threshold)
                .map_err(|e| anyhow::anyhow!("threshold {text:?}: {e}"))?,
        );
    }
    Ok(outcomes)
}

/// One line per outcome.
pub fn lines(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let _ = writeln!(
            out,
            "{}  {}   ({})",
            if o.passed { "PASS" } else { "FAIL" },
            o.name,
            o.detail
        );
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    let _ = writeln!(out, "{} passed, {} failed", outcomes.len() - failed, failed);
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// JUnit XML, one test case per outcome.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites><testsuite name=\"loadgen thresholds\" tests=\"{}\" failures=\"{failed}\">",
        outcomes.len()
    );
    for o in outcomes {
        let _ = write!(
            out,
            "<testcase classname=\"loadgen.thresholds\" name=\"{}\">",
            xml_escape(&o.name)
        );
        if !o.passed {
            let _ = write!(out, "<failure message=\"{}\"/>", xml_escape(&o.detail));
        }
        let _ = writeln!(
            out,
            "<system-out>{}</system-out></testcase>",
            xml_escape(&o.detail)
        );
    }
    out.push_str("</testsuite></testsuites>\n");
    out
}

/// A Markdown table for a CI job summary.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::from("| result | threshold | measured |\n|---|---|---|\n");
    for o in outcomes {
        let cell = |s: &str| s.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| {} | `{}` | {} |",
            if o.passed { "✅ pass" } else { "❌ fail" },
            cell(&o.name),
            cell(&o.detail)
        );
    }
    out
}

/// The exit status for a set of outcomes.
pub fn exit_code(outcomes: &[Outcome]) -> ExitCode {
    if outcomes.iter().all(|o| o.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_THRESHOLD_FAILED)
    }
}

/// Runs `loadgen check`.
pub fn run(args: CheckArgs) -> Result<ExitCode, CommandError> {
    let report = load_any_report(&args.report)?;
    let mut expressions = args.threshold.clone();
    if let Some(file) = &args.thresholds {
        expressions.extend(load_thresholds(file)?);
    }
    if expressions.is_empty() {
        return Err(CommandError::Usage(
            "give at least one --threshold EXPR or --thresholds FILE".into(),
        ));
    }
    let outcomes = evaluate_all(&report, &expressions)?;
    print!("{}", lines(&outcomes));
    if let Some(path) = &args.junit {
        write_atomically(path, junit(&outcomes).as_bytes()).map_err(anyhow::Error::from)?;
    }
    if let Some(path) = &args.markdown {
        write_atomically(path, markdown(&outcomes).as_bytes()).map_err(anyhow::Error::from)?;
    }
    Ok(exit_code(&outcomes))
}
