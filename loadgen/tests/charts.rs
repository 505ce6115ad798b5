//! Charts and the HTML report from a small synthetic run: valid SVG and PNG files,
//! every variant named in the legends, `loadgen plot` reproducing them from the saved
//! report, and the page rendered by headless Chromium where it is installed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::browser::{chromium, headless};
use support::synthetic::{
    synthetic_jobs_report, synthetic_report, synthetic_sweep_report, VARIANTS,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-charts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check_svg(path: &Path, names: &[&str]) -> String {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(
        svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{}",
        path.display()
    );
    for name in names {
        assert!(
            svg.contains(name),
            "{} does not name {name}",
            path.display()
        );
    }
    svg
}

fn check_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    // Width and height from the IHDR chunk.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), loadgen::charts::SIZE);
    assert!(
        bytes.len() > 10_000,
        "{} is suspiciously small",
        path.display()
    );
}

#[test]
fn charts_are_valid_and_name_every_variant() {
    let dir = temp_dir("render");
    let report = synthetic_report();
    let written = loadgen::charts::render_run(&report, &dir).unwrap();
    let charts = dir.join("charts");
    for stem in ["spectrum-probe", "spectrum-heavy", "comparison"] {
        check_svg(&charts.join(format!("{stem}.svg")), &VARIANTS);
        check_png(&charts.join(format!("{stem}.png")));
    }
    for name in VARIANTS {
        let svg = check_svg(
            &charts.join(format!("timeline-{name}.svg")),
            &[name, "loaded", "probe p99"],
        );
        assert!(svg.contains("heavy completions"));
        check_png(&charts.join(format!("timeline-{name}.png")));
    }
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // The static charts inline, the timelines as the frozen dashboard's frames.
    assert!(page.contains("<table id=\"comparison\">") && page.matches("<svg").count() >= 3);
    assert!(page.contains("id=\"frozen-frames\""));
    for external in [
        "<script src",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(http",
    ] {
        assert!(
            !page.contains(external),
            "the page must load nothing ({external})"
        );
    }
    assert_eq!(written.len(), 2 * (3 + VARIANTS.len()) + 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plot_redraws_the_charts_of_a_saved_run() {
    let dir = temp_dir("plot");
    // As a finished run writes it: with the recommendation reading a report derives
    // again.
    let mut report = synthetic_report();
    report.recommendation = Some(loadgen::report::Recommendation::derive(&report));
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec(&report).unwrap(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["plot", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = temp_dir("plot-reference");
    loadgen::charts::render_run(&report, &reference).unwrap();
    for file in [
        "charts/spectrum-probe.svg",
        "charts/comparison.svg",
        "charts/timeline-rayon.svg",
        "report.html",
    ] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(reference.join(file)).unwrap(),
            "{file} differs from a direct rendering"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("summary.md")).unwrap(),
        loadgen::report::markdown::summary(&report),
        "the summary is rendered again too"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["plot", "/no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot read"));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&reference).unwrap();
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: the_html_report_renders_in_headless_chromium: no chromium installed (.ci/run installs it)");
        return;
    };
    let dir = temp_dir("html");
    loadgen::charts::render_run(&synthetic_sweep_report(), &dir).unwrap();
    let url = format!("file://{}", dir.join("report.html").display());
    let dom = headless(&browser, &dir.join("profile-dom"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("id=\"comparison\"") && dom.contains("id=\"sweep\""),
        "no comparison or sweep table in the rendered page"
    );
    assert!(
        dom.contains("Probe p99 against offered heavy load"),
        "no sweep chart in the rendered page"
    );
    assert!(
        dom.matches("<svg").count() >= 4,
        "static charts missing from the rendered page"
    );
    // Each variant's timeline: latency and rates, drawn by the page's script.
    assert!(
        dom.matches("<canvas").count() >= 2 * VARIANTS.len(),
        "interactive charts missing from the rendered page"
    );
    for name in VARIANTS {
        assert!(dom.contains(name), "{name} missing from the rendered page");
    }
    let shot = dir.join("page.png");
    let status = headless(&browser, &dir.join("profile-shot"))
        .args([
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400".into(),
            url,
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bytes = std::fs::read(&shot).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "screenshot looks empty"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_with_nothing_measured_still_draws() {
    // An interrupted run: variants without figures, phases without streams.
    let mut report = synthetic_report();
    report.interrupted = true;
    for v in &mut report.variants {
        v.figures = None;
        v.phases.truncate(1);
        v.phases[0].streams.clear();
    }
    let dir = temp_dir("empty");
    let written = loadgen::charts::render_run(&report, &dir).unwrap();
    assert!(written.iter().any(|p| p.ends_with("report.html")));
    check_png(&dir.join("charts/spectrum-probe.png"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_jobs_run_gets_its_own_page_and_comparison() {
    let report = synthetic_jobs_report();
    let dir = temp_dir("jobs");
    loadgen::charts::render_run(&report, &dir).unwrap();
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        page.contains("<h1>Background jobs under blocking load</h1>"),
        "title"
    );
    assert!(
        !page.contains("Responsiveness under blocking load") && !page.contains("heavy jobs"),
        "a jobs run is not described as heavy requests"
    );
    assert!(page.contains("with background jobs") && page.contains("end-to-end p99"));
    // The comparison ranks by loaded probe p99 and shows the jobs' end-to-end p99.
    let svg = check_svg(&dir.join("charts/comparison.svg"), &VARIANTS);
    assert!(
        svg.contains("jobs end-to-end p99"),
        "the jobs axis is drawn"
    );
    assert!(
        svg.matches("<rect").count() >= 2 * VARIANTS.len(),
        "two bars per variant"
    );
    check_svg(&dir.join("charts/spectrum-jobs.svg"), &VARIANTS);
    std::fs::remove_dir_all(&dir).unwrap();
}
