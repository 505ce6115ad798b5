//! `loadgen compare BASE CURRENT`: two runs, or two sets of repeated runs, variant
//! by variant. Each figure is the median across a side's runs; the ratio is
//! current ÷ base. A change is a regression only when it is worse than the noise
//! factor *and*, with repeated runs, the two sides' ranges do not overlap: on a
//! shared machine a single bad run must not turn CI red.

use std::fmt::Write;

use crate::report::format::format_us;
use crate::report::table::loaded_probe_p99;
use crate::report::{Figures, RunReport, Scenario, StreamReport, VariantReport};

/// How many samples a variant's percentile was read from.
type SampleCount = fn(&VariantReport) -> Option<u64>;

/// One compared figure.
struct FigureSpec {
    name: &'static str,
    /// Latency-like (lower is better) or throughput-like (higher is better).
    lower_is_better: bool,
    latency: bool,
    /// The figure of a variant, if it was measured.
    get: fn(&VariantReport) -> Option<f64>,
    /// For a percentile: its quantile and how many samples it was read from.
    percentile: Option<(f64, SampleCount)>,
}

/// A figure of a responsiveness run's derived [`Figures`].
fn figure(v: &VariantReport, get: fn(&Figures) -> f64) -> Option<f64> {
    v.figures.as_ref().map(get)
}

/// The loaded phase's stream `name`.
fn loaded<'a>(v: &'a VariantReport, name: &str) -> Option<&'a StreamReport> {
    v.phase("loaded")?.stream(name)
}

const RESPONSIVENESS_FIGURES: [FigureSpec; 6] = [
    FigureSpec {
        name: "probe loaded p99",
        lower_is_better: true,
        latency: true,
        get: |v| figure(v, |f| f.probe_loaded.p99_us),
        percentile: Some((0.99, |v| v.figures.as_ref().map(|f| f.probe_loaded.count))),
    },
    FigureSpec {
        name: "probe loaded p99.9",
        lower_is_better: true,
        latency: true,
        get: |v| figure(v, |f| f.probe_loaded.p99_9_us),
        percentile: Some((0.999, |v| v.figures.as_ref().map(|f| f.probe_loaded.count))),
    },
    FigureSpec {
        name: "probe idle p99",
        lower_is_better: true,
        latency: true,
        get: |v| figure(v, |f| f.probe_idle.p99_us),
        percentile: Some((0.99, |v| v.figures.as_ref().map(|f| f.probe_idle.count))),
    },
    FigureSpec {
        name: "heavy done/s",
        lower_is_better: false,
        latency: false,
        get: |v| figure(v, |f| f.heavy_completions_per_s),
        percentile: None,
    },
    FigureSpec {
        name: "heavy efficiency",
        lower_is_better: false,
        latency: false,
        get: |v| figure(v, |f| f.heavy_efficiency),
        percentile: None,
    },
    FigureSpec {
        name: "heavy p99",
        lower_is_better: true,
        latency: true,
        get: |v| figure(v, |f| f.heavy_latency.p99_us),
        percentile: Some((0.99, |v| v.figures.as_ref().map(|f| f.heavy_latency.count))),
    },
];

/// The jobs scenario's figures: the probe while background jobs run, and the jobs'
/// own end-to-end time and throughput.
const JOBS_FIGURES: [FigureSpec; 6] = [
    FigureSpec {
        name: "probe loaded p99",
        lower_is_better: true,
        latency: true,
        get: loaded_probe_p99,
        percentile: Some((0.99, |v| Some(loaded(v, "probe")?.latency.corrected.count))),
    },
    FigureSpec {
        name: "probe loaded p99.9",
        lower_is_better: true,
        latency: true,
        get: |v| Some(loaded(v, "probe")?.latency.corrected.p99_9_us),
        percentile: Some((0.999, |v| Some(loaded(v, "probe")?.latency.corrected.count))),
    },
    FigureSpec {
        name: "probe idle p99",
        lower_is_better: true,
        latency: true,
        get: |v| Some(v.phase("idle")?.stream("probe")?.latency.corrected.p99_us),
        percentile: Some((0.99, |v| {
            Some(v.phase("idle")?.stream("probe")?.latency.corrected.count)
        })),
    },
    FigureSpec {
        name: "jobs done/s",
        lower_is_better: false,
        latency: false,
        get: |v| {
            let phase = v.phase("loaded")?;
            let jobs = phase.stream("jobs")?;
            Some(phase.jobs.as_ref()?.done as f64 / jobs.measured_s.max(f64::MIN_POSITIVE))
        },
        percentile: None,
    },
    FigureSpec {
        name: "jobs end-to-end p50",
        lower_is_better: true,
        latency: true,
        get: |v| Some(loaded(v, "jobs")?.latency.corrected.p50_us),
        percentile: Some((0.5, |v| Some(loaded(v, "jobs")?.latency.corrected.count))),
    },
    FigureSpec {
        name: "jobs end-to-end p99",
        lower_is_better: true,
        latency: true,
        get: |v| Some(loaded(v, "jobs")?.latency.corrected.p99_us),
        percentile: Some((0.99, |v| Some(loaded(v, "jobs")?.latency.corrected.count))),
    },
];

/// The figures compared for runs of `scenario`.
fn figures_of(scenario: Scenario) -> &'static [FigureSpec] {
    match scenario {
        Scenario::Responsiveness => &RESPONSIVENESS_FIGURES,
        Scenario::Jobs => &JOBS_FIGURES,
    }
}

/// The verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Better,
    Worse,
    /// Worse by more than the noise factor, but the runs' ranges overlap.
    WorseWithinNoise,
    /// A percentile read from fewer than 1/(1-q) samples (p99.9 of a few hundred
    /// requests is just their maximum): shown, not judged.
    TooFewSamples,
}

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Row {
    pub variant: String,
    pub figure: &'static str,
    pub base: Vec<f64>,
    pub current: Vec<f64>,
    pub ratio: f64,
    pub verdict: Verdict,
    latency: bool,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Noise factors: how much worse a figure may get before it counts.
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    /// For latencies (ratio current ÷ base).
    pub latency: f64,
    /// For throughput and efficiency (ratio base ÷ current).
    pub throughput: f64,
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
            let bv: Vec<f64> = b.iter().copied().filter_map(spec.get).collect();
            let cv: Vec<f64> = c.iter().copied().filter_map(spec.get).collect();
            if bv.is_empty() || cv.is_empty() {
                continue;
            }
            let ratio = median(&cv) / median(&bv);
            let worse_by = if spec.lower_is_better {
                ratio
            } else {
                1.0 / ratio
            };
            let allowed = if spec.latency {
                noise.latency
            } else {
                noise.throughput
            };
            let ((b_lo, b_hi), (c_lo, c_hi)) = (range(&bv), range(&cv));
            let separated = if spec.lower_is_better {
                c_lo > b_hi
            } else {
                c_hi < b_lo
            };
            let repeated = bv.len() > 1 && cv.len() > 1;
            let too_few = spec.percentile.is_some_and(|(q, samples)| {
                let needed = (1.0 / (1.0 - q)).round() as u64;
                b.iter()
                    .chain(&c)
                    .copied()
                    .filter_map(samples)
                    .any(|n| n < needed)
            });
            let verdict = if too_few {
                Verdict::TooFewSamples
            } else if !worse_by.is_finite() || worse_by.is_nan() {
                Verdict::Same
            } else if worse_by > allowed {
                if repeated && !separated {
                    Verdict::WorseWithinNoise
                } else {
                    Verdict::Worse
                }
            } else if worse_by < 1.0 / allowed {
                Verdict::Better
            } else {
                Verdict::Same
            };
            rows.push(Row {
                variant: variant.name.clone(),
                figure: spec.name,
                base: bv,
                current: cv,
                ratio,
                verdict,
                latency: spec.latency,
            });
        }
    }
    rows
}

fn show(latency: bool, v: f64) -> String {
    if latency {
        format_us(v)
    } else {
        format!("{v:.2}")
    }
}

fn side(latency: bool, values: &[f64]) -> String {
    let m = show(latency, median(values));
    if values.len() < 2 {
        return m;
    }
    let (lo, hi) = range(values);
    format!("{m} [{}–{}]", show(latency, lo), show(latency, hi))
}

/// The comparison as a text table.
pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<18} {:<20} {:>26} {:>26} {:>8}  verdict\n",
        "variant", "figure", "base", "current", "ratio"
    );
    for r in rows {
        let verdict = match r.verdict {
            Verdict::Same => "same",
            Verdict::Better => "better",
            Verdict::Worse => "REGRESSION",
            Verdict::WorseWithinNoise => "worse, ranges overlap",
            Verdict::TooFewSamples => "too few samples to judge",
        };
        let _ = writeln!(
            out,
            "{:<18} {:<20} {:>26} {:>26} {:>7.2}×  {verdict}",
            r.variant,
            r.figure,
            side(r.latency, &r.base),
            side(r.latency, &r.current),
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
