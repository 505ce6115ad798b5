//! Warnings a reader must see before trusting a report's figures: a run cut short,
//! a client short of CPU, requests sent late or never, servers that could not be
//! read.

use super::bench::BenchReport;
use super::run::RunReport;
use crate::recorder::LATE_THRESHOLD;

/// Share of late requests above which a bench summary warns.
const LATE_WARNING_SHARE: f64 = 0.01;

/// Client CPU use (share of its cores) above which the client's numbers are suspect.
const CLIENT_SATURATED: f64 = 0.9;

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
        if s.target_rate.is_some() && s.counts.late as f64 / sent > LATE_WARNING_SHARE {
            warnings.push(format!(
                "{}: {:.1}% of requests were sent over {}ms late (all connections busy, or the client short of CPU); corrected latency includes that wait",
                s.name,
                100.0 * s.counts.late as f64 / sent,
                LATE_THRESHOLD.as_millis()
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
    for v in &report.variants {
        if let Some(error) = &v.error {
            warnings.push(format!("{}: {error}", v.name));
        }
        for p in &v.phases {
            let telemetry = p.server_telemetry.as_ref();
            let busiest = telemetry.map_or(0.0, |t| t.client_cpu_max);
            let cores = report.environment.cores.max(1) as f64;
            if busiest / cores > CLIENT_SATURATED && p.client_cpu_share <= CLIENT_SATURATED {
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
            if p.client_cpu_share > CLIENT_SATURATED {
                warnings.push(format!(
                    "{} {}: the client used {:.0}% of its CPUs; its numbers measure the client too",
                    v.name,
                    p.name,
                    p.client_cpu_share * 100.0
                ));
            }
            if let Some(jobs) = p.jobs.as_ref().filter(|j| j.lost > 0) {
                warnings.push(format!(
                    "{} {}: {} accepted jobs were never seen finished; {} of them were unknown (404) to the process that answered their status (job state kept per process)",
                    v.name, p.name, jobs.lost, jobs.not_found
                ));
            }
            if let Some(probe) = p.stream("probe") {
                let late = probe.counts.late as f64 / probe.counts.sent.max(1) as f64;
                if late > 0.01 || probe.unsent > 0 {
                    warnings.push(format!(
                        "{} {}: {:.1}% of probes were sent over 1 ms late and {} never sent (all probe connections were waiting); corrected latency includes the wait",
                        v.name, p.name, late * 100.0, probe.unsent
                    ));
                }
            }
        }
    }
    warnings
}
