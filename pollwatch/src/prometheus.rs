//! The poll figures in the Prometheus text exposition format (version 0.0.4):
//!
//! - `server_poll_duration_seconds{route|task}`: a histogram of every poll;
//! - `server_poll_duration_max_seconds{route|task}`: the longest poll so far;
//! - `server_long_polls_total{route|task}`: polls at or over the threshold;
//! - `server_long_poll_threshold_seconds`: that threshold.
//!
//! The small writer used here is public, so a server writing its other metrics
//! in the same text can use it too.

use std::fmt::Write;

use crate::registry::Snapshot;

/// Upper bounds of the poll histogram's buckets, in seconds (`+Inf` is added):
/// 10 µs and 100 µs bracket tokio's guidance, 1 ms is the default threshold.
pub const BUCKETS_S: [f64; 12] = [
    0.00001, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// One metric family being written: its header is out, samples follow.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// Writes one sample; `suffix` is appended to the family name (`_bucket`, …).
    pub fn sample(&mut self, suffix: &str, labels: &[(&str, String)], value: f64) {
        let _ = write!(self.out, "{}{suffix}", self.name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values may not hold raw backslashes, quotes or newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the `# HELP` and `# TYPE` lines of a family to `out`.
pub fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

/// The poll families of one or more watches (one per process of a server), each
/// with the labels that tell its samples apart.
pub fn render(watches: &[(Vec<(&str, String)>, &Snapshot)]) -> String {
    let mut out = String::new();
    write_families(&mut out, watches);
    out
}

/// `base` and the route or task label.
fn labelled<'a>(base: &[(&'a str, String)], kind: &'a str, name: &str) -> Vec<(&'a str, String)> {
    let mut labels = base.to_vec();
    labels.push((kind, name.to_owned()));
    labels
}

/// [`render`] appended to `out`.
pub fn write_families(out: &mut String, watches: &[(Vec<(&str, String)>, &Snapshot)]) {
    let mut f = family(
        out,
        "server_poll_duration_seconds",
        "histogram",
        "How long each poll of a route's request future or a named task's future ran: nothing else on its worker thread ran meanwhile.",
    );
    for (base, snapshot) in watches {
        for s in &snapshot.sources {
            let labels = labelled(base, s.kind.label(), &s.name);
            for le in BUCKETS_S {
                let mut bucket = labels.clone();
                bucket.push(("le", le.to_string()));
                let count = s.histogram.count_between(0, (le * 1e9) as u64);
                f.sample("_bucket", &bucket, count as f64);
            }
            let mut bucket = labels.clone();
            bucket.push(("le", "+Inf".into()));
            f.sample("_bucket", &bucket, s.histogram.len() as f64);
            f.sample("_sum", &labels, s.sum.as_secs_f64());
            f.sample("_count", &labels, s.histogram.len() as f64);
        }
    }
    let mut f = family(
        out,
        "server_poll_duration_max_seconds",
        "gauge",
        "The longest poll of the route or task since the process started.",
    );
    for (base, snapshot) in watches {
        for s in &snapshot.sources {
            let labels = labelled(base, s.kind.label(), &s.name);
            f.sample("", &labels, s.max.as_secs_f64());
        }
    }
    let mut f = family(
        out,
        "server_long_polls_total",
        "counter",
        "Polls of the route or task that ran at least the long-poll threshold.",
    );
    for (base, snapshot) in watches {
        for s in &snapshot.sources {
            let labels = labelled(base, s.kind.label(), &s.name);
            f.sample("", &labels, s.over_threshold as f64);
        }
    }
    let mut f = family(
        out,
        "server_long_poll_threshold_seconds",
        "gauge",
        "How long a poll must run to count as long.",
    );
    for (base, snapshot) in watches {
        f.sample("", base, snapshot.threshold.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{PollWatch, SourceKind};

    #[test]
    fn families_carry_the_route_and_task_labels_and_cumulative_buckets() {
        let watch = PollWatch::new();
        let t0 = Instant::now();
        let route = watch.source(SourceKind::Route, "/work/cpu");
        route.record(t0, t0 + Duration::from_micros(50));
        route.record(t0, t0 + Duration::from_millis(30));
        watch
            .source(SourceKind::Task, "say \"hi\"")
            .record(t0, t0 + Duration::from_micros(5));
        let text = watch.prometheus(&[("variant", "v".into())]);
        assert!(text.contains(
            "server_poll_duration_seconds_bucket{variant=\"v\",route=\"/work/cpu\",le=\"0.0001\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "server_poll_duration_seconds_bucket{variant=\"v\",route=\"/work/cpu\",le=\"0.05\"} 2\n"
        ), "{text}");
        assert!(
            text.contains(
                "server_poll_duration_max_seconds{variant=\"v\",route=\"/work/cpu\"} 0.03"
            ),
            "{text}"
        );
        assert!(
            text.contains("server_long_polls_total{variant=\"v\",route=\"/work/cpu\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("task=\"say \\\"hi\\\"\""), "{text}");
        assert!(
            text.contains("server_long_poll_threshold_seconds{variant=\"v\"} 0.001\n"),
            "{text}"
        );
    }
}
