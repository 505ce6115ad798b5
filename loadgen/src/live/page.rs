//! The dashboard page, two ways: served by `--live` (its chart library fetched
//! from the dashboard, its frames from `/events`), or frozen into one
//! self-contained file (the library inlined, the frames written into the page,
//! the report's tables around them), which is what `report.html` is. One
//! template, so a finished run reads exactly as it was watched.

use std::sync::OnceLock;

use super::Frame;

const TEMPLATE: &str = include_str!("page.html");
/// uPlot, vendored at a pinned version (see `loadgen/assets/uplot/VERSION` and
/// `scripts/refresh-uplot.sh`).
pub const UPLOT_JS: &str = include_str!("../../assets/uplot/uPlot.iife.min.js");
pub const UPLOT_CSS: &str = include_str!("../../assets/uplot/uPlot.min.css");

/// Where the template takes what differs between the two.
const CSS: &str = "<!--uplot-css-->";
const JS: &str = "<!--uplot-js-->";
const FROZEN: &str = "<!--frozen-frames-->";
const BEFORE: &str = "<!--report-before-->";
const AFTER: &str = "<!--report-after-->";

/// The page `--live` serves.
pub fn served() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        fill(
            &[
                (CSS, "<link rel=\"stylesheet\" href=\"/uplot.css\">"),
                (JS, "<script src=\"/uplot.js\"></script>"),
                (FROZEN, ""),
                (BEFORE, ""),
                (AFTER, ""),
            ],
            "loadgen live",
        )
    })
}

/// A finished run's page: `frames` drawn as the live page drew them, with
/// `before` and `after` (HTML of the report's own sections) around the charts.
/// Loads nothing from anywhere.
pub fn frozen(title: &str, frames: &[Frame], before: &str, after: &str) -> String {
    let frames = serde_json::to_string(frames).unwrap_or_else(|_| "[]".into());
    // No `<` at all in the data's script element (`</script` would end it, and
    // `<!--` changes how it is read): `\u003c` is the same JSON.
    let frames = frames.replace('<', "\\u003c");
    let style = format!("<style>{UPLOT_CSS}</style>");
    let script = format!("<script>{UPLOT_JS}</script>");
    let data = format!("<script type=\"application/json\" id=\"frozen-frames\">{frames}</script>");
    fill(
        &[
            (CSS, &style),
            (JS, &script),
            (FROZEN, &data),
            (BEFORE, before),
            (AFTER, after),
        ],
        title,
    )
}

fn fill(parts: &[(&str, &str)], title: &str) -> String {
    let mut page = TEMPLATE.replacen(
        "<title>loadgen live</title>",
        &format!(
            "<title>{}</title>",
            crate::report::format::escape_markup(title)
        ),
        1,
    );
    for (marker, text) in parts {
        debug_assert!(page.contains(marker), "the template lost {marker}");
        page = page.replacen(marker, text, 1);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Outcome;

    fn data_element(page: &str) -> &str {
        let data = page.split("id=\"frozen-frames\">").nth(1).unwrap();
        data.split("</script>").next().unwrap()
    }

    #[test]
    fn the_frozen_page_loads_nothing_and_holds_its_frames() {
        let frames = [Frame::End {
            outcome: Outcome::Failed,
            error: Some("<!--<script></script><script>alert(1)</script>".into()),
        }];
        let page = frozen("a <run>", &frames, "<p>before</p>", "<p>after</p>");
        assert!(!page.contains("src=") && !page.contains("<link"));
        assert!(page.contains("<title>a &lt;run&gt;</title>"));
        assert!(page.contains("<p>before</p>") && page.contains("<p>after</p>"));
        // The error text cannot end the data's script element early.
        assert!(!data_element(&page).contains('<'));
        let data = data_element(&page);
        let parsed: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            parsed[0]["error"], "<!--<script></script><script>alert(1)</script>",
            "the frames survive the escaping"
        );
        let served = served();
        assert!(served.contains("src=\"/uplot.js\"") && !served.contains("id=\"frozen-frames\""));
    }
}
