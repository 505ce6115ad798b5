//! The classic HdrHistogram percentile distribution (`.hgrm`), the text that
//! HdrHistogram's plotting page and hdr-plot read. Values in milliseconds, five
//! ticks per half-distance, exactly the layout of the Java `outputPercentileDistribution`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::stream::StreamReport;
use super::{per_stream_path, Exporter, Report};
use crate::stats::decode;

/// Nanoseconds per output unit (milliseconds).
const NS_PER_MS: f64 = 1_000_000.0;
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Writes each stream's corrected distribution. For a bench report `path` is the
/// file (`stem.STREAM.hgrm` when there are several streams); for a run report it is
/// the run folder, with one `VARIANT.PHASE.STREAM.hgrm` per stream of every phase.
pub struct Hgrm;

impl Exporter for Hgrm {
    fn files(&self, report: &Report, path: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        let table = |s: &StreamReport| -> anyhow::Result<Vec<u8>> {
            Ok(percentile_table(&decode(&s.histograms.corrected)?).into_bytes())
        };
        let mut files = Vec::new();
        match report {
            Report::Bench(bench) => {
                for s in &bench.streams {
                    let file = per_stream_path(path, &s.name, bench.streams.len());
                    files.push((file, table(s)?));
                }
            }
            Report::Run(run) => {
                for v in &run.variants {
                    for p in &v.phases {
                        for s in &p.streams {
                            let name = format!("{}.{}.{}.hgrm", v.name, p.name, s.name);
                            files.push((path.join(name), table(s)?));
                        }
                    }
                }
            }
        }
        Ok(files)
    }
}

/// Sub-buckets per bucket for a histogram of `sigfig` significant digits, as
/// HdrHistogram sizes them.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let single_unit_resolution = 2 * 10u64.pow(u32::from(sigfig));
    single_unit_resolution.next_power_of_two()
}

/// The percentile table of `h` (recorded in nanoseconds), in milliseconds.
pub fn percentile_table(h: &Histogram<u64>) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            let value = v.value_iterated_to() as f64 / NS_PER_MS;
            let quantile = v.quantile_iterated_to();
            if quantile < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.digits$} {quantile:>2.12} {:>10} {:>14.2}",
                    count_to(h, v.value_iterated_to()),
                    1.0 / (1.0 - quantile)
                );
            } else {
                let _ = writeln!(
                    out,
                    "{value:>12.digits$} {quantile:>2.12} {:>10}",
                    count_to(h, v.value_iterated_to())
                );
            }
        }
    }
    let ms = |ns: f64| ns / NS_PER_MS;
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (ms(h.mean()), ms(h.stdev()))
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        ms(h.max() as f64),
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    );
    out
}

/// Values recorded at or below `value`.
fn count_to(h: &Histogram<u64>, value: u64) -> u64 {
    h.count_between(0, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn table_has_the_classic_layout() {
        let mut h = new_histogram();
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000).unwrap();
        }
        let table = percentile_table(&h);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first, ["1.000", "0.000000000000", "1", "1.00"]);
        // The last data line is the 100th percentile, with three columns.
        let last_data = lines[lines.len() - 4];
        let cols: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(cols.len(), 3, "{last_data}");
        assert_eq!(cols[1], "1.000000000000");
        assert_eq!(cols[2], "100");
        assert!(lines[lines.len() - 3].starts_with("#[Mean    = "));
        assert!(lines[lines.len() - 2].contains("Total count    =          100]"));
        assert!(lines[lines.len() - 1].contains("SubBuckets     =         2048]"));
        // Percentiles never go down and counts never shrink.
        let rows: Vec<(f64, u64)> = lines[2..lines.len() - 3]
            .iter()
            .map(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                (c[1].parse().unwrap(), c[2].parse().unwrap())
            })
            .collect();
        assert!(rows
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn sub_buckets_match_hdrhistogram() {
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
        assert_eq!(sub_bucket_count(1), 32);
    }
}
