//! `report.html`: one self-contained page (charts inline as SVG, no scripts, no
//! network) with the comparison table, the environment and configuration, and what
//! each variant is.

use std::fmt::Write;

use servers::variant::Variant;

use crate::matrix::MatrixReport;

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;font-size:14px;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}figure{margin:2em 0}svg{max-width:100%;height:auto}\
.small{color:#666;font-size:13px}";

/// The page of a `loadgen run`; `charts` are (title, SVG text) pairs.
pub fn matrix_page(report: &MatrixReport, charts: &[(String, String)]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Responsiveness under blocking load, {}</title><style>{STYLE}</style></head><body>\n",
        escape(&report.started_at)
    );
    let _ = writeln!(out, "<h1>Responsiveness under blocking load</h1>");
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
    let placement = match (&report.placement.server_cpus, &report.placement.client_cpus) {
        (None, None) => "servers and client share all CPUs".to_owned(),
        (s, c) => format!("servers on CPUs {s:?}, client on CPUs {c:?}"),
    };
    let _ = writeln!(out, "<li>{}</li>", escape(&placement));
    let s = &report.settings;
    for p in &s.phases {
        let _ = writeln!(
            out,
            "<li>phase <b>{}</b>: {} s measured after {} s warm-up{}</li>",
            escape(&p.name),
            p.duration_s,
            p.warmup_s,
            if p.heavy { ", with heavy load" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "<li>probe <code>GET /health</code>, open loop at {}/s on {} connections; heavy jobs of ~{} ms CPU offered at {}× what the cores can finish, on {} connections; timeout {} s</li></ul>",
        s.probe_rate, s.probe_connections, s.job_ms, s.overload, s.heavy_connections, s.timeout_s
    );

    let _ = writeln!(out, "<h2>Comparison</h2><p>Probe latency corrected for coordinated omission; sorted by inflation (loaded p99 ÷ idle p99). Requests that timed out or were never answered count at the time they were given up (lower bounds).</p>");
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
            let _ = write!(out, "<td{colspan}>{}</td>", escape(cell));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
    let warnings = report.warnings();
    if !warnings.is_empty() {
        let _ = writeln!(out, "<h3>Warnings</h3><ul>");
        for w in warnings {
            let _ = writeln!(out, "<li>{}</li>", escape(&w));
        }
        let _ = writeln!(out, "</ul>");
    }

    let _ = writeln!(out, "<h2>Charts</h2>");
    for (title, svg) in charts {
        let _ = writeln!(
            out,
            "<figure><figcaption>{}</figcaption>\n{svg}\n</figure>",
            escape(title)
        );
    }

    let _ = writeln!(out, "<h2>The variants</h2><table id=\"variants\"><tr><th>variant</th><th>what it does</th><th>FastAPI answer it mirrors</th></tr>");
    for v in Variant::ALL {
        let _ = writeln!(out, "<tr><td>{}</td><td style=\"text-align:left\">{}</td><td style=\"text-align:left\">{}</td></tr>", v.name(), escape(v.summary()), escape(v.mirrors()));
    }
    let _ = writeln!(out, "</table></body></html>");
    out
}
