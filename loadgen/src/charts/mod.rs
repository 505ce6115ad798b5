//! Charts of a run, drawn with plotters: SVG always (text stays text, so it needs no
//! font to render), PNG too (drawn with the DejaVu Sans font shipped in
//! `assets/fonts`, so it renders the same on a fresh headless machine), and a
//! self-contained HTML report: the static charts inline as SVG, the timelines
//! interactive (the live dashboard's page, frozen).
//!
//! One chart kind per file, each implementing [`Chart`]:
//! - [`spectrum`]: latency by percentile, variants or streams overlaid (HdrHistogram's
//!   classic plot);
//! - [`timeline`]: probe p50/p99/max per interval with the phases shaded and heavy
//!   completions on a second axis;
//! - [`comparison`]: probe p99 under load and heavy efficiency per variant;
//! - [`sweep`]: probe p99 and heavy work done against the offered load.

pub mod comparison;
pub mod html;
pub mod spectrum;
pub mod sweep;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::files::write_atomically;
use crate::report::{BenchReport, Report, RunReport};

/// The font family every chart uses.
pub const FONT: &str = "sans-serif";
/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/DejaVuSans.LICENSE`).
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Width and height of every chart, in pixels.
pub const SIZE: (u32, u32) = (1100, 650);

/// Makes the shipped font the one plotters draws bitmap text with.
fn register_font() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font(FONT, style, FONT_BYTES)
                .unwrap_or_else(|_| panic!("the shipped font is not a valid font"));
        }
    });
}

/// A chart that can be drawn on any plotters backend.
pub trait Chart {
    /// File name without extension.
    fn file_stem(&self) -> String;
    /// Draws the whole chart on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// Turns a plotters error into an `anyhow` one.
pub fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

/// Draws `chart` as SVG (returned, and written) and PNG into `dir`.
pub fn write_chart<C: Chart>(chart: &C, dir: &Path) -> anyhow::Result<(String, Vec<PathBuf>)> {
    register_font();
    std::fs::create_dir_all(dir)?;
    let stem = chart.file_stem();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    let svg_path = dir.join(format!("{stem}.svg"));
    write_atomically(&svg_path, svg.as_bytes())?;
    // The bitmap backend writes the file itself: draw to a temporary name, then
    // rename, so no half-drawn PNG is ever in place.
    let png_path = dir.join(format!("{stem}.png"));
    let temporary = dir.join(format!(".{stem}.partial-{}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&temporary, SIZE).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    std::fs::rename(&temporary, &png_path)?;
    Ok((svg, vec![svg_path, png_path]))
}

/// Fills the background, draws the footer (environment, in small print) and
/// returns the area left for the chart.
pub fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    footer: &str,
) -> anyhow::Result<DrawingArea<DB, Shift>> {
    root.fill(&WHITE).map_err(plot_error)?;
    let (width, height) = root.dim_in_pixel();
    let (chart, bottom) = root.split_vertically(height - 24);
    let _ = width;
    bottom
        .draw(&Text::new(
            footer.to_owned(),
            (10, 4),
            (FONT, 12).into_font().color(&RGBColor(90, 90, 90)),
        ))
        .map_err(plot_error)?;
    Ok(chart)
}

/// Draws the legend of `chart`'s labelled series at `position`, the same way on
/// every chart.
pub fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 13))
        .draw()
        .map_err(plot_error)
}

/// The colour of series `i`.
pub fn color(i: usize) -> RGBColor {
    // Tableau's ten, then four darker ones: every variant of the run matrix gets
    // its own colour.
    const COLORS: [RGBColor; 14] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(0, 0, 0),
        RGBColor(0, 0, 128),
        RGBColor(128, 128, 0),
        RGBColor(128, 0, 128),
    ];
    COLORS[i % COLORS.len()]
}

/// Log-scale key points inside `low..high`: 1, 2 and 5 per decade on short axes,
/// decades only on long ones (so labels never overlap).
pub fn log_key_points(low: f64, high: f64) -> Vec<f64> {
    if !(low.is_finite() && high.is_finite() && low > 0.0 && high > low) {
        return Vec::new();
    }
    let steps: &[f64] = if (high / low).log10() > 4.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut points = Vec::new();
    let mut decade = 10f64.powf(low.log10().floor());
    while decade <= high {
        for &m in steps {
            let v = decade * m;
            if v >= low && v <= high {
                points.push(v);
            }
        }
        decade *= 10.0;
    }
    points
}

/// A log-axis range covering `values` (in ms) with some room, or a default one
/// when there are none.
pub fn log_range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let finite = values.filter(|v| v.is_finite() && *v > 0.0);
    let low = finite.clone().fold(f64::INFINITY, f64::min);
    let high = finite.fold(0.0, f64::max);
    if !low.is_finite() {
        return (0.01, 10.0);
    }
    let low = (low / 1.5).max(0.001);
    (low, high.max(low * 10.0) * 1.5)
}

/// Formats milliseconds for an axis label.
pub fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{}s", trim(ms / 1000.0))
    } else if ms >= 1.0 {
        format!("{}ms", trim(ms))
    } else {
        format!("{}µs", trim(ms * 1000.0))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Every chart of `report`: for a run, under `dir/charts`, plus `dir/report.html`;
/// for a bench run, in `dir`.
pub fn render(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    match report {
        Report::Run(run) => render_run(run, dir),
        Report::Bench(bench) => render_bench(bench, dir),
    }
}

/// Every chart of a `loadgen run`, plus `report.html`, under `dir/charts` and `dir`.
pub fn render_run(report: &RunReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let charts_dir = dir.join("charts");
    let footer = footer_line(&report.environment.one_line(), &report.started_at);
    let mut written = Vec::new();
    let mut svgs = Vec::new();
    let mut add = |(svg, files): (String, Vec<PathBuf>), title: String| {
        written.extend(files);
        svgs.push((title, svg));
    };
    let probe = spectrum::Spectrum::of_run(report, "probe", &footer)?;
    add(write_chart(&probe, &charts_dir)?, probe.title.clone());
    let comparison = comparison::Comparison::of_run(report, &footer);
    add(write_chart(&comparison, &charts_dir)?, comparison.title());
    for figure in [sweep::SweepFigure::ProbeP99, sweep::SweepFigure::Goodput] {
        if let Some(chart) = sweep::SweepChart::of_run(report, figure, &footer) {
            add(write_chart(&chart, &charts_dir)?, chart.title());
        }
    }
    // New clients where a free process or worker is likely: the lowest step of the
    // sweep at or above half of what the cores can finish.
    let steps = || {
        report
            .settings
            .steps()
            .filter_map(|p| Some((p.name.as_str(), p.load?)))
    };
    if let Some((name, load)) = steps().find(|&(_, l)| l >= 0.5).or_else(|| steps().next()) {
        let title = format!("New-connection latency at {load}× by percentile (corrected)");
        let fresh = spectrum::Spectrum::of_phase(report, "fresh", name, title, &footer)?;
        if !fresh.is_empty() {
            add(write_chart(&fresh, &charts_dir)?, fresh.title.clone());
        }
    }
    // The load's own latency: heavy requests, or the jobs' end-to-end time.
    let heavy = spectrum::Spectrum::of_run(report, report.scenario.load_stream(), &footer)?;
    add(write_chart(&heavy, &charts_dir)?, heavy.title.clone());
    // The timelines are drawn again on the page, interactive; here, as files.
    for variant in &report.variants {
        if let Some(timeline) = timeline::Timeline::of_variant(variant, &footer) {
            written.extend(write_chart(&timeline, &charts_dir)?.1);
        }
    }
    let page = html::run_page(report, &svgs);
    let page_path = dir.join("report.html");
    write_atomically(&page_path, page.as_bytes())?;
    written.push(page_path);
    Ok(written)
}

/// The spectrum and one time series per stream of a `bench` run, and
/// `report.html` (the interactive page), under `dir`.
pub fn render_bench(report: &BenchReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let footer = footer_line(&report.environment.one_line(), &report.started_at);
    let mut written = Vec::new();
    let spectrum = spectrum::Spectrum::of_bench(report, &footer)?;
    written.extend(write_chart(&spectrum, dir)?.1);
    for stream in &report.streams {
        let timeline =
            timeline::Timeline::of_stream(stream, report.server_telemetry.as_ref(), &footer);
        written.extend(write_chart(&timeline, dir)?.1);
    }
    let page_path = dir.join("report.html");
    write_atomically(&page_path, html::bench_page(report).as_bytes())?;
    written.push(page_path);
    Ok(written)
}

fn footer_line(environment: &str, started_at: &str) -> String {
    format!(
        "loadgen {} · {started_at} · {environment}",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_points_and_labels() {
        assert_eq!(
            log_key_points(0.3, 30.0),
            vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        );
        assert_eq!(
            log_key_points(0.05, 20_000.0),
            vec![0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0]
        );
        assert_eq!(ms_label(0.25), "250µs");
        assert_eq!(ms_label(12.5), "12.5ms");
        assert_eq!(ms_label(2000.0), "2s");
    }
}
