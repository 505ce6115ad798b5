//! `report.html`: one self-contained page (nothing loaded from anywhere) with the
//! comparison table, the environment and configuration, what each variant is,
//! the static charts inline as SVG, and the live dashboard's page frozen with
//! the run's frames: every variant's timeline as interactive charts (zoom,
//! hover values, series and variants toggled, latency and server lag on linked
//! time axes).

use std::fmt::Write;

use servers::variant::Variant;

use crate::live::{page, replay};
use crate::report::format::escape_markup as escape;
use crate::report::markdown::{describe_resolution, describe_scenario, describe_table};
use crate::report::warnings::run_warnings;
use crate::report::{text, BenchReport, RunReport, Scenario};

/// A Markdown sentence as HTML: escaped, with `code` in backticks as `<code>`.
fn sentence(markdown: &str) -> String {
    escape(markdown)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;font-size:14px;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}figure{margin:2em 0}svg{max-width:100%;height:auto}\
.small{color:#666;font-size:13px}.weak{color:#aaa}";

/// The page of a `loadgen run`; `charts` are (title, SVG text) pairs of the
/// static charts shown beside the interactive timelines.
pub fn run_page(report: &RunReport, charts: &[(String, String)]) -> String {
    let title = report.scenario.title();
    let mut out = String::new();
    let _ = writeln!(out, "<style>{STYLE}</style>");
    let _ = writeln!(out, "<h1>{title}</h1>");
    let _ = writeln!(
        out,
        "<p class=\"small\">Run started {} · loadgen {}{}</p>",
        escape(&report.started_at),
        escape(&report.tool_version),
        if report.interrupted {
            " · <b>interrupted</b>"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "<h2>Environment and configuration</h2><ul>");
    let _ = writeln!(out, "<li>{}</li>", escape(&report.environment.one_line()));
    let _ = writeln!(out, "<li>{}</li>", escape(&report.placement.describe()));
    let load = match report.scenario {
        Scenario::Responsiveness => "with heavy load",
        Scenario::Upstream => "with upstream calls",
        Scenario::Jobs => "with background jobs",
    };
    for p in &report.settings.phases {
        let _ = writeln!(
            out,
            "<li>phase <b>{}</b>: {} s measured after {} s warm-up{}</li>",
            escape(&p.name),
            p.duration_s,
            p.warmup_s,
            if p.heavy {
                format!(", {load}")
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(out, "<li>{}</li>", sentence(&describe_scenario(report)));
    if let Some(resolution) = describe_resolution(report) {
        let _ = writeln!(out, "<li>{}</li>", sentence(&resolution));
    }
    let _ = writeln!(out, "</ul>");

    let _ = writeln!(
        out,
        "<h2>Comparison</h2><p>{} Requests that timed out or were never answered count at the time they were given up (lower bounds).</p>",
        sentence(&describe_table(report))
    );
    let _ = write!(out, "<table id=\"comparison\"><tr>");
    for column in report.header() {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    let _ = writeln!(out, "</tr>");
    for row in report.rows() {
        let _ = write!(out, "<tr>");
        let span = report.header().len() + 1 - row.len();
        for (i, cell) in row.iter().enumerate() {
            // A failed variant's error spans the figure columns.
            let colspan = if i == 1 && span > 1 {
                format!(" colspan=\"{span}\"")
            } else {
                String::new()
            };
            // A weak figure is greyed, with what it means on hover.
            let weak = if cell.weak {
                " class=\"weak\" title=\"too few samples to bound this percentile\""
            } else {
                ""
            };
            let _ = write!(out, "<td{colspan}{weak}>{}</td>", escape(&cell.text));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
    if report.rows().iter().flatten().any(|c| c.weak) {
        let _ = writeln!(
            out,
            "<p class=\"small\"><span class=\"weak\">Grey</span>: too few samples for a 95 % upper bound on that percentile; it is about the largest sample, not a figure to compare. ≥: a lower bound (requests given up on count at the time they were given up).</p>"
        );
    }
    let tables = [
        (
            report.sweep_table(),
            "sweep",
            "The load sweep",
            RunReport::SWEEP_CAPTION.to_owned(),
        ),
        (
            report.fresh_table(),
            "fresh",
            "New connections",
            report.fresh_caption(),
        ),
        (
            report.polls_table(),
            "polls",
            "Which code blocked",
            RunReport::POLLS_CAPTION.to_owned(),
        ),
    ];
    for (rows, id, title, caption) in tables {
        let Some(rows) = rows else { continue };
        let caption = escape(&caption);
        let _ = writeln!(out, "<h3>{title}</h3><p>{caption}</p><table id=\"{id}\">");
        for (i, row) in rows.iter().enumerate() {
            let tag = if i == 0 { "th" } else { "td" };
            let _ = write!(out, "<tr>");
            for cell in row {
                let weak = if cell.weak { " class=\"weak\"" } else { "" };
                let _ = write!(out, "<{tag}{weak}>{}</{tag}>", escape(&cell.text));
            }
            let _ = writeln!(out, "</tr>");
        }
        let _ = writeln!(out, "</table>");
    }
    if let Some(r) = &report.recommendation {
        use crate::report::recommendation::{INTRO, NONE_MET, OTHERS, RECOMMENDED, TIE};
        let _ = writeln!(
            out,
            "<h2 id=\"recommendation\">Which strategy to use</h2><p>{INTRO} Criteria: {}.</p>",
            escape(&r.criteria)
        );
        if r.recommended.is_empty() {
            let _ = writeln!(out, "<p><b>{NONE_MET}</b></p>");
        } else {
            let _ = writeln!(out, "<p>{RECOMMENDED}</p><ol>");
            for a in &r.recommended {
                let tie = if a.tied_with_previous {
                    format!(" <span class=\"small\">{TIE}</span>")
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "<li><b>{}</b>: {}{tie}</li>",
                    escape(&a.variant),
                    escape(&a.figures)
                );
            }
            let _ = writeln!(out, "</ol>");
        }
        if !r.not_recommended.is_empty() {
            let _ = writeln!(out, "<p>{OTHERS}</p><ul>");
            for a in &r.not_recommended {
                let _ = writeln!(
                    out,
                    "<li><b>{}</b>: {} <span class=\"small\">({})</span></li>",
                    escape(&a.variant),
                    escape(&a.missed.join("; ")),
                    escape(&a.figures)
                );
            }
            let _ = writeln!(out, "</ul>");
        }
    }
    let warnings = run_warnings(report);
    if !warnings.is_empty() {
        let _ = writeln!(out, "<h3>Warnings</h3><ul>");
        for w in warnings {
            let _ = writeln!(out, "<li>{}</li>", escape(&w));
        }
        let _ = writeln!(out, "</ul>");
    }

    let before = std::mem::take(&mut out);
    let _ = writeln!(out, "<h2>Charts</h2>");
    for (title, svg) in charts {
        let _ = writeln!(
            out,
            "<figure><figcaption>{}</figcaption>\n{svg}\n</figure>",
            escape(title)
        );
    }

    let _ = writeln!(out, "<h2>The variants</h2><table id=\"variants\"><tr><th>variant</th><th>what it does</th><th>what it mirrors</th></tr>");
    for v in &report.variants {
        // Reports written before variants recorded what they mirror.
        let mirrors = match v.name.parse::<Variant>() {
            Ok(builtin) if v.mirrors.is_empty() => builtin.mirrors(),
            _ => &v.mirrors,
        };
        let _ = writeln!(out, "<tr><td>{}</td><td style=\"text-align:left\">{}</td><td style=\"text-align:left\">{}</td></tr>", escape(&v.name), escape(&v.summary), escape(mirrors));
    }
    let _ = writeln!(out, "</table>");
    page::frozen(
        &format!("{title}, {}", report.started_at),
        &replay::run_frames(report),
        &before,
        &out,
    )
}

/// The page of a `loadgen bench`: its summary, then its streams' timelines
/// (and the server's lag, when scraped) as interactive charts.
pub fn bench_page(report: &BenchReport) -> String {
    let url = escape(&report.config.url);
    let before = format!(
        "<style>{STYLE}</style>\n<h1>loadgen bench: {url}</h1>\n<p class=\"small\">Started {} · loadgen {}{}</p>\n<pre id=\"summary\">{}</pre>\n",
        escape(&report.started_at),
        escape(&report.tool_version),
        if report.interrupted { " · <b>interrupted</b>" } else { "" },
        escape(&text::render(report)),
    );
    page::frozen(
        &format!(
            "loadgen bench: {}, {}",
            report.config.url, report.started_at
        ),
        &replay::bench_frames(report),
        &before,
        "",
    )
}
