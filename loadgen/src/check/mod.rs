//! Thresholds against a report (`loadgen check`, `run --check`, `bench
//! --threshold`): expressions ([`expr`]) evaluated against a run or bench report
//! ([`eval`]), their results as lines, JUnit XML and Markdown; and the comparison of
//! two sets of runs ([`compare`]).

pub mod compare;
pub mod eval;
pub mod expr;

use std::fmt::Write;
use std::path::Path;

use serde::Deserialize;

use crate::report::format::escape_markup;
use crate::report::Report;
pub use eval::Outcome;

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

/// The outcomes of the same thresholds over several rounds, one per threshold: it
/// fails when it failed in more than half of the rounds; with several rounds its
/// detail lists each round's. One round's outcomes come back as they are.
pub fn by_majority(rounds: &[Vec<Outcome>]) -> Vec<Outcome> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    if rounds.len() == 1 {
        return first.clone();
    }
    first
        .iter()
        .map(|o| {
            let same: Vec<&Outcome> = rounds
                .iter()
                .filter_map(|r| r.iter().find(|x| x.name == o.name))
                .collect();
            let failed = same.iter().filter(|x| !x.passed).count();
            let details: Vec<String> = same
                .iter()
                .enumerate()
                .map(|(i, x)| format!("round {}: {}", i + 1, x.detail))
                .collect();
            Outcome {
                name: o.name.clone(),
                passed: failed * 2 <= same.len(),
                detail: format!(
                    "failed in {failed} of {} rounds; {}",
                    same.len(),
                    details.join("; ")
                ),
            }
        })
        .collect()
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
            escape_markup(&o.name)
        );
        if !o.passed {
            let _ = write!(out, "<failure message=\"{}\"/>", escape_markup(&o.detail));
        }
        let _ = writeln!(
            out,
            "<system-out>{}</system-out></testcase>",
            escape_markup(&o.detail)
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
