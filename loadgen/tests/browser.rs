//! The dashboard and the report in a real browser, driven over WebDriver
//! (headless Chromium and chromedriver, which `.ci/run` installs; SKIPPED where
//! they are missing): the live page updates while a bench runs and shows the
//! report's figures, the frozen report draws every chart without an error, and
//! a drag across a chart zooms it and the charts linked to it.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::Locator;
use serde_json::Value;
use support::live::live_bench;
use support::processes::{bench_report, temp_dir};
use support::synthetic::{synthetic_report, synthetic_sweep_report};
use support::webdriver::Browser;
use support::{Behaviour, TestServer};

/// Runs `test` with a browser, or says SKIPPED (and passes) without one.
fn with_browser<F, Fut>(name: &str, profile: &Path, test: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match Browser::start(profile).await {
            Ok(browser) => test(browser).await,
            Err(why) => eprintln!("SKIPPED: {name}: {why}"),
        }
    });
}

#[test]
fn the_live_page_updates_while_a_bench_runs_and_shows_the_reports_p99() {
    let dir = temp_dir("browser-live");
    with_browser(
        "the_live_page_updates_while_a_bench_runs",
        &dir.join("profile"),
        |browser| async move {
            let server = TestServer::start(Behaviour::Fast);
            let json = dir.join("report.json");
            let (child, addr) = live_bench(&server, &json, "6s");
            let mut child = support::live::KillOnDrop(child);
            browser
                .client
                .goto(&format!("http://{addr}/"))
                .await
                .unwrap();
            // What the page shows, read every 100 ms while the run goes on:
            // (intervals drawn, the latest p99 shown).
            let mut seen: Vec<(u64, f64)> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let state = browser
                    .eval(
                        "const l = document.querySelector('.latest');
                         const s = document.getElementById('status');
                         return [l ? Number(l.dataset.intervals || 0) : 0,
                                 l ? Number(l.dataset.p99Us || 0) : 0,
                                 s.dataset.outcome || ''];",
                    )
                    .await;
                let ended = state[2] != "";
                let drawn = state[0].as_u64().unwrap();
                if !ended && drawn > 0 && seen.last().map(|s| s.0) != Some(drawn) {
                    seen.push((drawn, state[1].as_f64().unwrap()));
                }
                if ended || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(child.0.wait().unwrap().success());
            assert!(
                seen.len() >= 3,
                "the page updated {} times while the run went on",
                seen.len()
            );
            // Each p99 shown during the run is the report's for that interval.
            let report = bench_report(&json);
            let stream = &report.streams[0];
            let measured: Vec<_> = stream
                .intervals
                .iter()
                .filter(|i| i.is_in_window(stream.measured_s))
                .collect();
            for (drawn, p99) in &seen {
                assert_eq!(
                    *p99,
                    measured[*drawn as usize - 1].corrected.p99_us,
                    "interval {drawn}"
                );
            }
            let outcome = browser
                .eval("return document.getElementById('status').dataset.outcome;")
                .await;
            assert_eq!(outcome, "finished");
            let last = browser
                .eval("return Number(document.querySelector('.latest').dataset.p99Us);")
                .await;
            assert_eq!(
                last.as_f64().unwrap(),
                measured.last().unwrap().corrected.p99_us
            );
            assert_eq!(browser.errors().await, Vec::<String>::new());
            browser.close().await;
        },
    );
}

/// Writes `report`'s report.html under `dir` and opens it.
async fn open_report(
    browser: &Browser,
    dir: &Path,
    report: loadgen::report::RunReport,
) -> loadgen::report::RunReport {
    loadgen::charts::render_run(&report, dir).unwrap();
    let url = format!("file://{}", dir.join("report.html").display());
    browser.client.goto(&url).await.unwrap();
    assert!(
        browser
            .wait_for(
                "return document.getElementById('status').dataset.outcome === 'finished';",
                Duration::from_secs(10),
            )
            .await,
        "the frozen page never finished reading its frames"
    );
    report
}

#[test]
fn the_frozen_report_draws_every_chart_without_an_error() {
    let dir = temp_dir("browser-report");
    with_browser(
        "the_frozen_report_draws_every_chart_without_an_error",
        &dir.join("profile"),
        |browser| async move {
            let report = open_report(&browser, &dir, synthetic_sweep_report()).await;
            // Charts are drawn on the next animation frame.
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Per chart: its section and name, its points, whether its x
            // ascend (uPlot needs them to), and how many of its pixels are in
            // the colour of its last shown series with values (drawn on top;
            // drawn, not just sized).
            let charts = browser
                .eval(
                    "return window.loadgenCharts.map(c => {
                       const xs = c.u.data[0];
                       const ascending = xs.every((x, i) => i === 0 || xs[i - 1] <= x);
                       const shown = c.u.series.slice(1)
                         .filter((s, i) => s.show && c.u.data[i + 1].some(v => v != null)).pop();
                       const [r, g, b] = shown.stroke().match(/[0-9a-f]{2}/g).map(h => parseInt(h, 16));
                       const canvas = c.u.ctx.canvas;
                       const pixels = c.u.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
                       let inked = 0;
                       for (let i = 0; i < pixels.length; i += 4) {
                         if (pixels[i + 3] > 128 && Math.abs(pixels[i] - r) < 40
                             && Math.abs(pixels[i + 1] - g) < 40 && Math.abs(pixels[i + 2] - b) < 40) inked += 1;
                       }
                       return [c.section, c.name, xs.length, ascending, inked];
                     });",
                )
                .await;
            let charts = charts.as_array().unwrap();
            for variant in &report.variants {
                let has_lag = variant.phases.iter().any(|p| p.server_telemetry.is_some());
                let mut expected = vec!["latency", "rates"];
                if has_lag {
                    expected.push("server");
                }
                for name in expected {
                    let chart = charts
                        .iter()
                        .find(|c| c[0] == variant.name.as_str() && c[1] == name)
                        .unwrap_or_else(|| panic!("no {name} chart of {}", variant.name));
                    assert!(chart[2].as_u64().unwrap() > 0, "{chart:?} has no points");
                    assert_eq!(chart[3], true, "{chart:?}: x out of order");
                    assert!(chart[4].as_u64().unwrap() > 20, "{chart:?} drew no line");
                }
                // The probe's points are the report's intervals, phases end to end.
                let probe_points: usize = variant
                    .phases
                    .iter()
                    .filter_map(|p| p.stream("probe"))
                    .map(|s| s.intervals.len())
                    .sum();
                let drawn = browser
                    .eval(&format!(
                        "return Number(document.querySelector(\"[data-section='{}'] .latest[data-stream='probe']\").dataset.points);",
                        variant.name
                    ))
                    .await;
                assert_eq!(drawn.as_u64().unwrap() as usize, probe_points);
            }
            // The static charts are there too, and the tables.
            let svgs = browser
                .eval("return document.querySelectorAll('svg').length;")
                .await;
            assert!(svgs.as_u64().unwrap() >= 4, "{svgs} static charts");
            for id in ["comparison", "sweep"] {
                browser.client.find(Locator::Id(id)).await.unwrap();
            }
            assert_eq!(browser.errors().await, Vec::<String>::new());
            browser.close().await;
        },
    );
}

#[test]
fn dragging_across_a_chart_zooms_it_and_the_charts_linked_to_it() {
    let dir = temp_dir("browser-zoom");
    with_browser(
        "dragging_across_a_chart_zooms_it",
        &dir.join("profile"),
        |browser| async move {
            let report = open_report(&browser, &dir, synthetic_report()).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            // A variant whose server's lag was scraped: three linked charts.
            let variant = &report
                .variants
                .iter()
                .find(|v| v.phases.iter().any(|p| p.server_telemetry.is_some()))
                .unwrap()
                .name;
            let range = |name: &str| {
                format!(
                    "const c = window.loadgenCharts.find(c => c.section === '{variant}' && c.name === '{name}');
                     return [c.u.scales.x.min, c.u.scales.x.max];"
                )
            };
            let before = browser.eval(&range("latency")).await;
            let selector = format!("[data-section='{variant}'] [data-chart='latency'] .u-over");
            browser
                .eval(&format!(
                    "document.querySelector(\"{selector}\").scrollIntoView({{block: 'center'}});"
                ))
                .await;
            let over = browser.client.find(Locator::Css(&selector)).await.unwrap();
            let (_, _, w, _) = over.rectangle().await.unwrap();
            // Press at a fifth of the plot, release at three fifths.
            let drag = MouseActions::new("mouse".into())
                .then(PointerAction::MoveToElement {
                    element: over.clone(),
                    duration: None,
                    x: -w * 0.3,
                    y: 0.0,
                })
                .then(PointerAction::Down {
                    button: MOUSE_BUTTON_LEFT,
                })
                .then(PointerAction::MoveBy {
                    duration: Some(Duration::from_millis(200)),
                    x: w * 0.4,
                    y: 0.0,
                })
                .then(PointerAction::Up {
                    button: MOUSE_BUTTON_LEFT,
                });
            browser.client.perform_actions(drag).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = browser.eval(&range("latency")).await;
            let span = |v: &Value| v[1].as_f64().unwrap() - v[0].as_f64().unwrap();
            assert!(
                span(&after) < 0.6 * span(&before) && span(&after) > 0.2 * span(&before),
                "the visible range went from {before} to {after}"
            );
            assert!(after[0].as_f64().unwrap() > before[0].as_f64().unwrap());
            // The section's other charts show the same seconds.
            for linked in ["rates", "server"] {
                assert_eq!(
                    browser.eval(&range(linked)).await,
                    after,
                    "the {linked} chart did not follow"
                );
            }
            assert_eq!(browser.errors().await, Vec::<String>::new());
            browser.close().await;
        },
    );
}

/// The README's picture of the live page: `loadgen run --live` (the default
/// run, plus `LIVE_SCREENSHOT_RUN_ARGS`), photographed by the test browser
/// once `LIVE_SCREENSHOT_AFTER` variants (default 5) have finished and the next
/// is in a loaded step; the sections of blocking-in-async, rayon and the one
/// running are left shown (the others toggled off, as a reader would). The
/// picture goes to `LIVE_SCREENSHOT`; the run is then interrupted (its folder
/// stays beside the picture). `scripts/live-screenshot.sh` runs it.
#[test]
#[ignore = "takes minutes; scripts/live-screenshot.sh runs it"]
fn screenshot_of_the_live_page_during_the_default_run() {
    let shot = std::path::PathBuf::from(
        std::env::var("LIVE_SCREENSHOT").expect("LIVE_SCREENSHOT: where to write the PNG"),
    );
    let after: usize = std::env::var("LIVE_SCREENSHOT_AFTER")
        .map(|a| a.parse().expect("LIVE_SCREENSHOT_AFTER: a number"))
        .unwrap_or(5);
    let extra = std::env::var("LIVE_SCREENSHOT_RUN_ARGS").unwrap_or_default();
    let out = shot.parent().unwrap().join("run");
    let dir = temp_dir("browser-shot");
    with_browser(
        "screenshot_of_the_live_page_during_the_default_run",
        &dir.join("profile"),
        |browser| async move {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
                .args(["run", "--live", "--out", out.to_str().unwrap()])
                .args(extra.split_whitespace())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let addr = support::live::dashboard_address(&mut child);
            let mut child = support::live::KillOnDrop(child);
            browser.client.set_window_size(1300, 1700).await.unwrap();
            browser
                .client
                .goto(&format!("http://{addr}/"))
                .await
                .unwrap();
            let ready = format!(
                "const s = document.getElementById('status');
                 return Number(document.getElementById('comparison-live').dataset.variants || 0) >= {after}
                     && (s.dataset.phase || '').startsWith('load-1');"
            );
            assert!(
                browser.wait_for(&ready, Duration::from_secs(3600)).await,
                "the run never got that far"
            );
            // Ten seconds into the step, so it shows.
            tokio::time::sleep(Duration::from_secs(10)).await;
            browser
                .eval(
                    "const running = document.getElementById('status').dataset.variant;
                     for (const label of document.querySelectorAll('#toggles label')) {
                       const name = label.textContent.trim();
                       const box = label.querySelector('input');
                       if (!['blocking-in-async', 'rayon', running].includes(name)) box.click();
                     }",
                )
                .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let png = browser.client.screenshot().await.unwrap();
            std::fs::write(&shot, png).unwrap();
            assert_eq!(browser.errors().await, Vec::<String>::new());
            browser.close().await;
            support::processes::signal(child.0.id(), libc::SIGINT);
            let _ = child.0.wait();
        },
    );
}
