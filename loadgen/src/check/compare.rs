//! `loadgen compare BASE CURRENT`: two runs, or two sets of repeated runs (such as
//! the rounds of `run --repeat N`), variant by variant; or two `bench` reports, or
//! two sets of them, stream by stream.
//!
//! Each side of a figure is an interval: for a percentile, its 95 % confidence
//! interval (order statistics of the run's samples), or with several runs the
//! median of their lower ends to the median of their upper ends, so one odd run
//! of a shared machine moves neither end; for a throughput, the value (the median
//! of several). A change is a regression only when the two sides' intervals are
//! apart by more than the noise factor (the current side's best is worse than the
//! base's worst times the noise): sampling noise is inside the intervals, run-to-run
//! drift of a shared machine is what the noise factor covers (measured by A/A runs:
//! `scripts/compare-power.sh`). A responsive capacity moves in whole steps of the
//! sweep; it counts as changed when the medians are more than one step apart.

use std::fmt::Write;

use crate::report::format::format_us;
use crate::report::repeat::median;
use crate::report::{BenchReport, Figures, RunReport, Scenario, StreamReport, VariantReport};
use crate::stats::{Interval, Percentiles};

/// One figure of one run.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// A latency percentile with its 95 % interval (`None`: too few samples to
    /// bound it).
    Percentile(f64, Option<Interval>),
    /// A rate or a share.
    Rate(f64),
    /// A responsive capacity, which moves in steps of the sweep: `steps` is how
    /// many of the sweep's steps passed before the first that did not.
    Capacity { value: f64, steps: usize },
}

impl Measure {
    fn value(self) -> f64 {
        match self {
            Measure::Percentile(v, _) | Measure::Rate(v) | Measure::Capacity { value: v, .. } => v,
        }
    }

    /// The run's own interval: its confidence interval, or the value itself.
    fn interval(self) -> (f64, f64) {
        match self {
            Measure::Percentile(_, Some(ci)) => (ci.low_us, ci.high_us),
            Measure::Percentile(v, None)
            | Measure::Rate(v)
            | Measure::Capacity { value: v, .. } => (v, v),
        }
    }
}

/// A variant's responsive capacity, with its position in the sweep.
fn capacity(v: &VariantReport) -> Option<Measure> {
    let sweep = v.sweep.as_ref()?;
    Some(Measure::Capacity {
        value: sweep.capacity,
        steps: sweep.steps.iter().take_while(|s| s.passes()).count(),
    })
}

/// One compared figure.
struct FigureSpec {
    name: &'static str,
    /// Latency-like (lower is better) or throughput-like (higher is better).
    lower_is_better: bool,
    /// The figure of a variant, if it was measured.
    get: fn(&VariantReport) -> Option<Measure>,
}

fn p50(p: &Percentiles) -> Measure {
    Measure::Percentile(p.p50_us, p.p50_ci)
}

fn p99(p: &Percentiles) -> Measure {
    Measure::Percentile(p.p99_us, p.p99_ci)
}

fn p99_9(p: &Percentiles) -> Measure {
    Measure::Percentile(p.p99_9_us, p.p99_9_ci)
}

/// A figure of a responsiveness run's derived [`Figures`].
fn figure(v: &VariantReport, get: fn(&Figures) -> Measure) -> Option<Measure> {
    v.figures.as_ref().map(get)
}

/// The corrected latency of stream `name` in `phase`.
fn latency<'a>(v: &'a VariantReport, phase: &str, name: &str) -> Option<&'a Percentiles> {
    v.phase(phase)?
        .stream(name)
        .map(|s: &StreamReport| &s.latency.corrected)
}

const RESPONSIVENESS_FIGURES: [FigureSpec; 7] = [
    FigureSpec {
        name: "capacity",
        lower_is_better: false,
        get: capacity,
    },
    FigureSpec {
        name: "probe loaded p99",
        lower_is_better: true,
        get: |v| figure(v, |f| p99(&f.probe_loaded)),
    },
    FigureSpec {
        name: "probe loaded p99.9",
        lower_is_better: true,
        get: |v| figure(v, |f| p99_9(&f.probe_loaded)),
    },
    FigureSpec {
        name: "probe idle p99",
        lower_is_better: true,
        get: |v| figure(v, |f| p99(&f.probe_idle)),
    },
    FigureSpec {
        name: "heavy done/s",
        lower_is_better: false,
        get: |v| figure(v, |f| Measure::Rate(f.heavy_completions_per_s)),
    },
    FigureSpec {
        name: "heavy efficiency",
        lower_is_better: false,
        get: |v| figure(v, |f| Measure::Rate(f.heavy_efficiency)),
    },
    FigureSpec {
        name: "heavy p99",
        lower_is_better: true,
        get: |v| figure(v, |f| p99(&f.heavy_latency)),
    },
];

/// The jobs scenario's figures: the probe while background jobs run, and the jobs'
/// own end-to-end time and throughput.
const JOBS_FIGURES: [FigureSpec; 6] = [
    FigureSpec {
        name: "probe loaded p99",
        lower_is_better: true,
        get: |v| latency(v, "loaded", "probe").map(p99),
    },
    FigureSpec {
        name: "probe loaded p99.9",
        lower_is_better: true,
        get: |v| latency(v, "loaded", "probe").map(p99_9),
    },
    FigureSpec {
        name: "probe idle p99",
        lower_is_better: true,
        get: |v| latency(v, "idle", "probe").map(p99),
    },
    FigureSpec {
        name: "jobs done/s",
        lower_is_better: false,
        get: |v| {
            let phase = v.phase("loaded")?;
            let jobs = phase.stream("jobs")?;
            let done = phase.jobs.as_ref()?.done as f64;
            Some(Measure::Rate(done / jobs.measured_s.max(f64::MIN_POSITIVE)))
        },
    },
    FigureSpec {
        name: "jobs end-to-end p50",
        lower_is_better: true,
        get: |v| latency(v, "loaded", "jobs").map(p50),
    },
    FigureSpec {
        name: "jobs end-to-end p99",
        lower_is_better: true,
        get: |v| latency(v, "loaded", "jobs").map(p99),
    },
];

/// The figures compared for runs of `scenario`.
fn figures_of(scenario: Scenario) -> &'static [FigureSpec] {
    match scenario {
        Scenario::Responsiveness | Scenario::Upstream => &RESPONSIVENESS_FIGURES,
        Scenario::Jobs => &JOBS_FIGURES,
    }
}

/// The verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Better,
    Worse,
    /// The medians differ by more than the noise factor, but the intervals are not
    /// that far apart.
    WorseWithinNoise,
    /// A percentile some run's samples cannot bound (p99.9 of a few hundred
    /// requests is about their maximum): shown, not judged.
    TooFewSamples,
}

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Row {
    /// The variant (run reports) or stream (bench reports).
    pub variant: String,
    pub figure: &'static str,
    /// Each run's value.
    pub base: Vec<f64>,
    pub current: Vec<f64>,
    /// Each side's interval (see [`side_interval`]).
    pub base_interval: (f64, f64),
    pub current_interval: (f64, f64),
    /// Median current ÷ median base.
    pub ratio: f64,
    pub verdict: Verdict,
    latency: bool,
}

/// Noise factors: how far apart two sides' intervals must be before a change
/// counts.
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    /// For latencies: the current interval's low end above the base's high end
    /// times this.
    pub latency: f64,
    /// For throughput and efficiency: the current interval's high end below the
    /// base's low end divided by this.
    pub throughput: f64,
}

/// A side's interval: the median of its runs' lower ends to the median of their
/// upper ends (one run: its own interval).
fn side_interval(measures: &[Measure]) -> (f64, f64) {
    let (lows, highs): (Vec<f64>, Vec<f64>) = measures.iter().map(|m| m.interval()).unzip();
    (median(&lows), median(&highs))
}

/// Judges one figure: `base` and `current` are its measures in each side's runs.
fn judge(lower_is_better: bool, base: &[Measure], current: &[Measure], noise: Noise) -> Verdict {
    let unbounded = |m: &Measure| matches!(m, Measure::Percentile(_, None));
    if base.iter().chain(current).any(unbounded) {
        return Verdict::TooFewSamples;
    }
    let values = |ms: &[Measure]| ms.iter().map(|m| m.value()).collect::<Vec<_>>();
    if let Some(Measure::Capacity { .. }) = base.first() {
        // Capacities differ by whole steps of the sweep: a change counts when the
        // medians are more than one step apart.
        let steps = |ms: &[Measure]| {
            let positions: Vec<f64> = ms
                .iter()
                .map(|m| match m {
                    Measure::Capacity { steps, .. } => *steps as f64,
                    _ => 0.0,
                })
                .collect();
            median(&positions)
        };
        let (b, c) = (steps(base), steps(current));
        return if c < b - 1.0 {
            Verdict::Worse
        } else if c > b + 1.0 {
            Verdict::Better
        } else {
            Verdict::Same
        };
    }
    let ratio = median(&values(current)) / median(&values(base));
    let ((b_lo, b_hi), (c_lo, c_hi)) = (side_interval(base), side_interval(current));
    let (worse_apart, better_apart, worse_by_median) = if lower_is_better {
        let n = noise.latency;
        (c_lo > b_hi * n, c_hi * n < b_lo, ratio > n)
    } else {
        let n = noise.throughput;
        (c_hi * n < b_lo, c_lo > b_hi * n, ratio * n < 1.0)
    };
    if worse_apart {
        Verdict::Worse
    } else if better_apart {
        Verdict::Better
    } else if worse_by_median {
        Verdict::WorseWithinNoise
    } else {
        Verdict::Same
    }
}

/// Compares every figure of every variant present on both sides. The runs of both
/// sides must be of one scenario (the caller checks); its figures are compared.
pub fn compare<'a>(base: &'a [RunReport], current: &'a [RunReport], noise: Noise) -> Vec<Row> {
    let mut rows = Vec::new();
    let Some(first) = base.first() else {
        return rows;
    };
    for variant in &first.variants {
        let reports = |runs: &'a [RunReport]| -> Vec<&'a VariantReport> {
            runs.iter()
                .filter_map(|r| r.variants.iter().find(|v| v.name == variant.name))
                .collect()
        };
        let (b, c) = (reports(base), reports(current));
        for spec in figures_of(first.scenario) {
            let bm: Vec<Measure> = b.iter().copied().filter_map(spec.get).collect();
            let cm: Vec<Measure> = c.iter().copied().filter_map(spec.get).collect();
            rows.extend(row(
                &variant.name,
                spec.name,
                spec.lower_is_better,
                &bm,
                &cm,
                noise,
            ));
        }
    }
    rows
}

/// One figure of a bench report's stream.
struct StreamFigure {
    name: &'static str,
    lower_is_better: bool,
    get: fn(&StreamReport) -> Measure,
}

/// A stream's figures in a bench report: its corrected percentiles and its rate of
/// answers.
const BENCH_FIGURES: [StreamFigure; 4] = [
    StreamFigure {
        name: "p50",
        lower_is_better: true,
        get: |s| p50(&s.latency.corrected),
    },
    StreamFigure {
        name: "p99",
        lower_is_better: true,
        get: |s| p99(&s.latency.corrected),
    },
    StreamFigure {
        name: "p99.9",
        lower_is_better: true,
        get: |s| p99_9(&s.latency.corrected),
    },
    StreamFigure {
        name: "answers/s",
        lower_is_better: false,
        get: |s| Measure::Rate(s.throughput),
    },
];

/// Compares every figure of every stream present on both sides' bench reports.
pub fn compare_benches(base: &[BenchReport], current: &[BenchReport], noise: Noise) -> Vec<Row> {
    let mut rows = Vec::new();
    let Some(first) = base.first() else {
        return rows;
    };
    for stream in &first.streams {
        let streams = |reports: &[BenchReport]| -> Vec<StreamReport> {
            reports
                .iter()
                .filter_map(|r| r.streams.iter().find(|s| s.name == stream.name).cloned())
                .collect()
        };
        let (b, c) = (streams(base), streams(current));
        for figure in &BENCH_FIGURES {
            let bm: Vec<Measure> = b.iter().map(figure.get).collect();
            let cm: Vec<Measure> = c.iter().map(figure.get).collect();
            rows.extend(row(
                &stream.name,
                figure.name,
                figure.lower_is_better,
                &bm,
                &cm,
                noise,
            ));
        }
    }
    rows
}

/// The row of one figure measured on both sides, if it was.
fn row(
    unit: &str,
    figure: &'static str,
    lower_is_better: bool,
    bm: &[Measure],
    cm: &[Measure],
    noise: Noise,
) -> Option<Row> {
    if bm.is_empty() || cm.is_empty() {
        return None;
    }
    let values = |ms: &[Measure]| ms.iter().map(|m| m.value()).collect::<Vec<_>>();
    let (bv, cv) = (values(bm), values(cm));
    Some(Row {
        variant: unit.to_owned(),
        figure,
        ratio: median(&cv) / median(&bv),
        base_interval: side_interval(bm),
        current_interval: side_interval(cm),
        verdict: judge(lower_is_better, bm, cm, noise),
        base: bv,
        current: cv,
        latency: lower_is_better && matches!(bm[0], Measure::Percentile(..)),
    })
}

fn show(latency: bool, v: f64) -> String {
    if latency {
        format_us(v)
    } else {
        format!("{v:.2}")
    }
}

/// A side: its median, and its interval.
fn side(latency: bool, values: &[f64], (lo, hi): (f64, f64)) -> String {
    let m = show(latency, median(values));
    if lo == hi {
        return m;
    }
    format!("{m} [{}–{}]", show(latency, lo), show(latency, hi))
}

/// The comparison as a text table; `unit` heads the first column (variant, or
/// stream for bench reports).
pub fn render(rows: &[Row], unit: &str) -> String {
    let mut out = format!(
        "{:<18} {:<20} {:>30} {:>30} {:>8}  verdict\n",
        unit, "figure", "base", "current", "ratio"
    );
    for r in rows {
        let verdict = match r.verdict {
            Verdict::Same => "same",
            Verdict::Better => "better",
            Verdict::Worse => "REGRESSION",
            Verdict::WorseWithinNoise => "worse, within noise",
            Verdict::TooFewSamples => "too few samples to judge",
        };
        let _ = writeln!(
            out,
            "{:<18} {:<20} {:>30} {:>30} {:>7.2}×  {verdict}",
            r.variant,
            r.figure,
            side(r.latency, &r.base, r.base_interval),
            side(r.latency, &r.current, r.current_interval),
            r.ratio
        );
    }
    let regressions = rows.iter().filter(|r| r.verdict == Verdict::Worse).count();
    let _ = writeln!(
        out,
        "{} figures compared, {regressions} regressions",
        rows.len()
    );
    out
}
