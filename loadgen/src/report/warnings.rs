//! Warnings a reader must see before trusting a report's figures, each naming the
//! cause found in the data and appearing only when that cause compromises a
//! figure shown: a run cut short, a client short of CPU, a pacer that released
//! requests late (the client machine, not the server), servers that could not be
//! read, jobs lost. Requests that waited for a busy connection are not a warning in
//! a run: that wait is the server's, and the corrected latency counts it.

use super::bench::BenchReport;
use super::format::format_us;
use super::run::RunReport;
use super::settings::SETTLE_CAP;
use super::stream::StreamReport;
use crate::recorder::LATE_THRESHOLD;

/// Share of late requests above which a bench summary warns.
const LATE_WARNING_SHARE: f64 = 0.01;

/// Client CPU use (share of its cores) above which the client's numbers are suspect.
const CLIENT_SATURATED: f64 = 0.9;

/// Share of a stream's p99 above which the pacer's own lateness compromises it.
const PACER_SHARE_OF_P99: f64 = 0.1;

/// The pacer's lateness p99 when it compromises `s`'s p99: above the late
/// threshold and a material part of the figure.
fn pacer_compromises(s: &StreamReport) -> Option<f64> {
    let late = s.pacer_lateness.as_ref()?.p99_us;
    let threshold = LATE_THRESHOLD.as_micros() as f64;
    (late > threshold && late > PACER_SHARE_OF_P99 * s.latency.corrected.p99_us).then_some(late)
}

/// Warnings a reader of a bench run must see before trusting its numbers.
pub fn bench_warnings(report: &BenchReport) -> Vec<String> {
    let mut warnings = Vec::new();
    if report.interrupted {
        warnings.push("the run was interrupted: figures cover only the part that ran".into());
    }
    if report.environment.build.opt_level == "0" {
        warnings.push(
            "loadgen was built without optimisation; its own overhead may show in the numbers"
                .into(),
        );
    }
    for s in &report.streams {
        let sent = s.counts.sent.max(1) as f64;
        let late_share = s.counts.late as f64 / sent;
        if let Some(pacer) = pacer_compromises(s) {
            warnings.push(format!(
                "{}: the client itself released requests late (pacer lateness p99 {}): this machine was short of CPU or slow to wake the pacer, and the latency figures include that delay",
                s.name,
                format_us(pacer)
            ));
        } else if s.target_rate.is_some() && late_share > LATE_WARNING_SHARE {
            warnings.push(format!(
                "{}: {:.1}% of requests were sent over {}ms late because all {} connections were busy; the achieved rate fell short of the target (corrected latency includes the wait; add connections to offer the full rate)",
                s.name,
                100.0 * late_share,
                LATE_THRESHOLD.as_millis(),
                s.connections
            ));
        }
        if s.unsent > 0 {
            warnings.push(format!(
                "{}: {} requests fell due but were never sent before the end (all connections busy); their corrected latency counts to the end as a lower bound",
                s.name, s.unsent
            ));
        }
        if s.counts.abandoned > 0 {
            warnings.push(format!(
                "{}: {} requests were still unanswered when the run stopped waiting; they are in the latency figures at the time they were given up (lower bounds)",
                s.name, s.counts.abandoned
            ));
        }
        if s.counts.responses == 0 {
            warnings.push(format!("{}: no responses at all", s.name));
        }
    }
    warnings
}

/// Warnings a reader of a run must see before trusting its table.
pub fn run_warnings(report: &RunReport) -> Vec<String> {
    let mut warnings = Vec::new();
    if report.interrupted {
        warnings.push("the run was interrupted; variants not run are missing".into());
    }
    let cores = report.environment.cores.max(1) as f64;
    let jitter = report
        .resolution
        .and_then(|r| r.timer_jitter)
        .map_or_else(String::new, |j| {
            format!(
                " (this machine's timer jitter: p99 {})",
                format_us(j.p99_us)
            )
        });
    for v in &report.variants {
        if let Some(error) = &v.error {
            warnings.push(format!("{}: {error}", v.name));
        }
        // The pacer's lateness, gathered into one warning per variant.
        let late: Vec<(&str, f64)> = v
            .phases
            .iter()
            .filter_map(|p| Some((p.name.as_str(), pacer_compromises(p.stream("probe")?)?)))
            .collect();
        if !late.is_empty() {
            let phases: Vec<&str> = late.iter().map(|(name, _)| *name).collect();
            let worst = late.iter().map(|(_, l)| *l).fold(0.0, f64::max);
            warnings.push(format!(
                "{} {}: the client itself released probes late (pacer lateness p99 up to {}){jitter}; the probe figures there include that delay",
                v.name,
                phases.join(", "),
                format_us(worst)
            ));
        }
        for p in &v.phases {
            let telemetry = p.server_telemetry.as_ref();
            let busiest = telemetry.map_or(0.0, |t| t.client_cpu_max);
            if p.client_cpu_share > CLIENT_SATURATED {
                warnings.push(format!(
                    "{} {}: the client used {:.0}% of its CPUs; its numbers measure the client too",
                    v.name,
                    p.name,
                    p.client_cpu_share * 100.0
                ));
            } else if busiest / cores > CLIENT_SATURATED {
                warnings.push(format!(
                    "{} {}: in its busiest interval the client used {:.0}% of its CPUs; figures from that time measure the client too",
                    v.name,
                    p.name,
                    busiest / cores * 100.0
                ));
            }
            if let Some(t) = telemetry
                .filter(|t| t.scrapes > 0 && t.scrapes == t.scrape_failures.values().sum::<u64>())
            {
                warnings.push(format!(
                    "{} {}: no scrape of the server's /metrics.json succeeded ({:?}); no server figures",
                    v.name, p.name, t.scrape_failures
                ));
            }
            if p.settled_s.is_some_and(|s| s >= SETTLE_CAP.as_secs_f64()) {
                warnings.push(format!(
                    "{} {}: the server was still busy with the previous step's work when this step began (the run waited the {} s cap); the step's figures include that work",
                    v.name,
                    p.name,
                    SETTLE_CAP.as_secs()
                ));
            }
            if let Some(jobs) = p.jobs.as_ref().filter(|j| j.lost > 0) {
                warnings.push(format!(
                    "{} {}: {} accepted jobs were never seen finished; {} of them were unknown (404) to the process that answered their status (job state kept per process)",
                    v.name, p.name, jobs.lost, jobs.not_found
                ));
            }
        }
    }
    warnings
}
